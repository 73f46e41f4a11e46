"""Embedded classes, their kinds and defect types, image counts and seeds."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from ...errors import DatasetError

EMBEDDED_CLASSES: dict[str, str] = {
    "synth_nut": "object",
    "synth_carpet": "texture",
    "synth_zipper": "structure",
}
KINDS = ("object", "texture", "structure")
# MVTec AD class each kind mirrors (for MVTEC_COUNTS)
KIND_ANALOGUE = {"object": "hazelnut", "texture": "carpet", "structure": "zipper"}
DEFAULT_COUNTS = {"train_good": 50, "test_good": 12, "anomalies": 30}
# MVTec AD (train/good, test/good, anomalies) per class
MVTEC_COUNTS = {"hazelnut": (391, 40, 70), "carpet": (280, 28, 89), "zipper": (240, 32, 119)}
DEFECTS: dict[str, tuple[str, ...]] = {
    "object": ("crack", "cut", "hole", "print"),
    "texture": ("color", "hole", "metal_contamination", "thread"),
    "structure": ("broken_teeth", "fabric_border", "rough", "squeezed_teeth"),
}
# scikit-image sample images used (all ship inside the wheel; none needs pooch / network)
GROUPS = {"train_good": 0, "test_good": 1, "anomalies": 2}


def kind_of(cls: str, kind: str | None = None) -> str:
    """The kind of a class: ``kind`` if given, else its EMBEDDED_CLASSES entry."""
    k = kind if kind is not None else EMBEDDED_CLASSES.get(cls)
    if k is None:
        raise DatasetError(
            f"unknown embedded class '{cls}': choose one of {', '.join(EMBEDDED_CLASSES)} or "
            f"give its kind ({', '.join(KINDS)})."
        )
    if k not in KINDS:
        raise DatasetError(
            f"unknown kind '{k}' for class '{cls}': choose one of {', '.join(KINDS)}."
        )
    return k


def mvtec_counts(cls: str, kind: str | None = None) -> dict[str, int]:
    """MVTec AD's counts for the class an embedded class mirrors (``synth_nut`` -> hazelnut).

    Also accepts an MVTec class name directly (``"carpet"``).
    """
    name = cls if cls in MVTEC_COUNTS else KIND_ANALOGUE[kind_of(cls, kind)]
    tg, sg, an = MVTEC_COUNTS[name]
    return {"train_good": tg, "test_good": sg, "anomalies": an}


def resolve_counts(
    counts: str | dict[str, Any] | None, cls: str, kind: str | None = None
) -> dict[str, int]:
    """Counts for ``cls`` from the config value ``dataset.synthetic.counts``.

    ``"mvtec"`` -> MVTec AD's counts of the class ``cls`` mirrors (:func:`mvtec_counts`);
    a dict -> validated, missing keys filled from DEFAULT_COUNTS; None -> DEFAULT_COUNTS.
    """
    if isinstance(counts, str):
        if counts.lower() != "mvtec":
            raise DatasetError(
                f"dataset.synthetic.counts must be 'mvtec' or a mapping, got '{counts}'."
            )
        return mvtec_counts(cls, kind)
    return check_counts(counts)


def check_counts(counts: dict[str, Any] | None) -> dict[str, int]:
    c = dict(DEFAULT_COUNTS if counts is None else counts)
    unknown = set(c) - set(DEFAULT_COUNTS)
    if unknown:
        raise DatasetError(
            f"unknown count key(s) {sorted(unknown)}: expected {sorted(DEFAULT_COUNTS)}."
        )
    out = {}
    for k, default in DEFAULT_COUNTS.items():
        v = c.get(k, default)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise DatasetError(f"count '{k}' must be a non-negative integer, got {v!r}.")
        out[k] = int(v)
    if out["train_good"] < 1:
        raise DatasetError("count 'train_good' must be at least 1.")
    if out["test_good"] + out["anomalies"] < 1:
        raise DatasetError("counts 'test_good' + 'anomalies' must be at least 1.")
    return out


def class_seed(seed: int, cls: str) -> int:
    """64-bit seed of one class, derived from (seed, class name) only."""
    digest = hashlib.sha256(f"adloc-synthetic:{int(seed)}:{cls}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def image_rng(cseed: int, group: str, index: int) -> np.random.Generator:
    return np.random.default_rng([cseed, GROUPS[group], int(index)])
