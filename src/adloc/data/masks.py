"""Decoding ground-truth masks exactly and saying where a mask is not read as drawn.

:func:`load_mask` reads a mask as a bool array (EXIF orientation applied as for images,
:mod:`adloc.data.imageio`); a mask drawn in its alpha channel (one colour everywhere, the defect
opaque) is read from the alpha channel (:func:`alpha_mask`), never as every pixel defect.
:func:`mask_warnings` reports masks that are not read exactly as drawn (grey levels between 0
and the defect value, a defect value the study preset's threshold drops, alpha-channel masks,
empty masks of anomalous images).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DatasetError
from .imageio import open_loaded, resolve_path, upright

PathLike = str | os.PathLike


def load_mask(
    root: PathLike,
    rel_path: PathLike | None = None,
    shape: tuple[int, ...] | None = None,
    grey_threshold: int | None = None,
) -> np.ndarray:
    """Decode a ground-truth mask to a bool ``(H, W)`` array (any pixel > 0 is anomalous),
    EXIF orientation applied as for images.

    MVTec masks are 0/255, for which ``> 0`` and ``> 127`` are equivalent; ``> 0`` also accepts
    0/1 masks. Lossless masks only: :func:`scan_class` refuses JPEG masks. Colour or palette
    masks are converted to grayscale first; a mask whose colour is one value everywhere and whose
    alpha channel is not opaque everywhere is read from its alpha (:func:`alpha_mask`). ``grey_threshold=t`` reads the mask as the study did
    instead: PIL ``convert("L")`` whatever the mode, then ``> t`` (127: the study's ``> 0.5``
    after ``/255``). If ``shape`` (the image's ``(H, W)`` or ``(H, W, C)``) is given and differs,
    raises DatasetError naming the mask and both sizes.
    """
    path, name = resolve_path(root, rel_path)
    with open_loaded(path, name, "mask") as im:
        im = upright(im)
        if grey_threshold is not None:
            m = np.asarray(_mask_image(im).convert("L")) > int(grey_threshold)
        else:
            m = _mask_values(im) > 0
    if m.ndim != 2:  # pragma: no cover - every mode above decodes to 2-D
        m = m.any(axis=-1)
    if shape is not None:
        h, w = int(shape[0]), int(shape[1])
        if m.shape != (h, w):
            raise DatasetError(
                f"mask {name} is {m.shape[0]}x{m.shape[1]} (HxW) but its image is {h}x{w}. "
                "Regenerate or resize the mask to its image's size."
            )
    return m


#: Modes a mask is compared ``> 0`` in as decoded (others are converted to "L" first).
MASK_MODES = ("1", "L", "I", "I;16", "I;16B", "I;16L", "F")
#: The study preset's mask threshold (``Preprocess.mask_threshold`` with resize_backend "pil").
STUDY_MASK_THRESHOLD = 127


def alpha_mask(im: Image.Image) -> Image.Image | None:
    """The alpha channel of a mask whose colour channels carry no information (one value
    everywhere, e.g. white RGB with the defect drawn opaque) and whose alpha is not opaque
    everywhere; else None (the colour is read). Reading such a mask's colour would mark every
    pixel (white) or none (black) as defect; a fully transparent one is read as empty."""
    if "A" not in im.getbands() and not (im.mode in ("P", "L", "RGB") and "transparency" in im.info):
        return None
    rgba = im if im.mode in ("RGBA", "LA") else im.convert("RGBA")
    alpha = rgba.getchannel("A")
    lo, hi = alpha.getextrema()
    colour = rgba.convert("L" if rgba.mode == "LA" else "RGB").getextrema()
    flat = all(a == b for a, b in (colour if isinstance(colour[0], tuple) else [colour]))
    return alpha if flat and lo < 255 else None


def _mask_image(im: Image.Image) -> Image.Image:
    """The image a mask is read from: its alpha channel when only that carries the defect."""
    a = alpha_mask(im)
    return im if a is None else a


def _mask_values(im: Image.Image) -> np.ndarray:
    """The values :func:`load_mask` compares ``> 0`` by default."""
    im = _mask_image(im)
    return np.asarray(im if im.mode in MASK_MODES else im.convert("L"))


@dataclass(frozen=True)
class MaskLevels:
    """A mask's values as :func:`load_mask` reads them: ``levels`` distinct values above 0, the
    largest ``top``; ``on`` pixels above 0 (the default reading), ``between`` of them below
    ``top`` (grey edges); ``study_on`` pixels above :data:`STUDY_MASK_THRESHOLD` after PIL
    ``convert("L")`` (the study preset's reading); ``alpha``: read from the alpha channel
    (:func:`alpha_mask`)."""

    levels: int
    top: float
    on: int
    between: int
    study_on: int
    alpha: bool = False


def mask_levels(root: PathLike, rel_path: PathLike | None = None) -> MaskLevels:
    """Decode a mask once and count its levels (:class:`MaskLevels`); DatasetError if unreadable."""
    path, name = resolve_path(root, rel_path)
    with open_loaded(path, name, "mask") as im:
        a = _mask_values(im)
        alpha = alpha_mask(im) is not None
        grey = a if im.mode == "L" or alpha else np.asarray(im.convert("L"))
        study_on = int(np.count_nonzero(grey > STUDY_MASK_THRESHOLD))
    on = a[a > 0].astype(np.float64)
    top = float(on.max(initial=0))
    return MaskLevels(len(np.unique(on)), top, int(on.size), int(np.count_nonzero(on < top)), study_on, alpha)


def mask_warnings(root: PathLike, masks) -> list[str]:
    """Warnings about masks (relative paths of one class) that are not read exactly as drawn:
    grey levels between 0 and the defect value (anti-aliased edges), a defect value that the
    study preset's threshold reads differently (0/1, colour or palette masks), empty masks.
    Each mask is decoded once (rule index); the sentences name the counts, an example and the
    threshold each reading applies."""
    masks = [Path(m).as_posix() for m in masks]
    stats = {m: mask_levels(root, m) for m in masks}
    study = (f"with the study preset (preprocess.resize_backend: pil) as grey > "
             f"{STUDY_MASK_THRESHOLD} after PIL convert('L')")
    out: list[str] = []
    graded = [m for m, s in stats.items() if s.between]
    if graded:
        ex, on = stats[graded[0]], sum(stats[m].on for m in graded)
        between, kept = sum(stats[m].between for m in graded), sum(stats[m].study_on for m in graded)
        out.append(
            f"{len(graded)} of {len(masks)} mask(s) are not two-valued (anti-aliased or soft "
            f"edges; e.g. {graded[0]}: {ex.levels} levels above 0, up to {ex.top:g}): "
            f"{between / on:.1%} of their non-zero pixels lie between 0 and the defect value. "
            f"Masks are binarised before the nearest resize to the model's input: by default as "
            f"value > 0 (every such pixel is defect), {study}, which keeps {kept / on:.1%} of "
            "these masks' non-zero pixels. Export the masks as strict 0/255 to decide the edges."
        )
    differ = [m for m, s in stats.items() if not s.between and s.on and s.study_on != s.on]
    if differ:
        ex = stats[differ[0]]
        gone = sum(1 for m in differ if stats[m].study_on == 0)
        out.append(
            f"{len(differ)} of {len(masks)} mask(s) mark defects with a value read differently "
            f"by the two thresholds (e.g. {differ[0]}: value {ex.top:g}): by default as value > "
            f"0 ({ex.on} defect pixels), {study} ({ex.study_on}); {gone} of them are empty for "
            "the study preset. Export the masks as 0/255 greyscale."
        )
    alpha = [m for m, s in stats.items() if s.alpha]
    if alpha:
        out.append(
            f"{len(alpha)} of {len(masks)} mask(s) draw the defect in their alpha channel only "
            f"(the colour channels hold one value everywhere; e.g. {alpha[0]}): read from the "
            "alpha channel (opaque = defect). Export the masks as 0/255 greyscale."
        )
    empty = [m for m, s in stats.items() if not s.on]
    if empty:
        out.append(
            f"{len(empty)} anomalous image(s) have an empty mask (no pixel above 0; e.g. "
            f"{empty[0]}): every pixel of these images counts as normal in the pixel metrics "
            "(pixel AUROC, PRO). Draw the defect in the mask, or move the image to test/good "
            "if it has none."
        )
    return out
