"""Data layer: MVTec-format reader, the study's splits, preprocessing, embedded dataset generator.

Submodules are imported lazily where heavy (``transforms`` imports torch).
"""

from .mvtec import (
    ClassIndex,
    Sample,
    image_size,
    list_classes,
    load_image,
    load_mask,
    scan_class,
)
from .splits import make_splits, read_splits, verify_hashes

__all__ = [
    "ClassIndex",
    "Sample",
    "image_size",
    "list_classes",
    "load_image",
    "load_mask",
    "scan_class",
    "make_splits",
    "read_splits",
    "verify_hashes",
]
