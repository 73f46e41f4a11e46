"""Structure kind (zipper analogue): grayscale interlocking teeth between fabric tapes, and its defects."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ...errors import DatasetError
from .primitives import (
    blob,
    blurred,
    grid,
    jitter_light,
    noise,
    norm,
    sample,
    source,
    texture_patch,
)


def zipper_params(rng: np.random.Generator) -> dict:
    return {
        "xc": 0.5 + rng.uniform(-0.02, 0.02),
        "w": rng.uniform(0.105, 0.115),  # half-width of the teeth band
        "p": rng.uniform(0.064, 0.070),  # tooth period (one left + one right tooth)
        "phase": rng.uniform(0, 1),
        "tilt": rng.uniform(-0.02, 0.02),
        "fab": rng.uniform(0.30, 0.36),
        "tooth": rng.uniform(0.70, 0.78),
        "tex_off": 256.0 + rng.uniform(-25, 25, size=4),  # keeps lookups inside the photos
    }


def render_zipper(
    size: int, P: dict, missing: frozenset = frozenset(), shift: dict | None = None
) -> np.ndarray:
    """Grayscale zipper in [0, 1]. ``missing``: {(side, k)} teeth left out; ``shift``: {(side, k):
    dx} teeth moved sideways (side units)."""
    y, x = grid(size)
    ct, st = np.cos(P["tilt"]), np.sin(P["tilt"])
    xr = ct * (x - P["xc"]) - st * (y - 0.5)  # across the zipper, 0 at its axis
    yr = st * (x - P["xc"]) + ct * (y - 0.5)  # along the zipper
    w, p = P["w"], P["p"]
    to = P["tex_off"]
    # fabric tapes: fine woven texture (grass photo at a small scale) + weave lines
    weave = norm(sample(blurred("grass", 0.7), to[0] + yr * 440.0, to[1] + xr * 440.0))
    fabric = P["fab"] * (1.0 + 0.12 * weave.clip(-2.5, 2.5)) + 0.02 * np.cos(yr * 2 * np.pi / 0.012)
    # darker stitched tape border next to the teeth
    border = np.exp(-((np.abs(xr) - w - 0.012) ** 2) / (2 * 0.004**2))
    img = fabric * (1 - 0.35 * border)
    # teeth band: dark gap between teeth
    band = np.abs(xr) <= w
    img = np.where(band, 0.12 + 0.05 * weave, img)
    surf = norm(sample(source("moon"), to[2] + yr * 440.0, to[3] + xr * 440.0))
    q = (yr / p) + P["phase"]
    k = np.floor(q)
    f = q - k  # position within one period
    for side, lo in ((0, 0.0), (1, 0.5)):
        s = (f - lo - 0.25) / 0.25  # -1..1 across this side's tooth slot
        in_slot = np.abs(s) < 1.0
        kk = k.astype(np.int64)
        dx = np.zeros_like(xr)
        if shift:
            for (sd, ki), d in shift.items():
                if sd == side:
                    dx = np.where(kk == ki, d, dx)
        xs = xr - dx
        hgt = 0.88
        prof = np.sqrt(np.clip(1 - (s / hgt) ** 2, 0, 1))
        # coordinate from the tooth's own tape (-w) towards and past the axis (tip)
        t = xs if side == 0 else -xs
        tip = 0.28 * w - 0.25 * w * (1 - prof)  # rounded tip reaching past the axis
        tooth = in_slot & (np.abs(s) < hgt) & (t >= -w) & (t <= tip)
        if missing:
            for sd, ki in missing:
                if sd == side:
                    tooth &= kk != ki
        val = P["tooth"] * (0.55 + 0.45 * prof) * (1.0 + 0.06 * surf.clip(-2.5, 2.5))
        img = np.where(tooth, val, img)
    return img.astype(np.float32)


def good_structure(rng: np.random.Generator, size: int, style: dict) -> tuple[np.ndarray, dict]:
    """A good zipper (the structure kind has one style; ``style`` is empty)."""
    P = zipper_params(rng)
    img = render_zipper(size, P)
    light = rng.uniform(0.94, 1.06)
    img = noise(jitter_light(img * light, rng), rng)
    return img, {"P": P, "light": light}


def tooth_index(P: dict, yr: float) -> int:
    return int(np.floor(yr / P["p"] + P["phase"]))


def defect_structure(defect: str, img: np.ndarray, ctx: dict, rng: np.random.Generator):
    size = img.shape[0]
    P, light = ctx["P"], ctx["light"]
    yc = rng.uniform(0.15, 0.85)
    if defect in ("broken_teeth", "squeezed_teeth"):
        k0 = tooth_index(P, yc - 0.5)
        side = int(rng.integers(0, 2))
        n = int(rng.integers(1, 3)) if defect == "broken_teeth" else int(rng.integers(2, 4))
        teeth = {(side, k0 + i) for i in range(n)}
        if defect == "broken_teeth":
            if rng.uniform() < 0.5:  # sometimes both sides of the slot
                teeth |= {(1 - side, k0)}
            alt = render_zipper(size, P, missing=frozenset(teeth))
        else:
            d = rng.uniform(0.25, 0.4) * P["w"] * (1 if side == 0 else -1)
            alt = render_zipper(size, P, shift={t: d for t in teeth})
        ref = render_zipper(size, P)
        changed = np.abs(alt - ref) > 0.02
        m = ndi.binary_fill_holes(ndi.binary_dilation(changed, iterations=max(1, size // 128)))
        bad = np.where(m, alt * light + (img - ref * light), img)  # keep the good image's noise
        bad = np.where(m, bad * 0.97, bad)
        if not m.any():
            m = blob(size, yc, P["xc"], 0.02, rng)
            bad = np.where(m, img * 0.5, img)
    elif defect == "fabric_border":
        side = rng.choice([-1.0, 1.0])
        cx = P["xc"] + side * (P["w"] + rng.uniform(0.02, 0.05))
        m = blob(
            size, yc, cx, rng.uniform(0.04, 0.065), rng, aspect=rng.uniform(0.4, 0.8), irregular=0.4
        )
        fray = norm(texture_patch(rng, "grass", size, 120.0))
        bad = np.where(m, np.clip(0.45 + 0.22 * fray, 0.05, 0.95), img)
    elif defect == "rough":
        cx = P["xc"] + rng.uniform(-0.5, 0.5) * P["w"]
        m = blob(size, yc, cx, rng.uniform(0.045, 0.07), rng, irregular=0.3)
        pits = norm(texture_patch(rng, "gravel", size, 140.0))
        bad = np.where(m, img * (0.75 + 0.28 * pits.clip(-2, 2)), img)
    else:  # pragma: no cover
        raise DatasetError(f"unknown structure defect '{defect}'")
    bad = noise(bad.astype(np.float32), rng, 1.0)
    return bad, m
