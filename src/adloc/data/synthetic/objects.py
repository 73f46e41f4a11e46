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


def good_object(rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict]:
    y, x = grid(size)
    # dark, faintly vignetted background (hazelnut-like)
    bg_level = rng.uniform(0.075, 0.11)
    bg = bg_level - 0.035 * ((x - 0.5) ** 2 + (y - 0.5) ** 2)
    # nut geometry (units of the side)
    cy, cx = 0.5 + rng.uniform(-0.05, 0.05, size=2)
    a = rng.uniform(0.295, 0.325)
    b = a * rng.uniform(0.82, 0.88)
    th = rng.uniform(0, 2 * np.pi)
    ct, st = np.cos(th), np.sin(th)
    u = ct * (x - cx) + st * (y - cy)  # along the tip axis
    v = -st * (x - cx) + ct * (y - cy)
    ang = np.arctan2(v / b, u / a)
    rho = np.hypot(u / a, v / b)
    edge = 1.0 + 0.12 * np.clip(np.cos(ang), 0, 1) ** 10
    for k in (3, 4, 5):
        edge += rng.uniform(0, 0.012) * np.cos(k * ang + rng.uniform(0, 2 * np.pi))
    t = np.clip(rho / edge, 0, 1)
    alpha = np.clip((edge - rho) * b * size + 0.5, 0.0, 1.0)
    z = np.sqrt(1.0 - t**2)
    # streaks along the tip axis: the chelsea fur photo sampled in the nut's own frame,
    # stretched along u (fibres) -> rotates with the nut
    tex = source("chelsea")
    k0y, k0x = rng.uniform(40, 120), rng.uniform(60, 390)
    streak = norm(sample(tex, k0y + v * 260.0, k0x + u * 60.0))
    fine = norm(sample(source("gravel"), 256 + v * 900.0, 256 + u * 900.0))
    hue = rng.uniform(-0.03, 0.03)
    base = np.array([0.62 + hue, 0.40, 0.21 - hue / 2], np.float32)
    lum = (0.80 + 0.10 * streak + 0.04 * fine) * (0.38 + 0.62 * z**0.7)
    # light from the upper left (image frame), rough pale cap at the base (opposite the tip)
    hl = 0.22 * np.exp(-((x - cx + 0.08 * a / 0.31) ** 2 + (y - cy + 0.09) ** 2) / (2 * 0.07**2))
    cap = np.clip((-u / a - 0.62) / 0.18, 0, 1) * (rho < edge)
    cap_col = np.array([0.58, 0.50, 0.40], np.float32)
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
