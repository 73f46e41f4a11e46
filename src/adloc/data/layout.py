"""Helpers the dataset converters share: place an image (hard link, else copy) and write a
binary mask (any non-zero value marks a defect) as a 0/255 PNG."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DatasetError


def link_or_copy(src: Path, dst: Path, what: str) -> None:
    """Hard-link ``src`` to ``dst`` (copy where links fail); DatasetError naming ``what``."""
    if not src.is_file():
        raise DatasetError(f"{what} not found: {src}")
    if dst.exists():
        raise DatasetError(f"{what} {src}: a second image maps to {dst} (a name clash)")
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def write_binary_mask(src: Path, dst: Path, what: str) -> None:
    """``src`` (any mode) as a lossless 0/255 PNG at ``dst``: non-zero pixels are defects."""
    if not src.is_file():
        raise DatasetError(f"{what} not found: {src}")
    with Image.open(src) as im:
        arr = np.asarray(im.convert("RGB") if im.mode in ("P", "PA", "LA", "RGBA", "CMYK", "YCbCr") else im)
    m = arr.any(axis=-1) if arr.ndim == 3 else arr > 0
    dst.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((m * 255).astype(np.uint8), mode="L").save(dst, format="PNG")


def write_png(src: Path, dst: Path, what: str) -> None:
    """``src`` (e.g. BMP) re-encoded losslessly as PNG at ``dst`` (pixels unchanged)."""
    if not src.is_file():
        raise DatasetError(f"{what} not found: {src}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(src) as im:
        im.save(dst, format="PNG")
