"""BTAD (beanTech Anomaly Detection, Mishra et al. 2021) converted to the MVTec AD layout.

``btad.zip`` (as anomalib's BTech datamodule fetches it) holds ``BTech_Dataset_transformed/``::

    <product>/train/ok/*.bmp|*.png          anomaly-free training images (products 01, 02, 03)
    <product>/test/ok/*.bmp|*.png           normal test images
    <product>/test/ko/*.bmp|*.png           defective test images
    <product>/ground_truth/ko/<stem>.png|.bmp   their masks (same stem, no ``_mask`` suffix)

:func:`convert_btad` writes ``<out>/<product>/{train/good, test/good, test/ko}`` (BMP re-encoded
losslessly as PNG, as anomalib does; PNG hard-linked) and ``ground_truth/ko/<stem>_mask.png``
(binarised 0/255). Class names are the product folders ``01``, ``02``, ``03``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..errors import DatasetError
from .layout import link_or_copy, write_binary_mask, write_png

log = logging.getLogger("adloc.btad")

BTAD_CLASSES = ("01", "02", "03")
_FOLDERS = (("train", "ok", "train", "good"), ("test", "ok", "test", "good"), ("test", "ko", "test", "ko"))
_EXT = (".bmp", ".png")


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _EXT) if folder.is_dir() else []


def _image(src: Path, dst_dir: Path) -> Path:
    dst = dst_dir / f"{src.stem}.png"
    if src.suffix.lower() == ".png":
        link_or_copy(src, dst, "BTAD image")
    else:
        write_png(src, dst, "BTAD image")
    return dst


def convert_btad(raw_root: str | os.PathLike, out_root: str | os.PathLike) -> dict[str, dict[str, int]]:
    """Write BTAD (``raw_root`` = the folder holding ``01/ 02/ 03/``) to ``out_root``."""
    raw_root, out_root = Path(raw_root), Path(out_root)
    products = sorted(p.name for p in raw_root.iterdir() if (p / "train" / "ok").is_dir()) if raw_root.is_dir() else []
    if not products:
        raise DatasetError(f"{raw_root}: no BTAD product folder with train/ok/ (expected 01/ 02/ 03/)")
    counts: dict[str, dict[str, int]] = {}
    for prod in products:
        c = counts.setdefault(prod, {})
        for split, src_name, dsplit, dname in _FOLDERS:
            imgs = _images(raw_root / prod / split / src_name)
            c[f"{dsplit}_{dname}"] = len(imgs)
            for img in imgs:
                _image(img, out_root / prod / dsplit / dname)
                if src_name == "ko":
                    gt = raw_root / prod / "ground_truth" / "ko"
                    masks = [gt / f"{img.stem}{e}" for e in _EXT if (gt / f"{img.stem}{e}").is_file()]
                    if not masks:
                        raise DatasetError(f"BTAD defect image {img} has no mask {gt / img.stem}.png")
                    write_binary_mask(masks[0], out_root / prod / "ground_truth" / "ko" / f"{img.stem}_mask.png",
                                      "BTAD mask")
        log.info("BTAD %s: %s", prod, ", ".join(f"{v} {k}" for k, v in c.items()))
    return counts
