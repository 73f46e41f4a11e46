"""Rendering primitives: source photos, sampling, defect shapes, lighting, exact masks."""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage as ndi

# scikit-image sample images used (all ship inside the wheel; none needs pooch / network)
SOURCES = ("chelsea", "gravel", "grass", "coins", "page", "moon")
MIN_DELTA = 10  # grey levels: minimum change of every defect pixel (max over channels)


@functools.lru_cache(maxsize=None)
def source(name: str) -> np.ndarray:
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


def norm(t: np.ndarray) -> np.ndarray:
    """Zero-mean, unit-std version of ``t`` (texture modulation)."""
    return (t - t.mean()) / (t.std() + 1e-6)


@functools.lru_cache(maxsize=8)
def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in units of the image side: (y, x), each (S, S)."""
    c = (np.arange(size, dtype=np.float32) + 0.5) / size
    y, x = np.meshgrid(c, c, indexing="ij")
    y.setflags(write=False)
    x.setflags(write=False)
    return y, x


def sample(tex: np.ndarray, ty: np.ndarray, tx: np.ndarray) -> np.ndarray:
    """Bilinear lookup of ``tex`` at source-pixel coordinates (mirrored at the borders)."""
    return ndi.map_coordinates(tex, [ty, tx], order=1, mode="mirror").astype(np.float32)


def texture_patch(
    rng: np.random.Generator,
    name: str,
    size: int,
    span: float,
    angle: float | None = None,
    stretch: tuple[float, float] = (1.0, 1.0),
    blur: float = 0.0,
) -> np.ndarray:
    """An (S, S) crop of source ``name`` covering ``span`` source pixels, rotated and re-lit."""
    tex = source(name)
    if blur:
        tex = blurred(name, blur)
    h, w = tex.shape
    y, x = grid(size)
    a = rng.uniform(0, 2 * np.pi) if angle is None else angle
    ca, sa = np.cos(a), np.sin(a)
    u, v = (x - 0.5) * span * stretch[1], (y - 0.5) * span * stretch[0]
    margin = 0.75 * span * max(stretch)
    cy = rng.uniform(min(margin, h / 2), max(h - margin, h / 2))
    cx = rng.uniform(min(margin, w / 2), max(w - margin, w / 2))
    return sample(tex, cy + sa * u + ca * v, cx + ca * u - sa * v)


@functools.lru_cache(maxsize=None)
def blurred(name: str, sigma: float) -> np.ndarray:
    t = ndi.gaussian_filter(source(name), sigma).astype(np.float32)
    t.setflags(write=False)
    return t


# --------------------------------------------------------------------------- shapes
def blob(
    size: int,
    cy: float,
    cx: float,
    r: float,
    rng: np.random.Generator,
    aspect: float = 1.0,
    irregular: float = 0.25,
) -> np.ndarray:
    """Irregular star-shaped blob mask (centre/radius in units of the side)."""
    y, x = grid(size)
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


def curve(
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


def quantize(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def finalize(good: np.ndarray, bad: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def jitter_light(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Global brightness/contrast jitter and a faint illumination gradient."""
    y, x = grid(img.shape[0])
    ang = rng.uniform(0, 2 * np.pi)
    ramp = rng.uniform(0, 0.04) * ((x - 0.5) * np.cos(ang) + (y - 0.5) * np.sin(ang))
    if img.ndim == 3:
        ramp = ramp[..., None]
    m = img.mean()
    return (img - m) * rng.uniform(0.93, 1.07) + m * rng.uniform(0.94, 1.06) + ramp


def noise(img: np.ndarray, rng: np.random.Generator, sigma: float = 1.5) -> np.ndarray:
    return img + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(sigma / 255.0)
