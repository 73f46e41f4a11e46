"""Embedded classes, their kinds and defect types, image counts and seeds."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from ...errors import DatasetError

#: class -> (kind, style, MVTec AD class it mirrors). The style names the renderer's parameter
#: set (:data:`adloc.data.synthetic.objects.OBJECT_STYLES`, ``textures.TEXTURE_STYLES``); the
#: first three classes are the original embedded dataset (the study's three classes), the others
#: mirror the remaining twelve MVTec AD classes.
CLASS_TABLE: dict[str, tuple[str, str, str]] = {
    "synth_nut": ("object", "nut", "hazelnut"),
    "synth_carpet": ("texture", "carpet", "carpet"),
    "synth_zipper": ("structure", "zipper", "zipper"),
    "synth_bottle": ("object", "bottle", "bottle"),
    "synth_cable": ("object", "cable", "cable"),
    "synth_capsule": ("object", "capsule", "capsule"),
    "synth_grid": ("texture", "grid", "grid"),
    "synth_leather": ("texture", "leather", "leather"),
    "synth_metal_nut": ("object", "metal_nut", "metal_nut"),
    "synth_pill": ("object", "pill", "pill"),
    "synth_screw": ("object", "screw", "screw"),
    "synth_tile": ("texture", "tile", "tile"),
    "synth_toothbrush": ("object", "toothbrush", "toothbrush"),
    "synth_transistor": ("object", "transistor", "transistor"),
    "synth_wood": ("texture", "wood", "wood"),
}
#: the study's three classes: the default of generate_dataset and the command line
STUDY_CLASSES = ("synth_nut", "synth_carpet", "synth_zipper")
#: class -> kind, for every class of :data:`CLASS_TABLE`
EMBEDDED_CLASSES: dict[str, str] = {c: row[0] for c, row in CLASS_TABLE.items()}
KINDS = ("object", "texture", "structure")
#: style of a class that is not in CLASS_TABLE (a custom name with an explicit kind)
DEFAULT_STYLE = {"object": "nut", "texture": "carpet", "structure": "zipper"}
# MVTec AD class each kind mirrors (counts of a custom class)
KIND_ANALOGUE = {"object": "hazelnut", "texture": "carpet", "structure": "zipper"}
DEFAULT_COUNTS = {"train_good": 50, "test_good": 12, "anomalies": 30}
# MVTec AD (train/good, test/good, anomalies) per class
MVTEC_COUNTS = {
    "bottle": (209, 20, 63),
    "cable": (224, 58, 92),
    "capsule": (219, 23, 109),
    "carpet": (280, 28, 89),
    "grid": (264, 21, 57),
    "hazelnut": (391, 40, 70),
    "leather": (245, 32, 92),
    "metal_nut": (220, 22, 93),
    "pill": (267, 26, 141),
    "screw": (320, 41, 119),
    "tile": (230, 33, 84),
    "toothbrush": (60, 12, 30),
    "transistor": (213, 60, 40),
    "wood": (247, 19, 60),
    "zipper": (240, 32, 119),
}
DEFECTS: dict[str, tuple[str, ...]] = {
    "object": ("crack", "cut", "hole", "print"),
    "texture": ("color", "hole", "metal_contamination", "thread"),
    "structure": ("broken_teeth", "fabric_border", "rough", "squeezed_teeth"),
}
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


def style_of(cls: str, kind: str | None = None) -> str:
    """Renderer style of a class: its CLASS_TABLE style when ``kind`` is None or the table's
    kind, else the kind's DEFAULT_STYLE (a custom class rendered as ``kind``)."""
    k = kind_of(cls, kind)
    row = CLASS_TABLE.get(cls)
    return row[1] if row is not None and row[0] == k else DEFAULT_STYLE[k]


def analogue_of(cls: str, kind: str | None = None) -> str:
    """MVTec AD class an embedded class mirrors (a custom class: its kind's KIND_ANALOGUE)."""
    k = kind_of(cls, kind)
    row = CLASS_TABLE.get(cls)
    return row[2] if row is not None and row[0] == k else KIND_ANALOGUE[k]


def mvtec_counts(cls: str, kind: str | None = None) -> dict[str, int]:
    """MVTec AD's counts for the class an embedded class mirrors (``synth_nut`` -> hazelnut).

    Also accepts an MVTec class name directly (``"carpet"``).
    """
    name = cls if cls in MVTEC_COUNTS else analogue_of(cls, kind)
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
