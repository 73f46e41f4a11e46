"""Embedded dataset: a deterministic generator that writes a real MVTec-layout folder.

Built from photographs shipped inside scikit-image's wheel (no download; see ``SOURCES``)
plus procedural variation, so the workflow runs offline on a laptop with realistic-looking
images. Three classes mirror the study's three MVTec classes:

========================  ==========  =========  ================================================
class                     kind        analogue   look
========================  ==========  =========  ================================================
``synth_nut``             object      hazelnut   a brown, streaked nut with a rough cap on a dark
                                                 background; random position and rotation
``synth_carpet``          texture     carpet     a warm woven-looking pile (crops of the
                                                 ``gravel`` photo), rotated, flipped, re-lit
``synth_zipper``          structure   zipper     grayscale (single-channel PNG, as MVTec's
                                                 zipper): a vertical band of interlocking teeth
                                                 between two fabric tapes
========================  ==========  =========  ================================================

Defect types (4 per class; anomalies are assigned round-robin over them):

* object: ``crack`` (thin dark curve), ``cut`` (pale exposed kernel), ``hole`` (dark pit with
  a rim), ``print`` (ink stamp of text from the ``page`` photo).
* texture: ``color`` (dyed blob), ``hole`` (dark gap in the pile), ``metal_contamination``
  (a piece of the ``coins`` photo), ``thread`` (a stray coloured thread).
* structure: ``broken_teeth`` (teeth missing), ``fabric_border`` (frayed tape next to the
  teeth), ``rough`` (pitted tooth surface), ``squeezed_teeth`` (teeth pushed sideways).

Masks are exact: the written defective image differs from its (unwritten) good twin on
exactly the mask's pixels, each of them by at least ``MIN_DELTA`` grey levels in some channel,
and on no pixel outside the mask (:func:`render_pair` returns the twin for tests). Defects
cover roughly 0.3-5 % of the image.

Determinism: every image has its own ``numpy.random.Generator`` seeded by
``(class_seed, group, index)`` with ``class_seed`` derived from ``(seed, class name)``, so the
same seed, counts and size give byte-identical PNGs, generating one class never changes another,
and raising a count keeps the earlier images unchanged. Geometry is expressed in units of the
image side, so ``image_size`` changes resolution, not content.

CLI: ``python -m adloc.data.synthetic --root DIR [--classes ...] [--image-size 256] [--seed 0]
[--mvtec-counts] [--workers N]``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage as ndi

from ..errors import DatasetError

EMBEDDED_CLASSES: dict[str, str] = {
    "synth_nut": "object",
    "synth_carpet": "texture",
    "synth_zipper": "structure",
}
KINDS = ("object", "texture", "structure")
# MVTec AD class each kind mirrors (for MVTEC_COUNTS)
KIND_ANALOGUE = {"object": "hazelnut", "texture": "carpet", "structure": "zipper"}
DEFAULT_COUNTS = {"train_good": 50, "test_good": 12, "anomalies": 30}
# MVTec AD (train/good, test/good, anomalies) per class
MVTEC_COUNTS = {"hazelnut": (391, 40, 70), "carpet": (280, 28, 89), "zipper": (240, 32, 119)}
DEFECTS: dict[str, tuple[str, ...]] = {
    "object": ("crack", "cut", "hole", "print"),
    "texture": ("color", "hole", "metal_contamination", "thread"),
    "structure": ("broken_teeth", "fabric_border", "rough", "squeezed_teeth"),
}
# scikit-image sample images used (all ship inside the wheel; none needs pooch / network)
SOURCES = ("chelsea", "gravel", "grass", "coins", "page", "moon")
MIN_DELTA = 10  # grey levels: minimum change of every defect pixel (max over channels)
GENERATOR_VERSION = 1
_GROUPS = {"train_good": 0, "test_good": 1, "anomalies": 2}


# --------------------------------------------------------------------------- configuration
def kind_of(cls: str, kind: str | None = None) -> str:
    """The kind of a class: ``kind`` if given, else its EMBEDDED_CLASSES entry."""
    k = kind if kind is not None else EMBEDDED_CLASSES.get(cls)
    if k is None:
        raise DatasetError(
            f"unknown embedded class '{cls}': choose one of {', '.join(EMBEDDED_CLASSES)} or "
            f"give its kind ({', '.join(KINDS)})."
        )
    if k not in KINDS:
        raise DatasetError(
            f"unknown kind '{k}' for class '{cls}': choose one of {', '.join(KINDS)}."
        )
    return k


def mvtec_counts(cls: str, kind: str | None = None) -> dict[str, int]:
    """MVTec AD's counts for the class an embedded class mirrors (``synth_nut`` -> hazelnut).

    Also accepts an MVTec class name directly (``"carpet"``).
    """
    name = cls if cls in MVTEC_COUNTS else KIND_ANALOGUE[kind_of(cls, kind)]
    tg, sg, an = MVTEC_COUNTS[name]
    return {"train_good": tg, "test_good": sg, "anomalies": an}


def resolve_counts(
    counts: str | dict[str, Any] | None, cls: str, kind: str | None = None
) -> dict[str, int]:
    """Counts for ``cls`` from the config value ``dataset.synthetic.counts``.

    ``"mvtec"`` -> MVTec AD's counts of the class ``cls`` mirrors (:func:`mvtec_counts`);
    a dict -> validated, missing keys filled from DEFAULT_COUNTS; None -> DEFAULT_COUNTS.
    """
    if isinstance(counts, str):
        if counts.lower() != "mvtec":
            raise DatasetError(
                f"dataset.synthetic.counts must be 'mvtec' or a mapping, got '{counts}'."
            )
        return mvtec_counts(cls, kind)
    return _check_counts(counts)


def _check_counts(counts: dict[str, Any] | None) -> dict[str, int]:
    c = dict(DEFAULT_COUNTS if counts is None else counts)
    unknown = set(c) - set(DEFAULT_COUNTS)
    if unknown:
        raise DatasetError(
            f"unknown count key(s) {sorted(unknown)}: expected {sorted(DEFAULT_COUNTS)}."
        )
    out = {}
    for k, default in DEFAULT_COUNTS.items():
        v = c.get(k, default)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise DatasetError(f"count '{k}' must be a non-negative integer, got {v!r}.")
        out[k] = int(v)
    if out["train_good"] < 1:
        raise DatasetError("count 'train_good' must be at least 1.")
    if out["test_good"] + out["anomalies"] < 1:
        raise DatasetError("counts 'test_good' + 'anomalies' must be at least 1.")
    return out


def class_seed(seed: int, cls: str) -> int:
    """64-bit seed of one class, derived from (seed, class name) only."""
    digest = hashlib.sha256(f"adloc-synthetic:{int(seed)}:{cls}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _rng(cseed: int, group: str, index: int) -> np.random.Generator:
    return np.random.default_rng([cseed, _GROUPS[group], int(index)])


# --------------------------------------------------------------------------- sources
@functools.lru_cache(maxsize=None)
def _source(name: str) -> np.ndarray:
    """A scikit-image sample photo as float32 grayscale in [0, 1] (read-only, cached)."""
    import skimage.data

    img = np.asarray(getattr(skimage.data, name)())
    if img.ndim == 3:
        img = img[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    img = img.astype(np.float32)
    if img.max() > 1.5:
        img /= 255.0
    img.setflags(write=False)
    return img


def _norm(t: np.ndarray) -> np.ndarray:
    """Zero-mean, unit-std version of ``t`` (texture modulation)."""
    return (t - t.mean()) / (t.std() + 1e-6)


@functools.lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in units of the image side: (y, x), each (S, S)."""
    c = (np.arange(size, dtype=np.float32) + 0.5) / size
    y, x = np.meshgrid(c, c, indexing="ij")
    y.setflags(write=False)
    x.setflags(write=False)
    return y, x


def _sample(tex: np.ndarray, ty: np.ndarray, tx: np.ndarray) -> np.ndarray:
    """Bilinear lookup of ``tex`` at source-pixel coordinates (mirrored at the borders)."""
    return ndi.map_coordinates(tex, [ty, tx], order=1, mode="mirror").astype(np.float32)


def _texture_patch(
    rng: np.random.Generator,
    name: str,
    size: int,
    span: float,
    angle: float | None = None,
    stretch: tuple[float, float] = (1.0, 1.0),
    blur: float = 0.0,
) -> np.ndarray:
    """An (S, S) crop of source ``name`` covering ``span`` source pixels, rotated and re-lit."""
    tex = _source(name)
    if blur:
        tex = _blurred(name, blur)
    h, w = tex.shape
    y, x = _grid(size)
    a = rng.uniform(0, 2 * np.pi) if angle is None else angle
    ca, sa = np.cos(a), np.sin(a)
    u, v = (x - 0.5) * span * stretch[1], (y - 0.5) * span * stretch[0]
    margin = 0.75 * span * max(stretch)
    cy = rng.uniform(min(margin, h / 2), max(h - margin, h / 2))
    cx = rng.uniform(min(margin, w / 2), max(w - margin, w / 2))
    return _sample(tex, cy + sa * u + ca * v, cx + ca * u - sa * v)


@functools.lru_cache(maxsize=None)
def _blurred(name: str, sigma: float) -> np.ndarray:
    t = ndi.gaussian_filter(_source(name), sigma).astype(np.float32)
    t.setflags(write=False)
    return t


# --------------------------------------------------------------------------- shapes
def _blob(
    size: int,
    cy: float,
    cx: float,
    r: float,
    rng: np.random.Generator,
    aspect: float = 1.0,
    irregular: float = 0.25,
) -> np.ndarray:
    """Irregular star-shaped blob mask (centre/radius in units of the side)."""
    y, x = _grid(size)
    ang = rng.uniform(0, 2 * np.pi)
    dy, dx = y - cy, x - cx
    u = np.cos(ang) * dx + np.sin(ang) * dy
    v = (-np.sin(ang) * dx + np.cos(ang) * dy) * aspect
    theta = np.arctan2(v, u)
    rad = np.ones_like(theta)
    for k in range(2, 6):
        rad += rng.uniform(0, irregular) / k * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    m = np.hypot(u, v) <= r * rad
    if not m.any():  # tiny images: at least the centre pixel
        m[min(int(cy * size), size - 1), min(int(cx * size), size - 1)] = True
    return m


def _curve(
    size: int,
    cy: float,
    cx: float,
    length: float,
    width: float,
    rng: np.random.Generator,
    wiggle: float = 0.35,
) -> np.ndarray:
    """Mask of a smooth random curve centred near (cy, cx), ``length``/``width`` in side units."""
    n = 24
    head = rng.uniform(0, 2 * np.pi)
    turns = np.cumsum(rng.normal(0, wiggle, n))
    step = length / n
    pts = np.zeros((n + 1, 2))
    for i in range(n):
        pts[i + 1] = pts[i] + step * np.array([np.cos(head + turns[i]), np.sin(head + turns[i])])
    pts -= pts.mean(axis=0)
    pts = (pts + [cx, cy]) * size
    im = Image.new("L", (size, size), 0)
    w = max(1, int(round(width * size)))
    ImageDraw.Draw(im).line([tuple(p) for p in pts], fill=255, width=w, joint="curve")
    m = np.asarray(im) > 0
    if not m.any():
        m[min(int(cy * size), size - 1), min(int(cx * size), size - 1)] = True
    return m


def _quantize(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _finalize(good: np.ndarray, bad: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Make the uint8 defective image differ from ``good`` exactly on ``mask``.

    Outside the mask it is copied from ``good``; inside, every pixel whose change is below
    MIN_DELTA (max over channels) is pushed by MIN_DELTA away from the nearer extreme.
    """
    out = np.where(mask[..., None] if good.ndim == 3 else mask, bad, good)
    diff = np.abs(out.astype(np.int16) - good.astype(np.int16))
    if diff.ndim == 3:
        diff = diff.max(axis=2)
    weak = mask & (diff < MIN_DELTA)
    if weak.any():
        g = good[weak].astype(np.int16)
        bright = (g.mean(axis=-1, keepdims=True) if g.ndim == 2 else g) >= 128
        out[weak] = np.where(bright, g - MIN_DELTA, g + MIN_DELTA).astype(np.uint8)
    return out, mask


def _jitter_light(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Global brightness/contrast jitter and a faint illumination gradient."""
    y, x = _grid(img.shape[0])
    ang = rng.uniform(0, 2 * np.pi)
    ramp = rng.uniform(0, 0.04) * ((x - 0.5) * np.cos(ang) + (y - 0.5) * np.sin(ang))
    if img.ndim == 3:
        ramp = ramp[..., None]
    m = img.mean()
    return (img - m) * rng.uniform(0.93, 1.07) + m * rng.uniform(0.94, 1.06) + ramp


def _noise(img: np.ndarray, rng: np.random.Generator, sigma: float = 1.5) -> np.ndarray:
    return img + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(sigma / 255.0)


# --------------------------------------------------------------------------- object (nut)
def _good_object(rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict]:
    y, x = _grid(size)
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
    tex = _source("chelsea")
    k0y, k0x = rng.uniform(40, 120), rng.uniform(60, 390)
    streak = _norm(_sample(tex, k0y + v * 260.0, k0x + u * 60.0))
    fine = _norm(_sample(_source("gravel"), 256 + v * 900.0, 256 + u * 900.0))
    hue = rng.uniform(-0.03, 0.03)
    base = np.array([0.62 + hue, 0.40, 0.21 - hue / 2], np.float32)
    lum = (0.80 + 0.10 * streak + 0.04 * fine) * (0.38 + 0.62 * z**0.7)
    # light from the upper left (image frame), rough pale cap at the base (opposite the tip)
    hl = 0.22 * np.exp(-((x - cx + 0.08 * a / 0.31) ** 2 + (y - cy + 0.09) ** 2) / (2 * 0.07**2))
    cap = np.clip((-u / a - 0.62) / 0.18, 0, 1) * (rho < edge)
    cap_col = np.array([0.58, 0.50, 0.40], np.float32)
    rough = _norm(_sample(_source("gravel"), 100 + v * 700.0, 300 + u * 700.0))
    nut = lum[..., None] * base + hl[..., None] * np.array([0.9, 0.7, 0.5], np.float32)
    capv = cap_col * (0.75 + 0.10 * rough[..., None]) * (0.45 + 0.55 * z[..., None])
    nut = nut * (1 - cap[..., None]) + capv * cap[..., None]
    img = bg[..., None] * (1 - alpha[..., None]) + nut * alpha[..., None]
    img = _noise(_jitter_light(img.astype(np.float32), rng), rng)
    ctx = {"cy": cy, "cx": cx, "a": a, "b": b, "th": th, "inside": alpha >= 1.0, "z": z}
    return img, ctx


def _point_in_object(
    ctx: dict, rng: np.random.Generator, rmax: float = 0.65
) -> tuple[float, float]:
    r = rmax * np.sqrt(rng.uniform(0, 1))
    phi = rng.uniform(0, 2 * np.pi)
    u, v = r * ctx["a"] * np.cos(phi), r * ctx["b"] * np.sin(phi)
    ct, st = np.cos(ctx["th"]), np.sin(ctx["th"])
    return ctx["cy"] + st * u + ct * v, ctx["cx"] + ct * u - st * v


def _defect_object(defect: str, img: np.ndarray, ctx: dict, rng: np.random.Generator):
    size = img.shape[0]
    y, x = _grid(size)
    cy, cx = _point_in_object(ctx, rng)
    bad = img.copy()
    if defect == "crack":
        m = _curve(size, cy, cx, rng.uniform(0.18, 0.34), rng.uniform(0.008, 0.016), rng)
        m &= ctx["inside"]
        bad[m] = img[m] * rng.uniform(0.2, 0.35) + 0.01
    elif defect == "hole":
        r = rng.uniform(0.04, 0.075)
        m = _blob(size, cy, cx, r, rng, irregular=0.15) & ctx["inside"]
        d = np.clip(np.hypot(y - cy, x - cx) / r, 0, 1)
        shade = (0.12 + 0.55 * d**4)[..., None]
        bad = np.where(m[..., None], img * shade + 0.01, img)
    elif defect == "cut":
        r = rng.uniform(0.06, 0.10)
        m = _blob(size, cy, cx, r, rng, aspect=rng.uniform(2.5, 4.0), irregular=0.1)
        m &= ctx["inside"]
        kern = _texture_patch(rng, "gravel", size, 260.0, blur=1.0)
        pale = np.array([0.86, 0.74, 0.55], np.float32) * (0.85 + 0.12 * _norm(kern))[..., None]
        bad = np.where(m[..., None], pale * (0.55 + 0.45 * ctx["z"][..., None]), img)
    elif defect == "print":
        r = rng.uniform(0.07, 0.11)
        m = _blob(size, cy, cx, r, rng, aspect=rng.uniform(1.0, 1.6), irregular=0.1)
        m &= ctx["inside"]
        page = _texture_patch(rng, "page", size, 320.0)  # dark glyph strokes on paper
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
    bad = _noise(bad.astype(np.float32), rng, 1.0)
    return bad, m


# --------------------------------------------------------------------------- texture (carpet)
def _good_texture(rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict]:
    # carpet pile: the gravel photo at a small scale (loops) plus grass fibres, on a regular
    # weave grid; orientation = one of four 90-degree turns plus a small tilt
    span = rng.uniform(370, 410)  # source pixels per image side
    angle = rng.choice([0, np.pi / 2, np.pi, 3 * np.pi / 2]) + rng.uniform(-0.06, 0.06)
    pile = _norm(_texture_patch(rng, "gravel", size, span, angle=angle, blur=0.6))
    fib = _norm(_texture_patch(rng, "grass", size, span * 0.7, angle=angle + 0.3, blur=0.5))
    y, x = _grid(size)
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
    img = _noise(_jitter_light(img.astype(np.float32), rng), rng)
    return img, {"g": g}


def _defect_texture(defect: str, img: np.ndarray, ctx: dict, rng: np.random.Generator):
    size = img.shape[0]
    y, x = _grid(size)
    cy, cx = rng.uniform(0.15, 0.85, size=2)
    if defect == "color":
        m = _blob(size, cy, cx, rng.uniform(0.06, 0.11), rng)
        col = np.array(
            rng.choice([[1.25, 0.75, 0.65], [0.70, 0.85, 1.30], [0.80, 1.15, 0.70]]), np.float32
        )
        bad = np.where(m[..., None], img * col, img)
    elif defect == "hole":
        r = rng.uniform(0.045, 0.085)
        m = _blob(size, cy, cx, r, rng, aspect=rng.uniform(1.0, 1.8))
        d = np.clip(np.hypot(y - cy, x - cx) / r, 0, 1)
        bad = np.where(m[..., None], img * (0.18 + 0.45 * d**3)[..., None], img)
    elif defect == "metal_contamination":
        r = rng.uniform(0.05, 0.08)
        m = _blob(size, cy, cx, r, rng, aspect=rng.uniform(1.0, 2.5), irregular=0.35)
        metal = _texture_patch(rng, "coins", size, 90.0)
        metal = 0.55 + 0.35 * _norm(metal).clip(-2, 2) / 2
        bad = np.where(
            m[..., None], (metal[..., None] * np.array([0.95, 0.95, 1.0], np.float32)), img
        )
    elif defect == "thread":
        m = _curve(size, cy, cx, rng.uniform(0.25, 0.5), rng.uniform(0.010, 0.018), rng, wiggle=0.3)
        col = np.array(
            rng.choice([[0.95, 0.92, 0.85], [0.20, 0.20, 0.25], [0.75, 0.25, 0.20]]), np.float32
        )
        shade = (0.85 + 0.15 * _norm(ctx["g"]).clip(-2, 2) / 2)[..., None]
        bad = np.where(m[..., None], col * shade, img)
    else:  # pragma: no cover
        raise DatasetError(f"unknown texture defect '{defect}'")
    bad = _noise(bad.astype(np.float32), rng, 1.0)
    return bad, m


# --------------------------------------------------------------------------- structure (zipper)
def _zipper_params(rng: np.random.Generator) -> dict:
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


def _render_zipper(
    size: int, P: dict, missing: frozenset = frozenset(), shift: dict | None = None
) -> np.ndarray:
    """Grayscale zipper in [0, 1]. ``missing``: {(side, k)} teeth left out; ``shift``: {(side, k):
    dx} teeth moved sideways (side units)."""
    y, x = _grid(size)
    ct, st = np.cos(P["tilt"]), np.sin(P["tilt"])
    xr = ct * (x - P["xc"]) - st * (y - 0.5)  # across the zipper, 0 at its axis
    yr = st * (x - P["xc"]) + ct * (y - 0.5)  # along the zipper
    w, p = P["w"], P["p"]
    to = P["tex_off"]
    # fabric tapes: fine woven texture (grass photo at a small scale) + weave lines
    weave = _norm(_sample(_blurred("grass", 0.7), to[0] + yr * 440.0, to[1] + xr * 440.0))
    fabric = P["fab"] * (1.0 + 0.12 * weave.clip(-2.5, 2.5)) + 0.02 * np.cos(yr * 2 * np.pi / 0.012)
    # darker stitched tape border next to the teeth
    border = np.exp(-((np.abs(xr) - w - 0.012) ** 2) / (2 * 0.004**2))
    img = fabric * (1 - 0.35 * border)
    # teeth band: dark gap between teeth
    band = np.abs(xr) <= w
    img = np.where(band, 0.12 + 0.05 * weave, img)
    surf = _norm(_sample(_source("moon"), to[2] + yr * 440.0, to[3] + xr * 440.0))
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


def _good_structure(rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict]:
    P = _zipper_params(rng)
    img = _render_zipper(size, P)
    light = rng.uniform(0.94, 1.06)
    img = _noise(_jitter_light(img * light, rng), rng)
    return img, {"P": P, "light": light}


def _tooth_index(P: dict, yr: float) -> int:
    return int(np.floor(yr / P["p"] + P["phase"]))


def _defect_structure(defect: str, img: np.ndarray, ctx: dict, rng: np.random.Generator):
    size = img.shape[0]
    P, light = ctx["P"], ctx["light"]
    yc = rng.uniform(0.15, 0.85)
    if defect in ("broken_teeth", "squeezed_teeth"):
        k0 = _tooth_index(P, yc - 0.5)
        side = int(rng.integers(0, 2))
        n = int(rng.integers(1, 3)) if defect == "broken_teeth" else int(rng.integers(2, 4))
        teeth = {(side, k0 + i) for i in range(n)}
        if defect == "broken_teeth":
            if rng.uniform() < 0.5:  # sometimes both sides of the slot
                teeth |= {(1 - side, k0)}
            alt = _render_zipper(size, P, missing=frozenset(teeth))
        else:
            d = rng.uniform(0.25, 0.4) * P["w"] * (1 if side == 0 else -1)
            alt = _render_zipper(size, P, shift={t: d for t in teeth})
        ref = _render_zipper(size, P)
        changed = np.abs(alt - ref) > 0.02
        m = ndi.binary_fill_holes(ndi.binary_dilation(changed, iterations=max(1, size // 128)))
        bad = np.where(m, alt * light + (img - ref * light), img)  # keep the good image's noise
        bad = np.where(m, bad * 0.97, bad)
        if not m.any():
            m = _blob(size, yc, P["xc"], 0.02, rng)
            bad = np.where(m, img * 0.5, img)
    elif defect == "fabric_border":
        side = rng.choice([-1.0, 1.0])
        cx = P["xc"] + side * (P["w"] + rng.uniform(0.02, 0.05))
        m = _blob(
            size, yc, cx, rng.uniform(0.04, 0.065), rng, aspect=rng.uniform(0.4, 0.8), irregular=0.4
        )
        fray = _norm(_texture_patch(rng, "grass", size, 120.0))
        bad = np.where(m, np.clip(0.45 + 0.22 * fray, 0.05, 0.95), img)
    elif defect == "rough":
        cx = P["xc"] + rng.uniform(-0.5, 0.5) * P["w"]
        m = _blob(size, yc, cx, rng.uniform(0.045, 0.07), rng, irregular=0.3)
        pits = _norm(_texture_patch(rng, "gravel", size, 140.0))
        bad = np.where(m, img * (0.75 + 0.28 * pits.clip(-2, 2)), img)
    else:  # pragma: no cover
        raise DatasetError(f"unknown structure defect '{defect}'")
    bad = _noise(bad.astype(np.float32), rng, 1.0)
    return bad, m


# --------------------------------------------------------------------------- rendering API
_GOOD: dict[str, Callable] = {
    "object": _good_object,
    "texture": _good_texture,
    "structure": _good_structure,
}
_DEFECT: dict[str, Callable] = {
    "object": _defect_object,
    "texture": _defect_texture,
    "structure": _defect_structure,
}


def render_pair(
    kind: str, image_size: int, rng: np.random.Generator, defect: str | None = None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Render one good image and, if ``defect`` is given, its defective twin and mask.

    Returns uint8 ``good`` ((S, S, 3) RGB, or (S, S) gray for ``structure``), uint8 ``bad``
    (same shape) and bool ``mask`` (S, S); ``bad`` differs from ``good`` exactly on ``mask``,
    by at least MIN_DELTA grey levels (max over channels) on every mask pixel.
    """
    kind = kind_of("", kind)
    if defect is not None and defect not in DEFECTS[kind]:
        raise DatasetError(
            f"unknown defect '{defect}' for kind '{kind}': choose one of {', '.join(DEFECTS[kind])}."
        )
    good_f, ctx = _GOOD[kind](rng, int(image_size))
    good = _quantize(good_f)
    if defect is None:
        return good, None, None
    bad_f, mask = _DEFECT[kind](defect, good.astype(np.float32) / 255.0, ctx, rng)
    bad, mask = _finalize(good, _quantize(bad_f), mask)
    return good, bad, mask


def _save_png(path: Path, arr: np.ndarray) -> None:
    Image.fromarray(arr).save(path, format="PNG", compress_level=3)


def _write_image(task: tuple) -> None:
    """Render and write one image (and its mask): a task of :func:`generate_class`."""
    kind, size, cseed, group, index, defect, image_path, mask_path = task
    good, bad, mask = render_pair(kind, size, _rng(cseed, group, index), defect=defect)
    if defect is None:
        _save_png(image_path, good)
    else:
        _save_png(image_path, bad)
        _save_png(mask_path, mask.astype(np.uint8) * 255)


def _run_tasks(tasks: list[tuple], workers: int) -> None:
    workers = int(workers)
    if workers < 0:
        raise DatasetError(f"workers must be >= 0 (0: one per CPU), got {workers}.")
    if workers == 0:
        workers = os.cpu_count() or 1
    workers = min(workers, len(tasks))
    if workers <= 1:
        for t in tasks:
            _write_image(t)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # fork: no re-import of the caller's main module (a Snakemake script runs at import)
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    chunk = max(1, len(tasks) // (workers * 4))
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        for _ in pool.map(_write_image, tasks, chunksize=chunk):
            pass


def generate_class(
    root: str | os.PathLike,
    cls: str,
    counts: dict[str, int] | None = None,
    image_size: int = 256,
    seed: int = 0,
    kind: str | None = None,
    workers: int = 1,
) -> Path:
    """Write class ``cls`` in MVTec layout under ``root``; returns ``root/cls``.

    ``counts``: ``{"train_good", "test_good", "anomalies"}`` (default DEFAULT_COUNTS; see
    :func:`mvtec_counts`). Anomaly ``i`` gets defect type ``DEFECTS[kind][i % n]`` and file index
    ``i // n`` in its folder. The class is built in a hidden temporary sibling folder and renamed
    onto ``root/cls`` (an old one is removed), so a killed run never leaves a half class. Also
    writes ``root/cls/synthetic.json`` (parameters, for provenance). Concurrent generation of
    the same class into the same root is not supported.

    ``workers``: processes that render and write images in parallel (0: one per CPU). Every
    image has its own seed, so the files are byte-identical for any number of workers.
    """
    kind = kind_of(cls, kind)
    c = _check_counts(counts)
    size = int(image_size)
    if not 8 <= size <= 4096:
        raise DatasetError(f"image_size must be between 8 and 4096, got {image_size}.")
    if not cls or "/" in cls or cls.startswith("."):
        raise DatasetError(f"invalid class name '{cls}'.")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    target = root / cls
    for pattern in (f".{cls}.tmp-*", f".{cls}.old-*"):  # left by a killed run
        for stale in root.glob(pattern):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{cls}.tmp-", dir=root))
    os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; the class folder is an ordinary folder
    try:
        cseed = class_seed(seed, cls)
        defects = DEFECTS[kind]
        folders = {"train_good": tmp / "train" / "good", "test_good": tmp / "test" / "good"}
        for f in folders.values():
            f.mkdir(parents=True)
        tasks = [
            (kind, size, cseed, group, i, None, folders[group] / f"{i:03d}.png", None)
            for group in ("train_good", "test_good")
            for i in range(c[group])
        ]
        for d in defects[: max(0, min(len(defects), c["anomalies"]))]:
            (tmp / "test" / d).mkdir(parents=True)
            (tmp / "ground_truth" / d).mkdir(parents=True)
        for i in range(c["anomalies"]):
            d = defects[i % len(defects)]
            j = i // len(defects)
            tasks.append(
                (kind, size, cseed, "anomalies", i, d, tmp / "test" / d / f"{j:03d}.png",
                 tmp / "ground_truth" / d / f"{j:03d}_mask.png")
            )
        _run_tasks(tasks, workers)
        meta = {
            "class": cls,
            "kind": kind,
            "analogue": KIND_ANALOGUE[kind],
            "counts": c,
            "image_size": size,
            "seed": int(seed),
            "generator_version": GENERATOR_VERSION,
            "defects": list(defects),
            "sources": [f"skimage.data.{s}" for s in SOURCES],
        }
        (tmp / "synthetic.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{cls}.old-", dir=root))
            os.replace(target, old / cls)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def generate_dataset(
    root: str | os.PathLike,
    classes: list[str] | None = None,
    image_size: int = 256,
    seed: int = 0,
    use_mvtec_counts: bool = False,
    counts: dict[str, int] | None = None,
    workers: int = 1,
) -> list[Path]:
    """Generate several classes (default: all EMBEDDED_CLASSES); ``workers`` as :func:`generate_class`."""
    out = []
    for cls in classes or list(EMBEDDED_CLASSES):
        cnt = mvtec_counts(cls) if use_mvtec_counts else counts
        out.append(generate_class(root, cls, cnt, image_size=image_size, seed=seed, workers=workers))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m adloc.data.synthetic",
        description="Write the embedded synthetic dataset in MVTec AD layout.",
    )
    ap.add_argument("--root", required=True, help="output dataset root")
    ap.add_argument(
        "--classes",
        nargs="+",
        default=list(EMBEDDED_CLASSES),
        help=f"classes (default: {' '.join(EMBEDDED_CLASSES)})",
    )
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--mvtec-counts",
        action="store_true",
        help="use MVTec AD's per-class counts instead of the small defaults",
    )
    ap.add_argument("--train-good", type=int, default=None)
    ap.add_argument("--test-good", type=int, default=None)
    ap.add_argument("--anomalies", type=int, default=None)
    ap.add_argument(
        "--workers", type=int, default=1,
        help="processes rendering images in parallel (0: one per CPU); output is identical",
    )
    args = ap.parse_args(argv)
    try:
        for cls in args.classes:
            cnt = mvtec_counts(cls) if args.mvtec_counts else dict(DEFAULT_COUNTS)
            for key in ("train_good", "test_good", "anomalies"):
                if getattr(args, key) is not None:
                    cnt[key] = getattr(args, key)
            t = time.perf_counter()
            path = generate_class(
                args.root, cls, cnt, image_size=args.image_size, seed=args.seed, workers=args.workers
            )
            n = sum(cnt.values())
            print(
                f"{cls}: {n} images at {args.image_size}px in {time.perf_counter() - t:.2f} s -> {path}"
            )
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
