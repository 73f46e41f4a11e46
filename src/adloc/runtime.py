"""Device selection and determinism settings shared by the workflow's torch rules."""

from __future__ import annotations

from .errors import ConfigError


def resolve_device(device: str) -> str:
    """Map the config's ``device`` (cpu | cuda | auto) to a torch device string.

    ``cuda`` when CUDA is not available is an error (never a silent fall-back to a 50x slower
    CPU run); ``auto`` picks cuda when available, else cpu.
    """
    import torch

    if device == "cpu":
        return "cpu"
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                "config key device is 'cuda' but torch sees no CUDA device "
                f"(torch {torch.__version__}, cuda build {torch.version.cuda}); "
                "set device: cpu (or auto), or run on a GPU node"
            )
        return "cuda"
    raise ConfigError(f"config key device has value {device!r}; allowed values: 'cpu', 'cuda', 'auto'")


def local_cuda_devices() -> int:
    """CUDA devices torch sees in this process (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def device_label(device) -> str:
    """What a job actually ran on, for provenance: ``"cpu"`` or ``"cuda:0 (NVIDIA H200)"``."""
    import torch

    dev = torch.device(device)
    if dev.type != "cuda":
        return dev.type
    index = dev.index if dev.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
