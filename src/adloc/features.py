"""Per-image backbone stage maps, extracted once and reused by every model and scope.

:class:`FeatureExtractor` runs a backbone from :mod:`adloc.backbones` only as far as the
deepest requested stage (:func:`adloc.backbones.forward_stages`: explicit stem + stage calls,
nothing after the last needed stage runs), in eval mode under ``torch.inference_mode``, and
returns CPU tensors ``{layer: (N, C, h, w)}`` (float32, or float16 with ``out_dtype``). On CUDA,
``dtype="bf16"`` enables bf16 autocast and ``channels_last=True`` the channels-last memory
format (both recorded in the provenance as ``compute_dtype`` / ``channels_last``).

Transport (what moves between host and device; the forward and its values do not depend on it):

* Input: uint8 images ``(N, 3, S, S)`` (:func:`adloc.data.transforms.image_uint8_tensor`,
  ``load_split_images(..., as_uint8=True)``) travel as uint8 (150 KB per 224 px image instead of
  602 KB) and are normalised ON THE DEVICE by :func:`adloc.data.transforms.normalize_images`, the
  very torchvision calls :func:`~adloc.data.transforms.image_tensor` makes on the host, so on the
  CPU uint8 input gives bit-identical features to the float tensors ``image_tensor`` produces
  (tested). Float input (already normalised) is taken as is, as before.
* Output: each map is cast on the device to ``out_dtype`` (float16 halves the copy back; it is
  what ``storage_dtype="float16"`` stores anyway), contiguous NCHW.
* CUDA (``pinned=True``, the default): batches travel through :class:`adloc.staging.PinnedStaging`
  (reusable pinned host buffers, double-buffered: the device computes batch i while the host
  copies batch i-1 out), one per extractor. ``pinned=False`` (and the CPU): the plain synchronous
  loop, batch by batch.

Feature files (:func:`save_features` / :func:`load_features`) hold every image of one class (a
split or repeat selects its rows by path, ``load_features(..., paths=...)``)::

    {"kind": "features", "format_version": 1, "adloc_version": ..., "layers": {name: Tensor},
     "paths": [...], "provenance": {...backbone provenance, "layers": [...]}, "input_size": 224,
     "storage_dtype": "float32" | "float16"}

written atomically; ``float16`` storage halves the size and is converted back to float32 on load
(float16 maps from ``extract(..., out_dtype=torch.float16)`` are stored as they are).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Iterator, Mapping, Sequence

import torch

from . import __version__
from .backbones import backbone_normalization, build_backbone, forward_stages, LAYERS
from .data.transforms import normalize_images
from .errors import AdlocError, DatasetError, WeightsError
from .io import checkpoint_plain, load_torch, save_torch
from .runtime import resolve_device
from .staging import PinnedStaging, ResultBuffer

FEATURES_FORMAT_VERSION = 1

OUT_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def _out_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype) and dtype in OUT_DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype in OUT_DTYPES:
        return OUT_DTYPES[dtype]
    raise AdlocError(f"feature out_dtype {dtype!r} unknown; use 'float32' or 'float16'")


class FeatureExtractor:
    """Truncated, frozen backbone that returns the requested stage maps.

    Args:
        backbone_name: a name from :data:`adloc.backbones.BACKBONES`.
        weights: ``"imagenet"``, ``"random"`` or a state-dict path (see :func:`build_backbone`).
        layers: stage names among ``layer1`` .. ``layer4``.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
        dtype: None (float32) or ``"bf16"`` (autocast, on CUDA or on CPUs with AVX512-BF16 /
            AMX, where it is ~2.6x faster for WRN50-2; maps differ from float32 by ~1 %).
        channels_last: channels-last memory format (meant for CUDA).
        seed: seed for ``weights="random"``.
        pinned: on CUDA, move batches through pinned double-buffered staging, overlapping
            device compute with the host-side copies (module docstring); False: the plain
            synchronous loop. Ignored on the CPU. Same values either way.
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
        pinned: bool = True,
    ) -> None:
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
        self.pinned = bool(pinned)
        model, prov = build_backbone(backbone_name, weights, seed)
        self.model = model.to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        # normalisation constants on the device once (normalize_images then copies nothing
        # host->device per batch, which on CUDA would synchronise with the stream)
        mean, std = backbone_normalization(backbone_name)
        self._mean = torch.as_tensor(mean, dtype=torch.float32, device=self.device)
        self._std = torch.as_tensor(std, dtype=torch.float32, device=self.device)
        self.staging = PinnedStaging(self.device)  # CUDA transport; allocates on first use
        self.provenance: dict[str, Any] = dict(prov)
        self.provenance.update(
            layers=list(self.layers),
            compute_dtype="bf16" if self.autocast_dtype is not None else "float32",
            channels_last=self.channels_last,
        )

    def _forward(self, x: torch.Tensor, out_dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """Maps of one batch, on the device, ``out_dtype``, contiguous NCHW.

        ``x``: uint8 images (normalised here, on the device) or normalised float images.
        """
        if x.dtype == torch.uint8:
            x = normalize_images(x.to(self.device, non_blocking=True), self._mean, self._std)
        else:
            x = x.to(self.device, torch.float32, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.autocast_dtype is not None:
            with torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype):
                out = forward_stages(self.model, self.backbone_name, x, self.layers)
        else:
            out = forward_stages(self.model, self.backbone_name, x, self.layers)
        return {k: v.to(dtype=out_dtype, memory_format=torch.contiguous_format) for k, v in out.items()}

    @staticmethod
    def _batches(images: torch.Tensor | Iterable, batch_size: int) -> tuple[int | None, Iterator[torch.Tensor]]:
        if isinstance(images, torch.Tensor):
            if images.ndim != 4 or images.shape[1] != 3:
                raise AdlocError(f"images must be (N, 3, H, W), got {tuple(images.shape)}")
            if batch_size < 1:
                raise AdlocError(f"batch_size must be >= 1, got {batch_size}")
            n = images.shape[0]
            return n, (images[s : s + batch_size] for s in range(0, n, batch_size))

        def unpack() -> Iterator[torch.Tensor]:
            for batch in images:
                if isinstance(batch, Mapping):
                    batch = batch["image"]
                elif isinstance(batch, (tuple, list)):
                    batch = batch[0]
                if batch.ndim == 3:
                    batch = batch.unsqueeze(0)
                yield batch

        return None, unpack()

    def extract(
        self,
        images: torch.Tensor | Iterable,
        batch_size: int = 32,
        out_dtype: str | torch.dtype = torch.float32,
    ) -> dict[str, torch.Tensor]:
        """Stage maps ``{layer: CPU (N, C, h, w)}`` of dtype ``out_dtype`` for ``images``.

        ``images``: a (N, 3, H, W) tensor, uint8 (raw pixels, normalised on the device as
        :func:`adloc.data.transforms.normalize_images` does) or float (already normalised as
        :func:`backbone_normalization` says), or an iterable of such batches (a batch may also
        be a tuple/list whose first item is the image tensor, or a dict with key ``"image"``).
        ``out_dtype``: ``torch.float32`` (default) or ``torch.float16`` (or their names); the
        cast happens on the device, before the copy back.
        """
        dt = _out_dtype(out_dtype)
        self.model.eval()
        n, batches = self._batches(images, batch_size)
        result = ResultBuffer(self.layers, n, dt)
        with torch.inference_mode():
            if self.device.type == "cuda" and self.pinned:
                self.staging.run(lambda x: self._forward(x, dt), batches, result, dt)
            else:
                for batch in batches:
                    feats = self._forward(batch, dt)
                    dest = result.take({k: v.shape[1:] for k, v in feats.items()}, batch.shape[0])
                    for k, v in feats.items():
                        dest[k].copy_(v)
        return result.result()


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

    def by_paths(self, paths: Sequence[str], what: str = "feature file") -> "FeatureSet":
        """The images with these relative paths, in that order (a split or repeat selects its
        rows from a class's features, which hold every image of the class once).

        Raises :class:`AdlocError` naming the first missing path: the features are stale.
        """
        row = {p: i for i, p in enumerate(self.paths)}
        missing = [p for p in paths if p not in row]
        if missing:
            raise AdlocError(
                f"{what}: {len(missing)} image(s) of the split (e.g. {missing[0]}) are not in the "
                "class's features; the features are stale. Delete them and rerun the workflow."
            )
        return self.select([row[p] for p in paths])


def concat_features(sets: Sequence[FeatureSet], release: bool = False) -> FeatureSet:
    """Concatenate feature sets (e.g. several classes' train splits for a global model).

    All sets must come from the same backbone weights, layers and input size; the result has
    the first set's dtype. ``release=True`` empties the given sets' layer dicts as they are
    copied, so the process never holds two copies of the features (peak: the result plus one
    layer of one set); the sets are unusable afterwards.
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
    paths = [p for s in sets for p in s.paths]
    layers = {}
    for k in list(first.layers):
        ref = first.layers[k]
        out = torch.empty((len(paths), *ref.shape[1:]), dtype=ref.dtype)
        at = 0
        for s in sets:
            v = s.layers.pop(k) if release else s.layers[k]
            out[at : at + v.shape[0]] = v
            at += v.shape[0]
            del v
        layers[k] = out
    return FeatureSet(layers, paths, dict(first.provenance), first.input_size)


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
    save_torch(
        path,
        {
            "kind": "features",
            "format_version": FEATURES_FORMAT_VERSION,
            "adloc_version": __version__,
            "layers": layers,
            "paths": paths,
            "provenance": checkpoint_plain(dict(provenance)),
            "input_size": int(input_size),
            "storage_dtype": storage_dtype,
        },
    )


def load_features(path, keep_dtype: bool = False, paths: Sequence[str] | None = None) -> FeatureSet:
    """Read a feature file written by :func:`save_features`; layers come back as float32.

    ``keep_dtype=True``: layers keep their stored dtype (float16 files stay float16, half the
    memory; the models convert each chunk to float32 as they embed it).
    ``paths``: only these images, in this order (a split's rows of a class's features); the
    file is memory-mapped, so only the selected rows are read into memory. A path the file
    lacks raises :class:`AdlocError` (the features are stale).
    """
    obj = load_torch(path, what="feature file", mmap=paths is not None)
    if not isinstance(obj, dict) or obj.get("kind") != "features":
        raise AdlocError(f"{path} is not an adloc feature file. Delete it and rerun the workflow.")
    if obj.get("format_version") != FEATURES_FORMAT_VERSION:
        raise AdlocError(
            f"{path} has feature format_version {obj.get('format_version')!r}; this adloc reads "
            f"{FEATURES_FORMAT_VERSION}. Delete it and rerun the workflow."
        )
    stored = list(obj["paths"])
    for k, v in obj["layers"].items():
        if v.shape[0] != len(stored):
            raise AdlocError(f"{path}: layer {k} holds {v.shape[0]} images but {len(stored)} paths; the file is corrupt. Delete it and rerun.")
    fs = FeatureSet(dict(obj["layers"]), stored, dict(obj["provenance"]), int(obj["input_size"]))
    if paths is not None:
        fs = fs.by_paths(paths, what=str(path))  # copies the selected rows out of the mapping
    if keep_dtype:
        return fs
    return FeatureSet({k: v.float() for k, v in fs.layers.items()}, fs.paths, fs.provenance, fs.input_size)


def extraction_groups(cache, cache_file, splits: Mapping[str, Any], splits_file) -> list[list[str]]:
    """The relative paths to extract (rule extract_features), grouped by the split file's splits
    (train, val, test) in its order: the study batched each split on its own, and a CPU
    convolution's last bits depend on which images share a batch. ``cache`` is the class's
    :class:`adloc.data.cache.ImageCache`; the split file must list exactly its images."""
    from .data.cache import ALL
    from .data.splits import SPLIT_NAMES

    if ALL not in cache.paths:
        raise DatasetError(f"image cache {cache_file} has no {ALL!r} group; delete it and rerun")
    groups = [[e["path"] for e in splits["splits"][name]] for name in SPLIT_NAMES]
    listed = [path for g in groups for path in g]
    if sorted(listed) != sorted(cache.paths[ALL]):
        raise DatasetError(
            f"image cache {cache_file} and split file {splits_file} list different images "
            f"({len(cache.paths[ALL])} vs {len(listed)}); delete both and rerun the workflow"
        )
    return groups


def extract_groups(extractor: FeatureExtractor, cache, groups: Sequence[Sequence[str]], batch_size: int,
                   out_dtype) -> tuple[dict[str, torch.Tensor], float, float]:
    """``(stage maps {layer: (N, C, h, w)}, read seconds, extract seconds)`` of every group's
    images from the image cache, each group batched on its own, concatenated in group order
    (the order of :func:`extraction_groups`); uint8 images are normalised on the device, maps
    come back in ``out_dtype``. Only the groups' rows are read (a memory-mapped cache)."""
    import time

    from .data.cache import ALL

    read_s, extract_s, parts = 0.0, 0.0, []
    for paths in groups:
        if paths:
            t0 = time.perf_counter()
            images = cache.rows(ALL, paths)
            t1 = time.perf_counter()
            parts.append(extractor.extract(images, batch_size=batch_size, out_dtype=out_dtype))
            read_s, extract_s = read_s + t1 - t0, extract_s + time.perf_counter() - t1
    if not parts:
        raise DatasetError("extract_groups: no images to extract (every split of the split file is empty)")
    return {k: torch.cat([part[k] for part in parts]) for k in parts[0]}, read_s, extract_s
