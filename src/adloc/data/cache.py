"""Image cache: every image of one class decoded and preprocessed once, reused by every backbone.

Rule ``preprocess_images`` decodes and resizes/crops every image of a class (train/good, then
every test folder: the dataset's listing, independent of any split or repeat) once and writes
them here as one group, :data:`ALL`; every ``extract_features`` job of that class (one per feature
set: backbone + weights) reads the cache instead of decoding the PNGs again, and a rerun after a
backbone change decodes nothing. Splits and repeats select images by relative path later (from
the features). The tensors are exactly
``load_split_images(root, entries, pre, as_uint8=True)`` (:mod:`adloc.data.transforms`), so
features extracted from the cache equal those extracted from freshly decoded images bit for bit.

File format (one file per class, written atomically and byte-stably by :func:`adloc.io.save_torch`)::

    {"kind": "images", "format_version": 2, "adloc_version": "...",
     "splits": {"all": uint8 (N, 3, S, S)}, "paths": {"all": [relative path, ...]},
     "preprocess": {"resize": 256, "crop": 224, "resize_backend": "torchvision"}}

A corrupt, foreign or older-format file raises :class:`adloc.errors.DatasetError` naming the file
and saying to delete it and rerun (version 1 caches held one group per split and are refused).
torch is imported lazily (by :mod:`adloc.io`).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping, Sequence

from .. import __version__
from ..errors import AdlocError, DatasetError
from ..io import load_torch, save_torch
from .transforms import Preprocess

IMAGES_FORMAT_VERSION = 2
#: The one group of a class's cache: every image of the class, split-independent.
ALL = "all"

PathLike = str | os.PathLike

_FIX = "Delete it and rerun the workflow to regenerate it."


@dataclasses.dataclass
class ImageCache:
    """One class's preprocessed images: ``splits[name]`` uint8 ``(N, 3, S, S)``, ``paths[name]``."""

    splits: dict[str, Any]
    paths: dict[str, list[str]]
    preprocess: Preprocess
    path: str = ""

    @property
    def input_size(self) -> int:
        """Side S of the cached images."""
        return self.preprocess.output_size

    def rows(self, name: str, paths: Sequence[str]):
        """The images of group ``name`` with these relative paths, in that order, as an
        in-memory uint8 tensor (from a cache loaded with ``mmap=True`` only these rows are
        read). A path the cache lacks raises :class:`DatasetError` naming it (stale cache)."""
        import torch

        row = {p: i for i, p in enumerate(self.paths[name])}
        missing = [p for p in paths if p not in row]
        if missing:
            raise _bad(self.path, f"lacks {len(missing)} image(s) asked for (e.g. {missing[0]})")
        return self.splits[name].index_select(0, torch.as_tensor([row[p] for p in paths], dtype=torch.long))


def save_image_cache(
    path: PathLike,
    splits: Mapping[str, Any],
    paths: Mapping[str, Sequence[str]],
    pre: Preprocess,
) -> None:
    """Atomically write an image cache (module docstring's format).

    ``splits``: split name -> uint8 ``(N, 3, S, S)`` tensor with ``S = pre.output_size``;
    ``paths``: the same names -> the N entries' relative paths, in the tensor's order.
    """
    if set(splits) != set(paths):
        raise AdlocError(
            f"image cache {path}: images given for splits {sorted(splits)} but paths for {sorted(paths)}"
        )
    s = pre.output_size
    out_splits, out_paths = {}, {}
    for name in sorted(splits):
        t, p = splits[name], [str(x) for x in paths[name]]
        problem = _split_problem(t, p, s)
        if problem:
            raise AdlocError(f"image cache {path}: split {name} is {problem}")
        out_splits[name] = t.detach().to("cpu").contiguous()
        out_paths[name] = p
    save_torch(
        path,
        {
            "kind": "images",
            "format_version": IMAGES_FORMAT_VERSION,
            "adloc_version": __version__,
            "splits": out_splits,
            "paths": out_paths,
            "preprocess": pre.as_dict(),
        },
    )


def _split_problem(t: Any, p: Any, s: int) -> str | None:
    """None when ``t`` is a uint8 ``(N, 3, s, s)`` tensor and ``p`` a list of N path strings;
    else what is wrong, for a message (used on writing and on reading a cache)."""
    import torch

    if (
        isinstance(t, torch.Tensor)
        and t.dtype == torch.uint8
        and t.ndim == 4
        and tuple(t.shape[1:]) == (3, s, s)
        and isinstance(p, list)
        and len(p) == t.shape[0]
        and all(isinstance(x, str) for x in p)
    ):
        return None
    what = f"{t.dtype} {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__
    n = len(p) if isinstance(p, list) else "?"
    return f"{what} with {n} paths; expected uint8 (N, 3, {s}, {s}) and N paths"


def _bad(path: PathLike, why: str) -> DatasetError:
    return DatasetError(f"image cache {path} {why}. {_FIX}")


def load_image_cache(
    path: PathLike,
    pre: Preprocess | None = None,
    mmap: bool = False,
) -> ImageCache:
    """Read and check an image cache written by :func:`save_image_cache`.

    ``pre``: when given, the cache must have been made with these preprocess settings.
    ``mmap=True``: tensors are memory-mapped (read from disk when used, e.g. by
    :meth:`ImageCache.images`). A missing, corrupt, foreign, older-format or malformed file
    raises :class:`DatasetError` naming the file and saying to delete it and rerun.
    """
    try:
        obj = load_torch(path, what="image cache", mmap=mmap)
    except AdlocError as exc:  # io raises the base class; re-raise as a dataset problem
        raise DatasetError(str(exc)) from None
    if not isinstance(obj, dict) or obj.get("kind") != "images":
        kind = obj.get("kind") if isinstance(obj, dict) else type(obj).__name__
        raise _bad(path, f"is not an adloc image cache (kind {kind!r}, expected 'images')")
    version = obj.get("format_version")
    if version != IMAGES_FORMAT_VERSION:
        raise _bad(
            path,
            f"has format version {version!r} (written by adloc {obj.get('adloc_version', '?')}); "
            f"this adloc ({__version__}) reads version {IMAGES_FORMAT_VERSION}",
        )
    splits, paths, pd = obj.get("splits"), obj.get("paths"), obj.get("preprocess")
    if not isinstance(splits, dict) or not isinstance(paths, dict) or set(splits) != set(paths):
        raise _bad(path, "is malformed (its 'splits' and 'paths' do not name the same splits)")
    try:
        # caches written before resize_backend existed were made with torchvision's resize
        cached_pre = Preprocess.from_config(pd)
    except (TypeError, KeyError, ValueError, DatasetError):
        raise _bad(path, f"is malformed (preprocess settings {pd!r})") from None
    s = cached_pre.output_size
    for name, t in splits.items():
        problem = _split_problem(t, paths[name], s)
        if problem:
            raise _bad(path, f"is malformed (split {name}: {problem})")
    if pre is not None and cached_pre != pre:
        raise _bad(
            path,
            f"was made with preprocess {cached_pre.as_dict()} but {pre.as_dict()} was asked for",
        )
    return ImageCache(dict(splits), {k: list(v) for k, v in paths.items()}, cached_pre, str(path))


__all__ = [
    "IMAGES_FORMAT_VERSION",
    "ImageCache",
    "save_image_cache",
    "load_image_cache",
    "ALL",
]
