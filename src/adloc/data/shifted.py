"""The shifted copy as a data domain: its image cache, split files and preprocess.

Rule shift_images (:mod:`adloc.data.shift`) writes the copy of class ``cls`` in MVTec layout
under ``results/<run>/shift/<name>/<cls>/`` with the parameter table ``<cls>_params.csv`` (one
row per image: original ``path``, ``shifted`` and ``shifted_mask`` relative to the class folder).
The clean chain's rules read the copy like any dataset root (``results/<run>/shift/<name>``, paths
``<cls>/train/good/000.png``):

- :func:`path_map`: original relative path -> shifted relative path, from the parameter table;
- :func:`shifted_splits`: a repeat's clean split file mapped through it, so the shifted train,
  val and test splits hold the SAME images (their shifted copies) in the same order, labels and
  defects unchanged, each file's sha256 taken from the shifted copy;
- :func:`shifted_preprocess`: the copy is the model input already (``crop x crop``), so its
  preprocess is a no-op (a resize to the same size returns the image unchanged in torchvision
  and PIL), the study's reading of its shifted images with the clean transform.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..errors import ConfigError, DatasetError
from ..io import sha256_file

PathLike = str | os.PathLike


def path_map(rows: Sequence[Mapping[str, Any]], cls: str, params_path: PathLike = "") -> dict[str, str | None]:
    """Original relative path (image or mask, as the index lists it) -> its shifted copy's path
    relative to the shifted root (``<cls>/<shifted>``), from the parameter table's rows."""
    out: dict[str, str | None] = {}
    for r in rows:
        out[str(r["path"])] = f"{cls}/{r['shifted']}"
    if not out:
        raise DatasetError(f"shift parameter table {params_path} has no rows; delete it and rerun rule shift_images.")
    return out


def mask_map(rows: Sequence[Mapping[str, Any]], cls: str) -> dict[str, str | None]:
    """Original image path -> its shifted mask's path relative to the shifted root (None: no mask)."""
    return {str(r["path"]): (f"{cls}/{r['shifted_mask']}" if r.get("shifted_mask") else None) for r in rows}


def shifted_splits(
    splits: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    shift_root: PathLike,
    params_path: PathLike = "",
) -> dict[str, Any]:
    """A clean split file (:func:`adloc.data.splits.make_splits`) mapped onto the shifted copy:
    each entry's ``path`` and ``mask`` replaced by its shifted copy's, ``sha256`` and
    ``mask_sha256`` those of the shifted files under ``shift_root``; membership, order, labels,
    defects, counts and protocol unchanged; ``shift_of`` records the clean entry's path.
    DatasetError naming the table when an image of the split has no shifted copy."""
    cls = str(splits["class"])
    images, masks = path_map(rows, cls, params_path), mask_map(rows, cls)
    root = Path(shift_root)
    out = copy.deepcopy(dict(splits))
    for name, entries in out["splits"].items():
        for e in entries:
            src = e["path"]
            if src not in images:
                raise DatasetError(
                    f"image {src} of split {name} has no row in shift parameter table {params_path} "
                    "(made from another index); delete the table and rerun rule shift_images."
                )
            e["shift_of"] = src
            e["path"] = images[src]
            e["mask"] = masks[src] if e.get("mask") else None
            e["sha256"] = sha256_file(root / e["path"])
            e["mask_sha256"] = sha256_file(root / e["mask"]) if e["mask"] else None
    return out


def shifted_preprocess(preprocess: Mapping[str, Any]) -> dict[str, Any]:
    """The preprocess section for the shifted copy: a resize to the model input's own size and
    no crop (a no-op), the clean resize backend kept (its mask threshold too)."""
    crop = preprocess.get("crop")
    size = int(crop) if crop is not None else int(preprocess["resize"])
    return {**dict(preprocess), "resize": size, "crop": None}


def cache_entries(rows: Sequence[Mapping[str, Any]], cls: str) -> list[dict[str, Any]]:
    """Every shifted image of the class once, in the parameter table's (the index's) order, as
    entries relative to the shifted root (what :func:`adloc.data.transforms.load_split_images`
    reads)."""
    return [{"path": f"{cls}/{r['shifted']}", "label": 0, "mask": None} for r in rows]

#: Default spacing of the repeats' shift seeds (``shift.seed + SEED_STRIDE * k`` for repeat k):
#: image i draws from ``seed + i``, so two seeds closer than a class's image count would share
#: draws (image i of seed s + 1 is image i + 1 of seed s); no class adloc reads comes near it.
SEED_STRIDE = 100_000


def repeat_shift_seeds(shift: Mapping[str, Any], n_repeats: int) -> list[int]:
    """The shift seed of each repeat (in :func:`adloc.config.repeat_names`' order: split seeds
    outer, model seeds inner): ``shift.seeds`` when given (one per repeat, repeats allowed: a
    repeated seed's shifted copy and features are made once), else ``shift.seed + SEED_STRIDE *
    k`` for repeat k, so a single run (one repeat) uses ``shift.seed`` and the first repeat of
    presets/repeats.yaml reuses a single run's shifted copy."""
    seeds = shift.get("seeds")
    if seeds is None:
        return [int(shift["seed"]) + SEED_STRIDE * k for k in range(int(n_repeats))]
    seeds = [int(s) for s in seeds]
    if len(seeds) != int(n_repeats):
        raise ConfigError(
            f"config key shift.seeds has {len(seeds)} seed(s) for {n_repeats} repeat(s): give one per "
            "repeat (split seeds outer, model seeds inner), or remove it for shift.seed + "
            f"{SEED_STRIDE} x repeat."
        )
    return seeds


def check_seed_spacing(seeds: Iterable[int], n_images: int, what: str) -> None:
    """ConfigError when two distinct shift seeds are fewer than ``n_images`` apart: image i draws
    from ``seed + i``, so their copies would share parameter draws (shifted by an image)."""
    distinct = sorted({int(s) for s in seeds})
    for a, b in zip(distinct, distinct[1:]):
        if b - a < int(n_images):
            raise ConfigError(
                f"config key shift.seeds: seeds {a} and {b} are {b - a} apart but {what} has "
                f"{n_images} images; image i draws from seed + i, so the two shifted copies would "
                f"share draws. Space the seeds at least {n_images} apart (or remove shift.seeds: "
                f"shift.seed + {SEED_STRIDE} x repeat)."
            )


def read_params(path) -> list[dict[str, Any]]:
    """Rows of a parameter table written by rule shift_images (CSV; floats round-trip exactly: a
    test compares every value with the one drawn). Torch-free, for the analysis-side rules."""
    import pandas as pd

    frame = pd.read_csv(path, keep_default_na=False, dtype={"jitter_order": str})
    return [{k: (None if v == "" else v) for k, v in r.items()} for r in frame.to_dict("records")]


__all__ = [
    "path_map", "mask_map", "shifted_splits", "shifted_preprocess", "cache_entries", "read_params",
    "SEED_STRIDE", "repeat_shift_seeds", "check_seed_spacing",
]
