"""Object kind (hazelnut analogue): a streaked nut on a dark background, and its defects."""

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
    sample,
    source,
    texture_patch,
)


def _style(**kw) -> dict:
    """An object style: the nut's parameters, with ``kw`` replacing some."""
    return {**NUT, **kw}


#: The nut (hazelnut analogue): the original embedded object. Ranges are (low, high) draws;
#: ``a`` the half-length, ``aspect`` width/length, ``tip`` the pointed end's bulge, ``streak``
#: the photo of its surface streaks, ``base`` its colour, ``cap_from`` where along the axis the
#: cap of colour ``cap_col`` starts (-1: the whole object, >= 1: none).
NUT = {
    "bg": (0.075, 0.11),
    "a": (0.295, 0.325),
    "aspect": (0.82, 0.88),
    "tip": 0.12,
    "streak": "chelsea",
    "streak_amp": 0.10,
    "fine_amp": 0.04,
    "base": (0.62, 0.40, 0.21),
    "cap_from": 0.62,
    "cap_col": (0.58, 0.50, 0.40),
}
#: object styles by name; the twelve beyond the nut mirror MVTec AD's other object classes
#: only loosely (an elongated or round body of the class's colours on its background)
OBJECT_STYLES: dict[str, dict] = {
    "nut": NUT,
    "bottle": _style(bg=(0.78, 0.84), a=(0.33, 0.36), aspect=(0.97, 1.0), tip=0.0,
                     streak="moon", streak_amp=0.05, base=(0.20, 0.26, 0.16), cap_from=2.0),
    "cable": _style(bg=(0.84, 0.90), a=(0.36, 0.40), aspect=(0.95, 1.0), tip=0.0,
                    streak="grass", streak_amp=0.12, base=(0.36, 0.45, 0.58), cap_from=0.2,
                    cap_col=(0.25, 0.55, 0.30)),
    "capsule": _style(bg=(0.80, 0.86), a=(0.34, 0.37), aspect=(0.36, 0.40), tip=0.0,
                      streak="moon", streak_amp=0.04, base=(0.86, 0.52, 0.14), cap_from=-0.05,
                      cap_col=(0.90, 0.88, 0.84)),
    "metal_nut": _style(bg=(0.05, 0.08), a=(0.30, 0.33), aspect=(0.94, 1.0), tip=0.0,
                        streak="coins", streak_amp=0.12, fine_amp=0.06,
                        base=(0.58, 0.59, 0.63), cap_from=2.0),
    "pill": _style(bg=(0.12, 0.16), a=(0.33, 0.36), aspect=(0.50, 0.55), tip=0.0,
                   streak="moon", streak_amp=0.03, fine_amp=0.03, base=(0.93, 0.91, 0.86),
                   cap_from=2.0),
    "screw": _style(bg=(0.74, 0.80), a=(0.30, 0.34), aspect=(0.17, 0.20), tip=0.3,
                    streak="grass", streak_amp=0.15, base=(0.60, 0.60, 0.63), cap_from=0.72,
                    cap_col=(0.45, 0.45, 0.48)),
    "toothbrush": _style(bg=(0.55, 0.60), a=(0.36, 0.40), aspect=(0.22, 0.26), tip=0.0,
                         streak="grass", streak_amp=0.12, base=(0.90, 0.92, 0.95), cap_from=0.1,
                         cap_col=(0.25, 0.45, 0.85)),
    "transistor": _style(bg=(0.88, 0.92), a=(0.24, 0.27), aspect=(0.62, 0.68), tip=0.0,
                         streak="moon", streak_amp=0.05, base=(0.14, 0.14, 0.15), cap_from=0.5,
                         cap_col=(0.75, 0.72, 0.60)),
}


def good_object(rng: np.random.Generator, size: int, style: dict) -> tuple[np.ndarray, dict]:
    """A good object of ``style`` (an OBJECT_STYLES entry) and its geometry for the defects."""
    S = style
    y, x = grid(size)
    # faintly vignetted background (dark for the nut)
    bg_level = rng.uniform(*S["bg"])
    bg = bg_level - 0.035 * ((x - 0.5) ** 2 + (y - 0.5) ** 2)
    # object geometry (units of the side)
    cy, cx = 0.5 + rng.uniform(-0.05, 0.05, size=2)
    a = rng.uniform(*S["a"])
    b = a * rng.uniform(*S["aspect"])
    th = rng.uniform(0, 2 * np.pi)
    ct, st = np.cos(th), np.sin(th)
    u = ct * (x - cx) + st * (y - cy)  # along the tip axis
    v = -st * (x - cx) + ct * (y - cy)
    ang = np.arctan2(v / b, u / a)
    rho = np.hypot(u / a, v / b)
    edge = 1.0 + S["tip"] * np.clip(np.cos(ang), 0, 1) ** 10
    for k in (3, 4, 5):
        edge += rng.uniform(0, 0.012) * np.cos(k * ang + rng.uniform(0, 2 * np.pi))
    t = np.clip(rho / edge, 0, 1)
    alpha = np.clip((edge - rho) * b * size + 0.5, 0.0, 1.0)
    z = np.sqrt(1.0 - t**2)
    # streaks along the tip axis: the chelsea fur photo sampled in the nut's own frame,
    # stretched along u (fibres) -> rotates with the nut
    tex = source(S["streak"])
    k0y, k0x = rng.uniform(40, 120), rng.uniform(60, 390)
    streak = norm(sample(tex, k0y + v * 260.0, k0x + u * 60.0))
    fine = norm(sample(source("gravel"), 256 + v * 900.0, 256 + u * 900.0))
    hue = rng.uniform(-0.03, 0.03)
    b0, b1, b2 = S["base"]
    base = np.array([b0 + hue, b1, b2 - hue / 2], np.float32)
    lum = (0.80 + S["streak_amp"] * streak + S["fine_amp"] * fine) * (0.38 + 0.62 * z**0.7)
    # light from the upper left (image frame), rough pale cap at the base (opposite the tip)
    hl = 0.22 * np.exp(-((x - cx + 0.08 * a / 0.31) ** 2 + (y - cy + 0.09) ** 2) / (2 * 0.07**2))
    cap = np.clip((-u / a - S["cap_from"]) / 0.18, 0, 1) * (rho < edge)
    cap_col = np.array(S["cap_col"], np.float32)
    rough = norm(sample(source("gravel"), 100 + v * 700.0, 300 + u * 700.0))
    nut = lum[..., None] * base + hl[..., None] * np.array([0.9, 0.7, 0.5], np.float32)
    capv = cap_col * (0.75 + 0.10 * rough[..., None]) * (0.45 + 0.55 * z[..., None])
    nut = nut * (1 - cap[..., None]) + capv * cap[..., None]
    img = bg[..., None] * (1 - alpha[..., None]) + nut * alpha[..., None]
    img = noise(jitter_light(img.astype(np.float32), rng), rng)
    ctx = {"cy": cy, "cx": cx, "a": a, "b": b, "th": th, "inside": alpha >= 1.0, "z": z}
    return img, ctx


def point_in_object(ctx: dict, rng: np.random.Generator, rmax: float = 0.65) -> tuple[float, float]:
    r = rmax * np.sqrt(rng.uniform(0, 1))
    phi = rng.uniform(0, 2 * np.pi)
    u, v = r * ctx["a"] * np.cos(phi), r * ctx["b"] * np.sin(phi)
    ct, st = np.cos(ctx["th"]), np.sin(ctx["th"])
    return ctx["cy"] + st * u + ct * v, ctx["cx"] + ct * u - st * v


def defect_object(defect: str, img: np.ndarray, ctx: dict, rng: np.random.Generator):
    size = img.shape[0]
    y, x = grid(size)
    cy, cx = point_in_object(ctx, rng)
    bad = img.copy()
    if defect == "crack":
        m = curve(size, cy, cx, rng.uniform(0.18, 0.34), rng.uniform(0.008, 0.016), rng)
        m &= ctx["inside"]
        bad[m] = img[m] * rng.uniform(0.2, 0.35) + 0.01
    elif defect == "hole":
        r = rng.uniform(0.04, 0.075)
        m = blob(size, cy, cx, r, rng, irregular=0.15) & ctx["inside"]
        d = np.clip(np.hypot(y - cy, x - cx) / r, 0, 1)
        shade = (0.12 + 0.55 * d**4)[..., None]
        bad = np.where(m[..., None], img * shade + 0.01, img)
    elif defect == "cut":
        r = rng.uniform(0.06, 0.10)
        m = blob(size, cy, cx, r, rng, aspect=rng.uniform(2.5, 4.0), irregular=0.1)
        m &= ctx["inside"]
        kern = texture_patch(rng, "gravel", size, 260.0, blur=1.0)
        pale = np.array([0.86, 0.74, 0.55], np.float32) * (0.85 + 0.12 * norm(kern))[..., None]
        bad = np.where(m[..., None], pale * (0.55 + 0.45 * ctx["z"][..., None]), img)
    elif defect == "print":
        r = rng.uniform(0.07, 0.11)
        m = blob(size, cy, cx, r, rng, aspect=rng.uniform(1.0, 1.6), irregular=0.1)
        m &= ctx["inside"]
        page = texture_patch(rng, "page", size, 320.0)  # dark glyph strokes on paper
        ink = np.clip((0.62 - page) / 0.25, 0, 1)
        col = np.array(
            rng.choice([[0.15, 0.10, 0.55], [0.55, 0.08, 0.10], [0.05, 0.05, 0.05]]), np.float32
        )
        wash = 0.25 + 0.75 * ink
        bad = np.where(
            m[..., None], img * (1 - wash[..., None] * 0.85) + col * wash[..., None] * 0.85, img
        )
    else:  # pragma: no cover - guarded by DEFECTS
        raise DatasetError(f"unknown object defect '{defect}'")
    bad = noise(bad.astype(np.float32), rng, 1.0)
    return bad, m
