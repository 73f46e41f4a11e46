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


def good_texture(rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict]:
    # carpet pile: the gravel photo at a small scale (loops) plus grass fibres, on a regular
    # weave grid; orientation = one of four 90-degree turns plus a small tilt
    span = rng.uniform(370, 410)  # source pixels per image side
    angle = rng.choice([0, np.pi / 2, np.pi, 3 * np.pi / 2]) + rng.uniform(-0.06, 0.06)
    pile = norm(texture_patch(rng, "gravel", size, span, angle=angle, blur=0.6))
    fib = norm(texture_patch(rng, "grass", size, span * 0.7, angle=angle + 0.3, blur=0.5))
    y, x = grid(size)
    ca, sa = np.cos(angle), np.sin(angle)
    per = rng.uniform(1 / 30, 1 / 26)
    ph = rng.uniform(0, 2 * np.pi, size=2)
    weave = np.cos(2 * np.pi * (ca * x + sa * y) / per + ph[0]) * np.cos(
        2 * np.pi * (-sa * x + ca * y) / per + ph[1]
    )
    g = 0.50 + 0.085 * pile + 0.045 * fib + 0.05 * weave
    tint = np.array([1.0, 0.86, 0.70], np.float32) * rng.uniform(0.96, 1.04)
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
