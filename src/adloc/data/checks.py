"""Index-time warnings about a class's images that run without error but deserve a word.

:func:`reading_notes` gathers what rule index records (EXIF orientations, the bit depth, masks
not read as drawn, :func:`geometry_warnings`); :func:`duplicate_warnings` names byte-identical
images that can land in two splits (a test image that is also a train/good image, two equal
train/good images). Every split file copies them and summary.md repeats them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .imageio import class_bit_depth, image_header
from .masks import mask_warnings
from .mvtec import ClassIndex

#: An image whose long side exceeds its short side by more than this factor is reported: the
#: square resize stretches it beyond recognition (a 1-pixel-high strip becomes a 256x256 smear).
MAX_ASPECT = 4.0
#: PIL modes of greyscale and of colour images (palette images can be either: not counted).
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
COLOUR_MODES = ("RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV")


def _pairs(dups: list[tuple[str, str]]) -> str:
    ex = "; ".join(f"{a} = {b}" for a, b in dups[:3])
    return ex + (f"; ... ({len(dups)} in all)" if len(dups) > 3 else "")


def duplicate_warnings(cls: str, train: list[dict[str, Any]], test: list[dict[str, Any]]) -> list[str]:
    """Warnings about byte-identical images (entries with ``path``/``sha256``; ``train`` =
    train/good, which the split divides into train and validation; ``test`` = the test folders):
    a test image equal to a train/good image (fitted or calibrated on, then tested), and a
    train/good image equal to another (the split can put one in train and its copy in
    validation). Each names both files."""
    first: dict[str, str] = {}
    inner = []
    for e in train:
        if e["sha256"] in first:
            inner.append((e["path"], first[e["sha256"]]))
        first.setdefault(e["sha256"], e["path"])
    leaked = [(e["path"], first[e["sha256"]]) for e in test if e["sha256"] in first]
    out = []
    if leaked:
        out.append(
            f"class {cls}: {len(leaked)} test image(s) are byte-identical to train/good images, "
            f"which go to the train and validation splits ({_pairs(leaked)}): such an image is "
            "fitted or calibrated on and also tested, so its score is low and the test metrics "
            "are inflated. Remove the copies from the test folders."
        )
    if inner:
        out.append(
            f"class {cls}: {len(inner)} train/good image(s) are byte-identical to another "
            f"train/good image ({_pairs(inner)}): the split can put one in train and its copy in "
            "validation, which then scores it as seen. Remove the copies."
        )
    return out


def geometry_warnings(cls: str, headers: dict[str, Any]) -> list[str]:
    """Warnings about extreme aspect ratios (above :data:`MAX_ASPECT`) and greyscale images in a
    class that also has colour images, from the images' headers (``path -> ImageHeader``)."""
    out = []
    wide = [p for p, h in headers.items() if max(h.height, h.width) > MAX_ASPECT * min(h.height, h.width)]
    if wide:
        h = headers[wide[0]]
        out.append(
            f"class {cls}: {len(wide)} image(s) have an aspect ratio above {MAX_ASPECT:g}:1 (e.g. "
            f"{wide[0]}: {h.height}x{h.width} HxW), stretched to a square by preprocess.resize: "
            "their features describe a smear. Crop or pad them to the class's usual shape."
        )
    grey = sorted(p for p, h in headers.items() if h.mode in GREY_MODES)
    colour = sorted(p for p, h in headers.items() if h.mode in COLOUR_MODES)
    if grey and colour:
        out.append(
            f"class {cls}: {len(grey)} greyscale image(s) (e.g. {grey[0]}, mode "
            f"{headers[grey[0]].mode}) among {len(colour)} colour image(s) (e.g. {colour[0]}): "
            "they are read as RGB with three equal channels, so their lack of colour alone sets "
            "them apart. Convert them to the class's colour format (or the whole class to grey)."
        )
    return out


def reading_notes(index: ClassIndex, bit_depth: int | None = None) -> tuple[int | None, list[str], list[str]]:
    """The class's bit depth (:func:`adloc.data.imageio.class_bit_depth`), the warnings about how
    its images and masks are read (EXIF orientations applied, bit depth inferred, masks not
    two-valued, alpha-channel or empty: :func:`adloc.data.masks.mask_warnings`, each mask
    decoded once; extreme aspect ratios, grey images in a colour class: :func:`geometry_warnings`)
    and notes that are no warning (bit depth declared by the PNG sBIT chunks)."""
    root = Path(index.root)
    samples = list(index.train) + list(index.test)
    headers = {s.path: image_header(root, s.path) for s in samples}
    warnings: list[str] = []
    turned = [p for p, h in headers.items() if h.orientation != 1]
    if turned:
        h = headers[turned[0]]
        warnings.append(
            f"class {index.name}: {len(turned)} image(s) carry an EXIF orientation (e.g. "
            f"{turned[0]}: {h.orientation_text}), applied to images and masks as photo viewers "
            "do; draw masks on the image as displayed."
        )
    high = [p for p, h in headers.items() if h.high_bit]
    depth, note, info = class_bit_depth(root, high, bit_depth)
    masks = [s.mask for s in index.test if s.mask]
    warnings += [f"class {index.name}: {w}" for w in [note, *mask_warnings(root, masks)] if w]
    warnings += geometry_warnings(index.name, headers)
    return depth, warnings, [f"class {index.name}: {info}"] if info else []
