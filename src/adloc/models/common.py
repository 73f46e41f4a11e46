"""Parts shared by the models (PatchCore, PaDiM, SPADE): map post-processing, feature inputs,
model files, and the model skeleton :class:`FeatureModel`.

Map post-processing (every model): a score grid (N, h, w) is bilinearly upsampled
(``align_corners=False``) to the input size and, when ``blur_sigma > 0``, smoothed with a
Gaussian of that sigma whose kernel is truncated at 4 sigma (kernel size
``2 * int(4 * sigma + 0.5) + 1`` = 33 for sigma 4), exactly like ``scipy.ndimage.gaussian_filter``
(used by patchcore-inspection and the PaDiM authors) and anomalib's ``GaussianBlur2d``.
The border handling is selectable: ``"reflect"`` (scipy's default, the reference PatchCore code:
``d c b a | a b c d | d c b a``) or ``"mirror"`` (torch's ``reflect`` padding, which anomalib's
blur uses: ``d c b | a b c d | c b a``).

Model files: one ``torch.save`` file (written atomically by :func:`adloc.io.save_torch`) holding
only tensors and plain Python values, so it loads with ``torch.load(weights_only=True)``::

    {"kind": "patchcore", "format_version": 1, "adloc_version": "0.1.0",
     "config": {...}, "provenance": {...}, "state": {name: Tensor}, "bank_sources": {...}, ...}
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any, Mapping, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from .. import __version__
from ..errors import AdlocError, ModelError
from ..io import checkpoint_plain, load_torch, save_torch
from ..runtime import resolve_device
from .configs import RUNTIME_KEYS, ModelConfig, check_choice, check_layers  # noqa: F401 (re-exported)

FORMAT_VERSION = 1

# --------------------------------------------------------------------------------------------
# map post-processing
# --------------------------------------------------------------------------------------------
def gaussian_kernel1d(sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """Normalised 1-D Gaussian (float64), radius ``int(truncate * sigma + 0.5)`` like scipy."""
    radius = int(truncate * float(sigma) + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / float(sigma)) ** 2)
    return k / k.sum()


def _pad_index(n: int, radius: int, mode: str) -> torch.Tensor:
    """Source indices for padding a length-``n`` axis by ``radius`` on both sides.

    Works for any ``radius`` (also larger than ``n``), unlike ``F.pad(mode="reflect")``.
    """
    idx = np.arange(-radius, n + radius)
    if n == 1:
        return torch.zeros(len(idx), dtype=torch.long)
    if mode == "reflect":  # scipy 'reflect' (half-sample symmetric): period 2n
        period = 2 * n
        m = np.mod(idx, period)
        out = np.where(m < n, m, period - 1 - m)
    elif mode == "mirror":  # scipy 'mirror' == torch 'reflect' (whole-sample symmetric): period 2n-2
        period = 2 * n - 2
        m = np.mod(idx, period)
        out = np.where(m < n, m, period - m)
    elif mode == "nearest":
        out = np.clip(idx, 0, n - 1)
    else:
        raise ModelError(f"blur border mode {mode!r} unknown; use 'reflect', 'mirror' or 'nearest'")
    return torch.as_tensor(out, dtype=torch.long)


def gaussian_blur(maps: torch.Tensor, sigma: float, truncate: float = 4.0, mode: str = "reflect") -> torch.Tensor:
    """Separable Gaussian blur of ``maps`` (N, H, W) on their device; ``sigma <= 0`` is a no-op.

    Equals ``scipy.ndimage.gaussian_filter(m, sigma, mode=mode, truncate=truncate)`` per map
    (up to float32 rounding).
    """
    if sigma is None or sigma <= 0:
        return maps
    if maps.ndim != 3:
        raise ValueError(f"gaussian_blur expects (N, H, W), got {tuple(maps.shape)}")
    n, h, w = maps.shape
    k = gaussian_kernel1d(sigma, truncate).to(device=maps.device, dtype=maps.dtype)
    r = (k.numel() - 1) // 2
    x = maps.unsqueeze(1)  # (N, 1, H, W)
    x = x.index_select(2, _pad_index(h, r, mode).to(maps.device))
    x = F.conv2d(x, k.view(1, 1, -1, 1))
    x = x.index_select(3, _pad_index(w, r, mode).to(maps.device))
    x = F.conv2d(x, k.view(1, 1, 1, -1))
    return x.squeeze(1)


def upsample(maps: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Bilinear (``align_corners=False``) resize of (N, h, w) score grids to ``size``."""
    if isinstance(size, int):
        size = (size, size)
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)


def score_maps(grid: torch.Tensor, image_size: int, blur_sigma: float, blur_mode: str) -> torch.Tensor:
    """Grid (N, h, w) -> anomaly maps (N, H, W): upsample, then blur (both on the grid's device)."""
    return gaussian_blur(upsample(grid.float(), image_size), blur_sigma, mode=blur_mode)


# --------------------------------------------------------------------------------------------
# feature inputs
# --------------------------------------------------------------------------------------------
def unpack_features(features, provenance: Mapping | None, layers) -> tuple[dict, dict, int | None]:
    """Accept a dict of layer tensors or a :class:`adloc.features.FeatureSet`.

    Returns ``(layer dict, provenance dict, input_size or None)``; checks that every needed
    layer is present and all layers agree on N.
    """
    input_size = None
    if hasattr(features, "layers") and hasattr(features, "provenance"):
        prov = dict(features.provenance or {})
        input_size = getattr(features, "input_size", None)
        feats = features.layers
    else:
        prov = {}
        feats = features
    if provenance:
        prov.update(provenance)
    if not isinstance(feats, Mapping):
        raise ModelError(f"features must be a dict of layer -> Tensor (N, C, h, w), got {type(feats).__name__}")
    missing = [layer for layer in layers if layer not in feats]
    if missing:
        raise ModelError(
            f"features lack layer(s) {missing}; they hold {sorted(feats)}. "
            "Extract features with these layers (delete the feature file and rerun)."
        )
    ns = {layer: int(feats[layer].shape[0]) for layer in layers}
    if len(set(ns.values())) != 1:
        raise ModelError(f"feature layers disagree on the number of images: {ns}")
    for layer in layers:
        if feats[layer].ndim != 4:
            raise ModelError(f"feature layer {layer} must be (N, C, h, w), got {tuple(feats[layer].shape)}")
    return {layer: feats[layer] for layer in layers}, prov, input_size


def release_features(features) -> None:
    """Empty the caller's feature container (a FeatureSet's ``layers`` or a layer dict) so that
    its tensors are freed once the model holds no reference either (``fit(...,
    release_features=True)``: the stage maps are not needed after the embedding)."""
    layers = features.layers if hasattr(features, "layers") else features
    if isinstance(layers, dict):
        layers.clear()


def count_sources(sources, n_images: int) -> list[str] | None:
    if sources is None:
        return None
    sources = [str(s) for s in sources]
    if len(sources) != n_images:
        raise ModelError(f"sources has {len(sources)} labels for {n_images} images; give one class label per image")
    return sources


# --------------------------------------------------------------------------------------------
# model files
# --------------------------------------------------------------------------------------------
def save_model_file(path, kind: str, config: Mapping, provenance: Mapping, state: Mapping[str, torch.Tensor], **extra) -> None:
    """Atomically write a model file (see module docstring)."""
    obj = {
        "kind": kind,
        "format_version": FORMAT_VERSION,
        "adloc_version": __version__,
        "config": dict(config),
        "provenance": checkpoint_plain(dict(provenance)),
        "state": {k: v.detach().to("cpu").contiguous() for k, v in state.items()},
    }
    obj.update({k: checkpoint_plain(v) for k, v in extra.items()})
    save_torch(path, obj)


def load_model_file(
    path, kind: str, config_cls, expect_config: Mapping | None, device: str | None = None
) -> tuple[dict, Any]:
    """Read and check a model file; returns ``(raw dict, config instance)``.

    The returned config's ``device`` is ``device``, else ``expect_config``'s, else the CPU.

    Raises :class:`ModelError` when the file is missing or corrupt, holds another kind of model
    or another format version, or was fitted with a config that differs from ``expect_config``
    (defaults filled in; runtime keys such as ``device`` are not compared).
    """
    try:  # memory-mapped: tensors are read when used, straight from the page cache (a 3.8 GB
        # PaDiM model: 0.01 s instead of 2-8 s of copying; the pages are private, copy on write)
        obj = load_torch(path, what=f"{kind} model file", mmap=True)
    except AdlocError as exc:
        raise ModelError(str(exc)) from None
    if not isinstance(obj, dict) or "kind" not in obj:
        raise ModelError(f"{path} is not an adloc model file. Delete the file and rerun.")
    if obj["kind"] != kind:
        raise ModelError(f"{path} holds a {obj['kind']!r} model, not {kind!r}. Delete the file and rerun.")
    if obj.get("format_version") != FORMAT_VERSION:
        raise ModelError(
            f"{path} has model format_version {obj.get('format_version')!r}; this adloc "
            f"({__version__}) reads version {FORMAT_VERSION}. Delete the file and rerun."
        )
    for key in ("config", "state", "provenance"):
        if key not in obj:
            raise ModelError(f"{path} lacks {key!r}; the file is corrupt. Delete the file and rerun.")
    try:
        stored = config_cls.from_dict(obj["config"])
    except (ModelError, TypeError) as exc:
        raise ModelError(f"{path}: stored config is not valid ({exc}). Delete the file and rerun.") from None
    if expect_config is not None:
        expected = expect_config if isinstance(expect_config, config_cls) else config_cls.from_dict(expect_config)
        a, b = stored.to_dict(), expected.to_dict()
        diffs = [k for k in a if k not in RUNTIME_KEYS and a[k] != b[k]]
        if diffs:
            detail = "; ".join(f"{k}: file has {a[k]!r}, expected {b[k]!r}" for k in diffs)
            raise ModelError(
                f"{path} was fitted with a different {kind} config ({detail}). Delete the file and rerun."
            )
    if device is None:
        if isinstance(expect_config, config_cls):
            device = expect_config.device
        elif expect_config is not None:
            device = dict(expect_config).get("device", "cpu")
        else:
            device = "cpu"
    stored = dataclasses.replace(stored, device=device)
    return obj, stored


def chunks(n: int, size: int):
    """Yield ``(start, stop)`` covering ``range(n)`` in steps of ``size``."""
    size = max(1, int(size))
    for s in range(0, n, size):
        yield s, min(n, s + size)


def n_images(feats: Mapping[str, torch.Tensor]) -> int:
    """N of a layer dict (every layer agrees: :func:`unpack_features`)."""
    return int(next(iter(feats.values())).shape[0])


def query_block(query_images: int | None, n: int) -> int:
    """Images per search block: ``query_images``, or all ``n`` for None (>= 1)."""
    if query_images is not None and int(query_images) < 1:
        raise ModelError(f"query_images must be >= 1 or None (all images), got {query_images!r}")
    return max(1, n if query_images is None else int(query_images))


def source_table(srcs: list[str] | None, rows=None) -> tuple[dict | None, list | None, torch.Tensor | None]:
    """``(train_sources, source_names, origin)`` of a global fit's class labels ``srcs`` (one per
    training image): images per class (sorted by name), the class names in that order, and per
    entry of ``rows`` (image indices; default every image) the int32 index of its image's class
    into ``source_names``. All None without labels (a per-class fit)."""
    if srcs is None:
        return None, None, None
    train_sources = dict(sorted(Counter(srcs).items()))
    names = list(train_sources)
    code = {name: k for k, name in enumerate(names)}
    rows = range(len(srcs)) if rows is None else rows
    return train_sources, names, torch.tensor([code[srcs[i]] for i in rows], dtype=torch.int32)


class FitInputs(NamedTuple):
    feats: dict  # {layer: Tensor (N, C, h, w)}, the config's layers
    provenance: dict  # the feature set's provenance, updated with the caller's
    input_size: int | None
    n: int
    sources: list[str] | None  # one class label per image (global fits)


class FeatureModel:
    """The skeleton every built-in model shares: config and device, the fit and predict
    preambles (features unpacked and checked against the fitted input size and backbone), the
    fitted provenance, and the model file's save / load framing (:func:`save_model_file`,
    :func:`load_model_file`). A subclass sets ``NAME`` (messages), ``KIND`` (model files) and
    ``CONFIG`` (its config dataclass)."""

    #: model name used in messages (set by subclasses)
    NAME = "model"
    #: the model file's ``kind``
    KIND = "model"
    #: the config dataclass (a :class:`adloc.models.configs.ModelConfig`)
    CONFIG: type = ModelConfig

    def __init__(self, config=None) -> None:
        self.config = config if isinstance(config, self.CONFIG) else self.CONFIG.from_dict(config)
        self.device = resolve_device(self.config.device)
        self.provenance: dict[str, Any] = {}
        self.train_sources: dict[str, int] | None = None
        self.n_train_images = 0

    # ------------------------------------------------------------------ fit / predict preambles
    def _check_train_count(self, n: int) -> None:
        """Raise when ``n`` training images are too few for this model (default: any number)."""

    def _fit_inputs(self, features, sources, provenance: Mapping[str, Any] | None) -> FitInputs:
        """The training features unpacked and checked (input size, image count, sources)."""
        feats, prov, input_size = unpack_features(features, provenance, self.config.layers)
        self._check_input_size(input_size)
        n = n_images(feats)
        self._check_train_count(n)
        return FitInputs(feats, prov, input_size, n, count_sources(sources, n))

    def _set_provenance(self, prov: Mapping[str, Any], input_size: int | None, **extra) -> None:
        """The fitted model's provenance: the features', the layers, ``extra``, the input size."""
        self.provenance = {**prov, "layers": list(self.config.layers), **extra}
        if input_size is not None:
            self.provenance["input_size"] = int(input_size)

    def _predict_inputs(self, features) -> tuple[dict, int]:
        """``(layer dict, N)`` of the features to score, checked against the fitted model."""
        feats, prov, input_size = unpack_features(features, None, self.config.layers)
        self._check_input_size(input_size)
        self._check_provenance(prov)
        return feats, n_images(feats)

    def _not_fitted(self) -> ModelError:
        return ModelError(f"{self.NAME} is not fitted: call fit() or {type(self).__name__}.load() first")

    def _check_input_size(self, input_size) -> None:
        if input_size is not None and int(input_size) != int(self.config.image_size):
            raise ModelError(
                f"features were extracted at input size {input_size} but the {self.NAME} config has "
                f"image_size {self.config.image_size}; set image_size to {input_size}"
            )

    def _check_provenance(self, prov: Mapping[str, Any]) -> None:
        for key in ("backbone", "weights", "sha256", "seed"):
            a, b = self.provenance.get(key), prov.get(key)
            if a is not None and b is not None and a != b:
                raise ModelError(
                    f"features to score have {key} {b!r} but the model was fitted on features with "
                    f"{key} {a!r}; extract features with the same backbone and weights"
                )

    # ------------------------------------------------------------------ model files
    def _save(self, path, fitted: bool, state: Mapping[str, torch.Tensor], **extra) -> None:
        if not fitted:
            raise ModelError(f"cannot save an unfitted {self.NAME}; call fit() first")
        save_model_file(path, self.KIND, self.config.to_dict(), self.provenance, state, **extra)

    @classmethod
    def _read_file(cls, path, expect_config, device: str | None) -> tuple[dict, Any]:
        """``(raw dict, config)`` of a model file of this kind (:func:`load_model_file`)."""
        return load_model_file(path, cls.KIND, cls.CONFIG, expect_config, device)

    @classmethod
    def _from_file(cls, obj: Mapping[str, Any], config) -> "FeatureModel":
        """A model built from ``config`` with the file's provenance, train_sources and
        n_train_images; the subclass sets its state."""
        model = cls(config)
        model.provenance = dict(obj.get("provenance") or {})
        model.train_sources = obj.get("train_sources")
        model.n_train_images = int(obj.get("n_train_images") or 0)
        return model
