"""VisA (Visual Anomaly, Zou et al. 2022) converted once to the MVTec AD folder layout.

VisA's own layout (the extracted ``VisA_20220922.tar``)::

    split_csv/1cls.csv                     object,split,label,image,mask (one row per image)
    <class>/Data/Images/Normal/*.JPG       anomaly-free images
    <class>/Data/Images/Anomaly/*.JPG      defective images
    <class>/Data/Masks/Anomaly/*.png       masks: any non-zero value marks a defect

:func:`convert_visa` follows ``split_csv/1cls.csv`` (the authors' one-class split: train rows are
normal images, test rows normal or anomalous) and writes::

    <out>/<class>/train/good/<image>            train, normal
    <out>/<class>/test/good/<image>             test, normal
    <out>/<class>/test/bad/<image>              test, anomaly
    <out>/<class>/ground_truth/bad/<stem>_mask.png   its mask, binarised to 0/255, PNG

Images are hard-linked when the file system allows (else copied), JPEG bytes unchanged; masks
are re-encoded as lossless PNG. The workflow then reads VisA like MVTec AD and applies the same
split protocol (its splits rule moves part of ``train/good`` and of the anomalies to validation).
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DatasetError

log = logging.getLogger("adloc.visa")

#: The 12 VisA classes.
VISA_CLASSES = (
    "candle",
    "capsules",
    "cashew",
    "chewinggum",
    "fryum",
    "macaroni1",
    "macaroni2",
    "pcb1",
    "pcb2",
    "pcb3",
    "pcb4",
    "pipe_fryum",
)
SPLIT_CSV = Path("split_csv") / "1cls.csv"
COLUMNS = ("object", "split", "label", "image", "mask")


def read_split_csv(raw_root: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of ``split_csv/1cls.csv``; DatasetError naming the file for a wrong header or row."""
    path = Path(raw_root) / SPLIT_CSV
    if not path.is_file():
        raise DatasetError(
            f"VisA split file not found: {path}. dataset.source: visa expects the extracted "
            "VisA_20220922.tar (split_csv/1cls.csv and one folder per class)."
        )
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = tuple(h.strip() for h in next(reader, ()))
        if header != COLUMNS:
            raise DatasetError(f"{path}: header is {','.join(header)}; expected {','.join(COLUMNS)}")
        rows = []
        for n, row in enumerate(reader, 2):
            if not row:
                continue
            if len(row) != len(COLUMNS):
                raise DatasetError(f"{path} line {n}: {len(row)} fields, expected {len(COLUMNS)}")
            r = dict(zip(COLUMNS, (v.strip() for v in row)))
            if r["split"] not in ("train", "test") or r["label"] not in ("normal", "anomaly"):
                raise DatasetError(
                    f"{path} line {n}: split {r['split']!r} / label {r['label']!r}; expected "
                    "split train|test and label normal|anomaly"
                )
            if r["split"] == "train" and r["label"] == "anomaly":
                raise DatasetError(
                    f"{path} line {n}: an anomalous image in the train split ({r['image']}); "
                    "the one-class protocol trains on normal images only"
                )
            if r["label"] == "anomaly" and not r["mask"]:
                raise DatasetError(f"{path} line {n}: anomalous image {r['image']} has no mask")
            rows.append(r)
    return rows


def _place(src: Path, dst: Path) -> None:
    if not src.is_file():
        raise DatasetError(f"VisA image listed in {SPLIT_CSV} not found: {src}")
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _write_mask(src: Path, dst: Path) -> None:
    if not src.is_file():
        raise DatasetError(f"VisA mask listed in {SPLIT_CSV} not found: {src}")
    with Image.open(src) as im:
        arr = np.asarray(im.convert("RGB") if im.mode in ("P", "PA", "LA", "RGBA", "CMYK", "YCbCr") else im)
    m = arr.any(axis=-1) if arr.ndim == 3 else arr > 0  # any non-zero value marks a defect
    Image.fromarray((m * 255).astype(np.uint8), mode="L").save(dst, format="PNG")


def convert_visa(raw_root: str | os.PathLike, out_root: str | os.PathLike) -> dict[str, dict[str, int]]:
    """Write VisA (``raw_root``, its own layout) to ``out_root`` in the MVTec layout.

    Returns per-class counts ``{class: {"train_good", "test_good", "test_bad"}}``.
    """
    raw_root, out_root = Path(raw_root), Path(out_root)
    rows = read_split_csv(raw_root)
    counts: dict[str, dict[str, int]] = {}
    for r in rows:
        cls = r["object"]
        if not cls or "/" in cls or cls.startswith("."):
            raise DatasetError(f"{raw_root / SPLIT_CSV}: bad class name {cls!r}")
        folder = "good" if r["label"] == "normal" else "bad"
        img = raw_root / r["image"]
        dst = out_root / cls / r["split"] / folder / img.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.exists():
            raise DatasetError(f"{raw_root / SPLIT_CSV}: image {r['image']} listed twice (or a name clash at {dst})")
        _place(img, dst)
        if folder == "bad":
            mdst = out_root / cls / "ground_truth" / "bad" / f"{img.stem}_mask.png"
            mdst.parent.mkdir(parents=True, exist_ok=True)
            _write_mask(raw_root / r["mask"], mdst)
        c = counts.setdefault(cls, {"train_good": 0, "test_good": 0, "test_bad": 0})
        c[f"{r['split']}_{folder}"] += 1
    for cls, c in sorted(counts.items()):
        log.info("VisA %s: %d train good, %d test good, %d test anomalous", cls, c["train_good"], c["test_good"], c["test_bad"])
    return counts
