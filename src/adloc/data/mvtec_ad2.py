"""MVTec AD 2 (Heckler-Kram et al. 2025) converted to the MVTec AD layout.

``mvtec_ad_2.tar.gz`` holds one folder per scenario (8: can, fabric, fruit_jelly, rice,
sheet_metal, vial, wallplugs, walnuts)::

    <scenario>/train/good/*.png                          anomaly-free training images
    <scenario>/validation/good/*.png                     the authors' anomaly-free validation images
    <scenario>/test_public/{good,bad}/*.png              labelled public test images
    <scenario>/test_public/ground_truth/bad/<stem>_mask.png
    <scenario>/test_private/*.png, test_private_mixed/*.png   NO labels (evaluation server only)

:func:`convert_mvtec_ad2` hard-links ``train/good`` and ``test_public`` into
``<out>/<scenario>/{train/good, test/good, test/bad, ground_truth/bad}`` (masks binarised).
The workflow's splits rule then draws validation from ``train/good`` and the public anomalies as
for MVTec AD; the authors' ``validation/good`` is kept at ``<out>/<scenario>/validation/good``
(not read by the workflow today). The unlabelled private test sets are linked under
``<out>/_unlabelled/<scenario>/test_private*/``, outside every class folder, so the reader can
never treat them as labelled test data and no metric is ever computed on them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..errors import DatasetError
from .layout import link_or_copy, write_binary_mask

log = logging.getLogger("adloc.mvtec_ad2")

MVTEC_AD2_CLASSES = ("can", "fabric", "fruit_jelly", "rice", "sheet_metal", "vial", "wallplugs", "walnuts")
UNLABELLED = "_unlabelled"
PRIVATE = ("test_private", "test_private_mixed")


def _pngs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() == ".png") if folder.is_dir() else []


def convert_mvtec_ad2(raw_root: str | os.PathLike, out_root: str | os.PathLike) -> dict[str, dict[str, int]]:
    """Write MVTec AD 2 (``raw_root`` = the folder of scenario folders) to ``out_root``."""
    raw_root, out_root = Path(raw_root), Path(out_root)
    scenarios = sorted(p.name for p in raw_root.iterdir() if (p / "test_public").is_dir()) if raw_root.is_dir() else []
    if not scenarios:
        raise DatasetError(f"{raw_root}: no MVTec AD 2 scenario folder with test_public/ (expected can/, fabric/, ...)")
    counts: dict[str, dict[str, int]] = {}
    for sc in scenarios:
        src, dst = raw_root / sc, out_root / sc
        c = counts.setdefault(sc, {})
        for sub, out in (("train/good", "train/good"), ("validation/good", "validation/good"),
                         ("test_public/good", "test/good"), ("test_public/bad", "test/bad")):
            imgs = sorted(p for p in (src / sub).glob("*.png")) if (src / sub).is_dir() else []
            c[out.replace("/", "_")] = len(imgs)
            for img in imgs:
                link_or_copy(img, dst / out / img.name, "MVTec AD 2 image")
                if sub == "test_public/bad":
                    mask = src / "test_public" / "ground_truth" / "bad" / f"{img.stem}_mask.png"
                    write_binary_mask(mask, dst / "ground_truth" / "bad" / mask.name, "MVTec AD 2 mask")
        if not c["train_good"]:
            raise DatasetError(f"MVTec AD 2 scenario {src} has no train/good/*.png")
        for priv in PRIVATE:
            for img in _pngs(src / priv):
                link_or_copy(img, out_root / UNLABELLED / sc / img.relative_to(src), "MVTec AD 2 image")
            c[f"{priv}_unlabelled"] = len(_pngs(src / priv))
        log.info("MVTec AD 2 %s: %s", sc, ", ".join(f"{v} {k}" for k, v in c.items()))
    return counts
