"""Texture kind (carpet analogue): a woven pile, and its defects."""

from __future__ import annotations

import numpy as np

from ...errors import DatasetError
from .primitives import (
    blob,
    curve,
    grid,
    jitter_light,
    noise,
    norm,
    texture_patch,
)


#: The carpet (carpet analogue): the original embedded texture. ``span`` (low, high) source
#: pixels per image side; ``pile`` / ``fibre`` the two photos mixed (``stretch`` and
#: ``pile_blur`` apply to the pile), ``weave_period`` (low, high) in units of the side, ``amp``
#: the weights of pile, fibres and weave around the grey ``level``, ``tint`` the colour.
CARPET = {
    "span": (370, 410),
    "pile": "gravel",
    "stretch": (1.0, 1.0),
    "pile_blur": 0.6,
    "fibre": "grass",
    "weave_period": (1 / 30, 1 / 26),
    "amp": (0.085, 0.045, 0.05),
    "level": 0.50,
    "tint": (1.0, 0.86, 0.70),
}
#: texture styles by name; the four beyond the carpet mirror MVTec AD's other textures loosely
TEXTURE_STYLES: dict[str, dict] = {
    "carpet": CARPET,
    # a dark regular mesh: the weave dominates
    "grid": {**CARPET, "amp": (0.03, 0.02, 0.18), "weave_period": (1 / 14, 1 / 12),
             "level": 0.42, "tint": (0.78, 0.78, 0.80)},
    # brown grain: the crater photo at a small scale, no weave
    "leather": {**CARPET, "span": (300, 340), "pile": "moon", "pile_blur": 0.8, "fibre": "gravel",
                "amp": (0.09, 0.03, 0.0), "level": 0.45, "tint": (0.95, 0.66, 0.44)},
    # pale speckled ceramic: coarse gravel over coins, no weave
    "tile": {**CARPET, "span": (700, 760), "fibre": "coins", "amp": (0.10, 0.04, 0.0),
             "level": 0.62, "tint": (0.92, 0.92, 0.88)},
    # wood grain: grass stretched six-fold along one axis, no weave
    "wood": {**CARPET, "span": (300, 340), "pile": "grass", "stretch": (1.0, 6.0),
             "pile_blur": 0.5, "fibre": "moon", "amp": (0.10, 0.03, 0.0), "level": 0.55,
             "tint": (0.98, 0.74, 0.50)},
}


def good_texture(rng: np.random.Generator, size: int, style: dict) -> tuple[np.ndarray, dict]:
    """A good texture of ``style`` (a TEXTURE_STYLES entry)."""
    S = style
    # carpet pile: the gravel photo at a small scale (loops) plus grass fibres, on a regular
    # weave grid; orientation = one of four 90-degree turns plus a small tilt
    span = rng.uniform(*S["span"])  # source pixels per image side
    angle = rng.choice([0, np.pi / 2, np.pi, 3 * np.pi / 2]) + rng.uniform(-0.06, 0.06)
    pile = norm(
        texture_patch(
            rng, S["pile"], size, span, angle=angle, stretch=S["stretch"], blur=S["pile_blur"]
        )
    )
    fib = norm(texture_patch(rng, S["fibre"], size, span * 0.7, angle=angle + 0.3, blur=0.5))
    y, x = grid(size)
    ca, sa = np.cos(angle), np.sin(angle)
    per = rng.uniform(*S["weave_period"])
    ph = rng.uniform(0, 2 * np.pi, size=2)
    weave = np.cos(2 * np.pi * (ca * x + sa * y) / per + ph[0]) * np.cos(
        2 * np.pi * (-sa * x + ca * y) / per + ph[1]
    )
    a_pile, a_fib, a_weave = S["amp"]
    g = S["level"] + a_pile * pile + a_fib * fib + a_weave * weave
    tint = np.array(S["tint"], np.float32) * rng.uniform(0.96, 1.04)
    tint[1] *= rng.uniform(0.98, 1.02)
    img = g[..., None] * tint
    img = noise(jitter_light(img.astype(np.float32), rng), rng)
    return img, {"g": g}


def defect_texture(defect: str, img: np.ndarray, ctx: dict, rng: np.random.Generator):
    size = img.shape[0]
    y, x = grid(size)
    cy, cx = rng.uniform(0.15, 0.85, size=2)
    if defect == "color":
        m = blob(size, cy, cx, rng.uniform(0.06, 0.11), rng)
        col = np.array(
            rng.choice([[1.25, 0.75, 0.65], [0.70, 0.85, 1.30], [0.80, 1.15, 0.70]]), np.float32
        )
        bad = np.where(m[..., None], img * col, img)
    elif defect == "hole":
        r = rng.uniform(0.045, 0.085)
        m = blob(size, cy, cx, r, rng, aspect=rng.uniform(1.0, 1.8))
        d = np.clip(np.hypot(y - cy, x - cx) / r, 0, 1)
        bad = np.where(m[..., None], img * (0.18 + 0.45 * d**3)[..., None], img)
    elif defect == "metal_contamination":
        r = rng.uniform(0.05, 0.08)
        m = blob(size, cy, cx, r, rng, aspect=rng.uniform(1.0, 2.5), irregular=0.35)
        metal = texture_patch(rng, "coins", size, 90.0)
        metal = 0.55 + 0.35 * norm(metal).clip(-2, 2) / 2
        bad = np.where(
            m[..., None], (metal[..., None] * np.array([0.95, 0.95, 1.0], np.float32)), img
        )
    elif defect == "thread":
        m = curve(size, cy, cx, rng.uniform(0.25, 0.5), rng.uniform(0.010, 0.018), rng, wiggle=0.3)
        col = np.array(
            rng.choice([[0.95, 0.92, 0.85], [0.20, 0.20, 0.25], [0.75, 0.25, 0.20]]), np.float32
        )
        shade = (0.85 + 0.15 * norm(ctx["g"]).clip(-2, 2) / 2)[..., None]
        bad = np.where(m[..., None], col * shade, img)
    else:  # pragma: no cover
        raise DatasetError(f"unknown texture defect '{defect}'")
    bad = noise(bad.astype(np.float32), rng, 1.0)
    return bad, m
