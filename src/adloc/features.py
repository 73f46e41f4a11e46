"""Per-image backbone stage maps, extracted once and reused by every model and scope.

:class:`FeatureExtractor` runs a backbone from :mod:`adloc.backbones` only as far as the
deepest requested stage (:func:`adloc.backbones.forward_stages`: explicit stem + stage calls,
nothing after the last needed stage runs), in eval mode under ``torch.inference_mode``, and
returns float32 CPU tensors ``{layer: (N, C, h, w)}``. On CUDA, ``dtype="bf16"`` enables bf16
autocast and ``channels_last=True`` the channels-last memory format (both recorded in the
provenance as ``compute_dtype`` / ``channels_last``).

Feature files (:func:`save_features` / :func:`load_features`) hold one split of one class::

    {"kind": "features", "format_version": 1, "adloc_version": ..., "layers": {name: Tensor},
     "paths": [...], "provenance": {...backbone provenance, "layers": [...]}, "input_size": 224,
     "storage_dtype": "float32" | "float16"}

written atomically; ``float16`` storage halves the size and is converted back to float32 on load.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping, Sequence

import torch

from . import __version__
from .backbones import build_backbone, forward_stages, LAYERS
from .errors import AdlocError, WeightsError
from .io import load_torch, save_torch

FEATURES_FORMAT_VERSION = 1


class FeatureExtractor:
    """Truncated, frozen backbone that returns the requested stage maps.

    Args:
        backbone_name: a name from :data:`adloc.backbones.BACKBONES`.
        weights: ``"imagenet"``, ``"random"`` or a state-dict path (see :func:`build_backbone`).
        layers: stage names among ``layer1`` .. ``layer4``.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
        dtype: None (float32) or ``"bf16"`` (autocast; meant for CUDA).
        channels_last: channels-last memory format (meant for CUDA).
        seed: seed for ``weights="random"``.
    """

    def __init__(
        self,
        backbone_name: str,
        weights: str = "imagenet",
        layers: Sequence[str] = ("layer2", "layer3"),
        device: str = "cpu",
        dtype: str | None = None,
        channels_last: bool = False,
        seed: int = 0,
    ) -> None:
        from .models.common import resolve_device

        layers = list(layers)
        bad = [layer for layer in layers if layer not in LAYERS]
        if not layers or bad:
            raise WeightsError(f"feature layers must be among {list(LAYERS)}, got {layers}")
        if dtype in (None, "float32", "fp32"):
            self.autocast_dtype = None
        elif dtype in ("bf16", "bfloat16"):
            self.autocast_dtype = torch.bfloat16
        else:
            raise WeightsError(f"feature dtype {dtype!r} unknown; use None (float32) or 'bf16'")
        self.backbone_name = backbone_name
        # keep layers in network order
        self.layers = sorted(dict.fromkeys(layers), key=LAYERS.index)
        self.device = resolve_device(device)
        self.channels_last = bool(channels_last)
        model, prov = build_backbone(backbone_name, weights, seed)
        self.model = model.to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.provenance: dict[str, Any] = dict(prov)
        self.provenance.update(
            layers=list(self.layers),
            compute_dtype="bf16" if self.autocast_dtype is not None else "float32",
            channels_last=self.channels_last,
        )

    def _forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = x.to(self.device, torch.float32, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.autocast_dtype is not None:
            with torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype):
                out = forward_stages(self.model, self.backbone_name, x, self.layers)
        else:
            out = forward_stages(self.model, self.backbone_name, x, self.layers)
        return {k: v.float().contiguous() for k, v in out.items()}

    def extract(self, images: torch.Tensor | Iterable, batch_size: int = 32) -> dict[str, torch.Tensor]:
        """Stage maps ``{layer: float32 CPU (N, C, h, w)}`` for ``images``.

        ``images``: a (N, 3, H, W) tensor (normalised as :func:`backbone_normalization` says),
        or an iterable of such batches (a batch may also be a tuple/list whose first item is the
        image tensor, or a dict with key ``"image"``).
        """
        self.model.eval()
        if isinstance(images, torch.Tensor):
            if images.ndim != 4 or images.shape[1] != 3:
                raise AdlocError(f"images must be (N, 3, H, W), got {tuple(images.shape)}")
            n = images.shape[0]
            batches: Iterable = (images[s : s + batch_size] for s in range(0, n, batch_size))
        else:
            n = None
            batches = images
        parts: dict[str, list[torch.Tensor]] = {layer: [] for layer in self.layers}
        out: dict[str, torch.Tensor] | None = None
        pos = 0
        with torch.inference_mode():
            for batch in batches:
                if isinstance(batch, Mapping):
                    batch = batch["image"]
                elif isinstance(batch, (tuple, list)):
                    batch = batch[0]
                if batch.ndim == 3:
                    batch = batch.unsqueeze(0)
                feats = self._forward(batch)
                b = batch.shape[0]
                if n is not None:
                    if out is None:
                        out = {k: torch.empty((n, *v.shape[1:]), dtype=torch.float32) for k, v in feats.items()}
                    for k, v in feats.items():
                        out[k][pos : pos + b].copy_(v, non_blocking=False)
                else:
                    for k, v in feats.items():
                        parts[k].append(v.to("cpu"))
                pos += b
        if n is not None:
            if out is None:  # zero images
                raise AdlocError("no images to extract features from")
            return out
        if pos == 0:
            raise AdlocError("no images to extract features from")
        return {k: torch.cat(v) for k, v in parts.items()}


def extract_features(
    images: torch.Tensor | Iterable,
    backbone_name: str,
    weights: str = "imagenet",
    layers: Sequence[str] = ("layer2", "layer3"),
    batch_size: int = 32,
    **kwargs: Any,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """One-shot helper: ``(features, provenance)`` for ``images``."""
    fx = FeatureExtractor(backbone_name, weights, layers, **kwargs)
    return fx.extract(images, batch_size=batch_size), dict(fx.provenance)


@dataclasses.dataclass
class FeatureSet:
    """Stage maps of N images plus where they came from."""

    layers: dict[str, torch.Tensor]
    paths: list[str]
    provenance: dict[str, Any]
    input_size: int

    def __len__(self) -> int:
        return len(self.paths)

    def select(self, index: Sequence[int] | torch.Tensor) -> "FeatureSet":
        """The subset of images ``index`` (in that order)."""
        idx = torch.as_tensor(index, dtype=torch.long)
        return FeatureSet(
            {k: v.index_select(0, idx) for k, v in self.layers.items()},
            [self.paths[i] for i in idx.tolist()],
            dict(self.provenance),
            self.input_size,
        )


def concat_features(sets: Sequence[FeatureSet]) -> FeatureSet:
    """Concatenate feature sets (e.g. several classes' train splits for a global model).

    All sets must come from the same backbone weights, layers and input size.
    """
    if not sets:
        raise AdlocError("concat_features needs at least one feature set")
    first = sets[0]
    keys = ("backbone", "weights", "sha256", "seed", "layers")
    for s in sets[1:]:
        diff = [k for k in keys if s.provenance.get(k) != first.provenance.get(k)]
        if diff or s.input_size != first.input_size or set(s.layers) != set(first.layers):
            raise AdlocError(
                "feature sets to concatenate differ in "
                + (", ".join(diff) if diff else "input size or layers")
                + "; extract all of them with the same backbone, weights and layers"
            )
    return FeatureSet(
        {k: torch.cat([s.layers[k] for s in sets]) for k in first.layers},
        [p for s in sets for p in s.paths],
        dict(first.provenance),
        first.input_size,
    )


def save_features(
    path,
    feats: Mapping[str, torch.Tensor],
    paths: Sequence[str],
    provenance: Mapping[str, Any],
    input_size: int,
    storage_dtype: str = "float32",
) -> None:
    """Atomically write a feature file (float32, or float16 with ``storage_dtype="float16"``)."""
    if storage_dtype not in ("float32", "float16"):
        raise AdlocError(f"feature storage_dtype {storage_dtype!r} unknown; use 'float32' or 'float16'")
    paths = [str(p) for p in paths]
    dt = torch.float16 if storage_dtype == "float16" else torch.float32
    layers = {}
    for k, v in feats.items():
        if v.ndim != 4 or v.shape[0] != len(paths):
            raise AdlocError(
                f"feature layer {k} has shape {tuple(v.shape)} but {len(paths)} paths were given; "
                "expected (N, C, h, w) with N = number of paths"
            )
        layers[k] = v.detach().to("cpu", dt).contiguous()
    from .models.common import _plain

    save_torch(
        path,
        {
            "kind": "features",
            "format_version": FEATURES_FORMAT_VERSION,
            "adloc_version": __version__,
            "layers": layers,
            "paths": paths,
            "provenance": _plain(dict(provenance)),
            "input_size": int(input_size),
            "storage_dtype": storage_dtype,
        },
    )


def load_features(path) -> FeatureSet:
    """Read a feature file written by :func:`save_features`; layers come back as float32."""
    obj = load_torch(path, what="feature file")
    if not isinstance(obj, dict) or obj.get("kind") != "features":
        raise AdlocError(f"{path} is not an adloc feature file. Delete it and rerun the workflow.")
    if obj.get("format_version") != FEATURES_FORMAT_VERSION:
        raise AdlocError(
            f"{path} has feature format_version {obj.get('format_version')!r}; this adloc reads "
            f"{FEATURES_FORMAT_VERSION}. Delete it and rerun the workflow."
        )
    paths = list(obj["paths"])
    layers = {k: v.float() for k, v in obj["layers"].items()}
    for k, v in layers.items():
        if v.shape[0] != len(paths):
            raise AdlocError(f"{path}: layer {k} holds {v.shape[0]} images but {len(paths)} paths; the file is corrupt. Delete it and rerun.")
    return FeatureSet(layers, paths, dict(obj["provenance"]), int(obj["input_size"]))
