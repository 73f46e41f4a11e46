"""Device selection: the one place that turns a ``device`` setting into a torch device, and what
a job ran on (:func:`device_label`, :func:`local_cuda_devices`).

Used by the workflow's scripts (the config key ``device``), the feature extractor and the models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch


def resolve_device(device: "str | torch.device | None" = "auto") -> "torch.device":
    """Map ``cpu`` | ``cuda`` | ``cuda:N`` | ``auto`` (or None, or a torch.device) to a torch device.

    ``auto`` (and None) picks CUDA when available, else the CPU. CUDA requested when torch sees
    none is a :class:`~adloc.errors.ConfigError` (never a silent fall-back to a 50x slower CPU
    run), as is a value torch does not know.
    """
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(
            f"config key device has value {device!r}; allowed values: 'cpu', 'cuda', 'auto'"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"config key device is {str(device)!r} but torch sees no CUDA device "
            f"(torch {torch.__version__}, cuda build {torch.version.cuda}); "
            "set device: cpu (or auto), or run on a GPU node"
        )
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(
            f"config key device has value {device!r}; allowed values: 'cpu', 'cuda', 'auto'"
        )
    return dev


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
