"""One good image and, on request, its defective twin with an exact mask."""

from __future__ import annotations

from typing import Callable

import numpy as np

from ...errors import DatasetError
from .counts import DEFAULT_STYLE, DEFECTS, kind_of
from .objects import OBJECT_STYLES, defect_object, good_object
from .primitives import finalize, quantize
from .structures import defect_structure, good_structure
from .textures import TEXTURE_STYLES, defect_texture, good_texture

#: kind -> style name -> renderer parameters
STYLES: dict[str, dict[str, dict]] = {
    "object": OBJECT_STYLES,
    "texture": TEXTURE_STYLES,
    "structure": {"zipper": {}},
}
GOOD: dict[str, Callable] = {
    "object": good_object,
    "texture": good_texture,
    "structure": good_structure,
}
DEFECT: dict[str, Callable] = {
    "object": defect_object,
    "texture": defect_texture,
    "structure": defect_structure,
}


def render_pair(
    kind: str,
    image_size: int,
    rng: np.random.Generator,
    defect: str | None = None,
    style: str | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Render one good image and, if ``defect`` is given, its defective twin and mask.

    ``style``: the kind's parameter set (``OBJECT_STYLES``, ``TEXTURE_STYLES``; the structure
    kind has one, ``"zipper"``); None: the kind's DEFAULT_STYLE.

    Returns uint8 ``good`` ((S, S, 3) RGB, or (S, S) gray for ``structure``), uint8 ``bad``
    (same shape) and bool ``mask`` (S, S); ``bad`` differs from ``good`` exactly on ``mask``,
    by at least MIN_DELTA grey levels (max over channels) on every mask pixel.
    """
    kind = kind_of("", kind)
    if defect is not None and defect not in DEFECTS[kind]:
        raise DatasetError(
            f"unknown defect '{defect}' for kind '{kind}': choose one of {', '.join(DEFECTS[kind])}."
        )
    style = DEFAULT_STYLE[kind] if style is None else style
    if style not in STYLES[kind]:
        raise DatasetError(
            f"unknown style '{style}' for kind '{kind}': choose one of {', '.join(STYLES[kind])}."
        )
    good_f, ctx = GOOD[kind](rng, int(image_size), STYLES[kind][style])
    good = quantize(good_f)
    if defect is None:
        return good, None, None
    bad_f, mask = DEFECT[kind](defect, good.astype(np.float32) / 255.0, ctx, rng)
    bad, mask = finalize(good, quantize(bad_f), mask)
    return good, bad, mask
