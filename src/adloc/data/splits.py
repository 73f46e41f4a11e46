"""The study's train/val/test split protocol, written as a JSON-able dict.

Protocol (reproduces ``create_clean_split`` of the study, IvanNece/Detection-of-Anomalies-with-
Localization ``src/data/splitter.py`` / notebook 02; checked against its published
``data/processed/clean_splits.json`` for hazelnut, carpet and zipper):

1. ``rng = random.Random(seed)`` -- the study called ``random.seed(42)`` once per class and then
   used the *global* ``random.shuffle`` twice, so both shuffles draw from one stream, in order.
2. ``train/good`` sorted by file name, ``rng.shuffle``; the first ``int(train_fraction * n)``
   go to train, the rest are the validation normals.
3. Every ``test/<defect>`` image (defect folders sorted by name, files by name; ``good``
   excluded) pooled into one list and shuffled with the *same* ``rng`` (not re-seeded);
   the first ``int(val_anomaly_fraction * n)`` go to validation, the rest to test.
4. ``val`` = validation normals then validation anomalies; ``test`` = all ``test/good`` (sorted)
   then the test anomalies -- the study's order.

``stratify_by_defect=True`` (not the study's protocol) applies step 3 to each defect type
separately, in sorted defect order, with the same ``rng`` stream: ``int(val_anomaly_fraction *
n_d)`` of each type go to validation (floor per type, so the validation total can be a few
images lower than the pooled ``int(fraction * n)``); val/test anomalies are concatenated in
defect order.

Result (paths relative to the dataset root; ``sha256`` of each file when ``hash_files``)::

    {"class": "carpet", "has_masks": true, "bit_depth": null, "warnings": [],
     "protocol": {"seed": 42, "train_fraction": 0.8, "val_anomaly_fraction": 0.3,
                  "stratify_by_defect": false},
     "splits": {"train": [entry, ...], "val": [...], "test": [...]},
     "counts": {"train": {"good": 224, "total": 224, "normal": 224, "anomalous": 0}, ...}}
    entry = {"path": "carpet/train/good/000.png", "label": 0, "defect": "good", "mask": null,
             "sha256": "<hex>", "mask_sha256": null}

``bit_depth``: what the class's 16-bit images are read with (null: none);
``warnings``: what the reader interpreted rather than read verbatim (EXIF orientation applied,
bit depth inferred, masks not two-valued or empty), one sentence each; the summary repeats them. Jobs that read the images or
masks again check them against the recorded sha256 (:func:`check_unchanged`), so a file edited
after the split was written stops the run instead of mixing old features with new labels.
"""

from __future__ import annotations

import math
import os
import random
from collections import Counter
from pathlib import Path
from typing import Any

from ..errors import AdlocError, DatasetError
from ..io import read_json, sha256_file
from .checks import duplicate_warnings, reading_notes
from .imageio import image_size
from .mvtec import ClassIndex, Sample

SPLIT_NAMES = ("train", "val", "test")
ENTRY_KEYS = ("path", "label", "defect", "mask", "sha256", "mask_sha256")
#: Entry key of a file -> entry key of its recorded sha256.
HASH_KEYS = {"path": "sha256", "mask": "mask_sha256"}

PathLike = str | os.PathLike


def _entry(s: Sample, root: Path, hash_files: bool) -> dict[str, Any]:
    def h(rel: str | None) -> str | None:
        if rel is None or not hash_files:
            return None
        try:
            return sha256_file(root / rel)
        except OSError as exc:
            raise DatasetError(
                f"cannot read {rel} under {root} to hash it ({exc}). Check the dataset folder."
            ) from None

    if s.mask is not None and hash_files:  # header-only size check: fail here, not after fitting
        ih, iw = image_size(root, s.path)
        mh, mw = image_size(root, s.mask)
        if (mh, mw) != (ih, iw):
            raise DatasetError(
                f"mask {s.mask} (under {root}) is {mh}x{mw} (HxW) but its image {s.path} is "
                f"{ih}x{iw}. Regenerate or resize the mask to its image's size."
            )
    return {
        "path": s.path,
        "label": int(s.label),
        "defect": s.defect,
        "mask": s.mask,
        "sha256": h(s.path),
        "mask_sha256": h(s.mask),
    }


def _counts(entries: list[dict[str, Any]]) -> dict[str, int]:
    c = Counter(e["defect"] for e in entries)
    out = {k: int(c[k]) for k in sorted(c)}
    out["total"] = len(entries)
    out["normal"] = sum(1 for e in entries if e["label"] == 0)
    out["anomalous"] = sum(1 for e in entries if e["label"] == 1)
    return out


def make_splits(
    index: ClassIndex,
    seed: int = 42,
    train_fraction: float = 0.8,
    val_anomaly_fraction: float = 0.3,
    stratify_by_defect: bool = False,
    hash_files: bool = True,
    bit_depth: int | None = None,
) -> dict[str, Any]:
    """Split one class by the study's protocol (module docstring); returns the JSON-able dict.

    With the defaults and real MVTec AD this yields exactly the study's file lists. Raises
    DatasetError when the train split would be empty, and (``hash_files``) when a mask's size
    differs from its image's (read from the file headers), so both stop the splits rule.
    ``bit_depth``: the declared depth of 16-bit images (``dataset.bit_depth``); None infers it
    (:func:`adloc.data.checks.reading_notes`).
    """
    if not 0.0 < train_fraction <= 1.0:
        raise DatasetError(f"train_fraction must be in (0, 1], got {train_fraction}.")
    if not 0.0 <= val_anomaly_fraction < 1.0:
        raise DatasetError(f"val_anomaly_fraction must be in [0, 1), got {val_anomaly_fraction}.")

    rng = random.Random(seed)  # one stream for both shuffles, as the study's global random

    train_good = sorted(index.train, key=lambda s: s.path)
    rng.shuffle(train_good)
    n_train = int(len(train_good) * train_fraction)
    if n_train == 0:  # every model of the class would be fitted on nothing
        raise DatasetError(
            f"class {index.name}: the train split is empty: int({train_fraction} x "
            f"{len(train_good)} image(s) in {index.name}/train/good under {index.root}) = 0. "
            "Add training images to that folder or raise splits.train_fraction."
        )
    train, val_normal = train_good[:n_train], train_good[n_train:]

    # index.test is already sorted by defect folder then file name
    test_good = [s for s in index.test if s.label == 0]
    anomalies = [s for s in index.test if s.label == 1]
    if stratify_by_defect:
        val_anom: list[Sample] = []
        test_anom: list[Sample] = []
        for d in sorted({s.defect for s in anomalies}):
            group = [s for s in anomalies if s.defect == d]
            rng.shuffle(group)
            k = int(len(group) * val_anomaly_fraction)
            val_anom += group[:k]
            test_anom += group[k:]
    else:
        pooled = list(anomalies)
        rng.shuffle(pooled)
        k = int(len(pooled) * val_anomaly_fraction)
        val_anom, test_anom = pooled[:k], pooled[k:]

    root = Path(index.root)
    # hash_files=False opens no file at all (file lists only): no header is read either
    depth, warnings, _ = reading_notes(index, bit_depth) if hash_files else (bit_depth, [], [])
    splits = {
        "train": [_entry(s, root, hash_files) for s in train],
        "val": [_entry(s, root, hash_files) for s in val_normal + val_anom],
        "test": [_entry(s, root, hash_files) for s in test_good + test_anom],
    }
    return {
        "class": index.name,
        "has_masks": bool(index.has_masks),
        "bit_depth": depth,
        "warnings": warnings,
        "protocol": {
            "seed": int(seed),
            "train_fraction": float(train_fraction),
            "val_anomaly_fraction": float(val_anomaly_fraction),
            "stratify_by_defect": bool(stratify_by_defect),
        },
        "splits": splits,
        "counts": {k: _counts(v) for k, v in splits.items()},
    }


INDEX_KEYS = ("class", "has_masks", "bit_depth", "warnings", "train", "test")


def make_index(index: ClassIndex, bit_depth: int | None = None, content: str | None = None) -> dict[str, Any]:
    """The class's listing, read once (rule index): every image's entry with its sha256 (and its
    mask's, size checked against the image's header), the bit depth and the reading warnings
    (:func:`adloc.data.checks.reading_notes`; byte-identical images that can land in two splits:
    :func:`adloc.data.checks.duplicate_warnings`). Every repeat's
    split file is drawn from it (:func:`splits_from_index`) without reading the files again, and
    the image cache is checked against its hashes.

    ``{"class", "has_masks", "bit_depth", "warnings", "notes", "content", "train": [entry],
    "test": [entry]}`` (``notes``: what is no warning, e.g. the bit depth the PNG sBIT chunks
    declared; ``content``: rule index's parameter, :func:`adloc.data.content.content_param`)
    with ``train`` = ``train/good`` and ``test`` = every test folder, in the scanner's order.
    """
    root = Path(index.root)
    depth, warnings, notes = reading_notes(index, bit_depth)
    train, test = ([_entry(s, root, True) for s in part] for part in (index.train, index.test))
    return {
        "class": index.name,
        "has_masks": bool(index.has_masks),
        "bit_depth": depth,
        "warnings": warnings + duplicate_warnings(index.name, train, test),
        "notes": notes,
        "content": content,
        "train": train,
        "test": test,
    }


def read_index(path: PathLike) -> dict[str, Any]:
    """Read a class index (:func:`make_index`); DatasetError naming the file when malformed."""
    try:
        obj = read_json(path, what="class index")
    except AdlocError as exc:
        raise DatasetError(str(exc)) from None
    if not isinstance(obj, dict) or any(k not in obj for k in INDEX_KEYS) or not all(
        isinstance(e, dict) and all(k in e for k in ENTRY_KEYS) for e in obj["train"] + obj["test"]
    ):
        raise DatasetError(f"class index {path} is malformed; delete it and rerun the workflow.")
    return obj


def splits_from_index(indexed: dict[str, Any], root: PathLike, seed: int = 42, **protocol: Any) -> dict[str, Any]:
    """:func:`make_splits` of a class index (rule splits, one per split seed): the same split,
    with the sha256s, bit depth and warnings the index recorded (no file is read again).
    ``protocol``: make_splits' train_fraction, val_anomaly_fraction, stratify_by_defect."""
    fields = ("path", "label", "defect", "mask")
    cls_index = ClassIndex(
        root=Path(root),
        name=str(indexed["class"]),
        train=[Sample(**{k: e[k] for k in fields}) for e in indexed["train"]],
        test=[Sample(**{k: e[k] for k in fields}) for e in indexed["test"]],
        has_masks=bool(indexed["has_masks"]),
    )
    out = make_splits(cls_index, seed=seed, hash_files=False, bit_depth=indexed["bit_depth"], **protocol)
    by_path = {e["path"]: e for e in indexed["train"] + indexed["test"]}
    for entries in out["splits"].values():
        for e in entries:
            e["sha256"], e["mask_sha256"] = by_path[e["path"]]["sha256"], by_path[e["path"]]["mask_sha256"]
    out["warnings"] = list(indexed["warnings"])
    return out


def index_entries(indexed: dict[str, Any]) -> list[dict[str, Any]]:
    """Every entry of a class index: train/good, then the test folders (the image cache's order)."""
    return list(indexed["train"]) + list(indexed["test"])


def check_index_unchanged(root: PathLike, indexed: dict[str, Any], index_path: PathLike = "") -> None:
    """DatasetError unless every image of the class index still has its recorded sha256."""
    check_unchanged(root, {"class": indexed["class"], "splits": {"all": index_entries(indexed)}},
                    index_path, names=("all",), keys=("path",), what="class index")


def validate_splits(obj: Any, name: str = "splits") -> dict[str, Any]:
    """Check the structure written by :func:`make_splits`; DatasetError naming ``name`` if not."""

    def bad(why: str) -> DatasetError:
        return DatasetError(
            f"split file {name} is invalid: {why}. Delete it and rerun the workflow to regenerate it."
        )

    if not isinstance(obj, dict):
        raise bad("top level is not a JSON object")
    for key in ("class", "has_masks", "protocol", "splits", "counts"):
        if key not in obj:
            raise bad(f"missing key '{key}'")
    splits = obj["splits"]
    if not isinstance(splits, dict):
        raise bad("'splits' is not an object")
    if not isinstance(obj.get("warnings", []), list):
        raise bad("'warnings' is not a list")
    for sname in SPLIT_NAMES:
        entries = splits.get(sname)
        if not isinstance(entries, list):
            raise bad(f"'splits.{sname}' is missing or not a list")
        for i, e in enumerate(entries):
            if not isinstance(e, dict) or any(k not in e for k in ENTRY_KEYS):
                raise bad(f"entry {i} of '{sname}' lacks one of {list(ENTRY_KEYS)}")
            if e["label"] not in (0, 1):
                raise bad(f"entry {i} of '{sname}' has label {e['label']!r} (expected 0 or 1)")
    return obj


def read_splits(path: PathLike) -> dict[str, Any]:
    """Read and validate a split file; a missing, corrupt or malformed file raises DatasetError."""
    try:
        obj = read_json(path, what="split file")
    except AdlocError as exc:  # io raises the base class; re-raise as a dataset problem
        raise DatasetError(str(exc)) from None
    return validate_splits(obj, str(path))


def verify_hashes(
    root: PathLike,
    splits: dict[str, Any],
    names: tuple[str, ...] = SPLIT_NAMES,
    keys: tuple[str, ...] = ("path", "mask"),
) -> list[str]:
    """Relative paths whose current sha256 differs from the split file's, over the splits
    ``names`` and the entry ``keys`` (``"path"``: images, ``"mask"``: masks).

    Missing files are reported too; entries written with ``hash_files=False`` are skipped.
    """
    root = Path(root)
    changed: list[str] = []
    seen: set[str] = set()
    for sname in names:
        for e in splits["splits"][sname]:
            for pkey in keys:
                rel, want = e.get(pkey), e.get(HASH_KEYS[pkey])
                if rel is None or want is None or rel in seen:
                    continue
                seen.add(rel)
                try:
                    got = sha256_file(root / rel)
                except OSError:
                    got = None
                if got != want:
                    changed.append(rel)
    return changed


def check_unchanged(
    root: PathLike,
    splits: dict[str, Any],
    splits_path: PathLike = "",
    names: tuple[str, ...] = SPLIT_NAMES,
    keys: tuple[str, ...] = ("path", "mask"),
    what: str = "split file",
) -> None:
    """DatasetError unless the files (``keys`` of the splits ``names``) still have the sha256
    the split file (or class index: ``what``) recorded: a file edited (or replaced, keeping its
    old time stamp) after it was written would otherwise mix old features with new labels or
    masks. The hashes come from rule index, so the fix reruns the class from there."""
    changed = verify_hashes(root, splits, names, keys)
    if changed:
        src = f" {splits_path}" if splits_path else ""
        raise DatasetError(
            f"{len(changed)} file(s) of class {splits.get('class')} changed since the {what}"
            f"{src} was written (e.g. {changed[0]} under {root}, sha256 differs or the file "
            "is gone): results made from the old files would mix with the new ones. Rerun the "
            "class from its index: snakemake --forcerun index (with your usual arguments)."
        )


def val_anomaly_advice(splits: dict[str, Any]) -> str:
    """What can put an anomalous image into the validation split of this class (the fix of a
    "no anomalous validation images" calibration error), from its split file's counts."""
    c, proto, cls = splits["counts"], splits["protocol"], splits["class"]
    n = int(c["val"]["anomalous"]) + int(c["test"]["anomalous"])
    f = float(proto["val_anomaly_fraction"])
    fallback = "or set threshold.on_degenerate: fallback (threshold = max normal validation score)"
    if n == 0:
        return f"class {cls} has no anomalous images at all: add some, {fallback}."
    if n == 1:
        least = max(2, math.ceil(1 / f)) if f > 0 else 2
        return (
            f"class {cls} has 1 anomalous image, which cannot be in both validation and test (no "
            f"splits.val_anomaly_fraction below 1 moves it: int(f x 1) = 0). Add anomalous test "
            f"images (with fraction {f:g}: at least {least}), {fallback}."
        )
    largest = n
    if proto.get("stratify_by_defect"):  # the floor is taken per defect type
        per = Counter()
        for sname in ("val", "test"):
            for k, v in c[sname].items():
                if k not in ("good", "total", "normal", "anomalous"):
                    per[k] += int(v)
        largest = max(per.values(), default=n)
    return (
        f"class {cls} has {n} anomalous images: raise splits.val_anomaly_fraction to at least "
        f"{1.0 / largest:.3g} (int(f x {largest}) >= 1"
        + (f", {largest} being its largest defect type with stratify_by_defect" if largest != n else "")
        + f"), add anomalous test images, {fallback}."
    )


def split_entries(splits: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The entries of split ``name`` (train/val/test); DatasetError for an unknown name."""
    if name not in SPLIT_NAMES:
        raise DatasetError(f"unknown split '{name}': expected one of {', '.join(SPLIT_NAMES)}.")
    return splits["splits"][name]
