"""The domain-shift operations, one function each (see :mod:`adloc.data.shift` for the recipe).

Images are float32 tensors ``(3, H, W)`` in [0, 1]; masks float32 ``(H, W)`` holding 0/1 (so the
same geometric call moves both; :func:`affine` reads masks with nearest interpolation). Which
library does each step, and why:

* resize, reflect pad, centre crop, colour jitter, Gaussian blur: ``torchvision.transforms.v2``
  functional ops, which express them exactly (``pad(padding_mode="reflect")`` is reflect-101,
  OpenCV's ``BORDER_REFLECT_101`` that the study's albumentations used: the edge pixel is not
  repeated).
* affine: ``scipy.ndimage.affine_transform``. torchvision's ``affine`` has one scale for both
  axes and fills the border with a constant; the recipe needs independent x / y scales and a
  reflect-101 border (scipy's ``mode="mirror"``), bilinear (``order=1``) for images and nearest
  (``order=0``) for masks.
* additive noise and the illumination gain: numpy (a seeded ``numpy.random.Generator``) and
  ``scipy.ndimage.gaussian_filter`` (a sigma-80 smoothing of a whole-image field; torchvision's
  blur needs an explicit kernel size, and its reflect padding fails for kernels wider than the
  image).

Every operation is deterministic: elementwise or per-output-pixel, the same bits whatever the
worker count (tests/test_shift.py compares 1, 2 and 3 workers). albumentations itself is not used: the
study's random streams cannot be replayed anyway (its per-image draws were not saved), so the
recipe is reproduced operation by operation, not bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

#: torchvision's colour-jitter operations, in the order codes of the parameter table
JITTER_OPS = ("brightness", "contrast", "saturation")


def longest_side(h: int, w: int, size: int) -> tuple[int, int]:
    """(height, width) after scaling the longest side to ``size`` (the other side rounded, as
    albumentations' ``LongestMaxSize``)."""
    scale = size / max(h, w)
    return (size, max(1, int(round(w * scale)))) if h >= w else (max(1, int(round(h * scale))), size)


def resize_image(t, hw: tuple[int, int], antialias: bool = True):
    """Bilinear resize of a float image ``(3, H, W)`` (torchvision), antialiased or not (without:
    the half-pixel sampling of OpenCV's ``INTER_LINEAR``, which albumentations used)."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    if tuple(t.shape[-2:]) == tuple(hw):
        return t
    return TF.resize(t, list(hw), interpolation=InterpolationMode.BILINEAR, antialias=antialias)


def resize_mask(m, hw: tuple[int, int]):
    """Pixel-centre nearest resize of a 0/1 mask ``(H, W)`` (torchvision ``NEAREST_EXACT``, the
    same sampling as PIL's ``NEAREST`` that adloc's clean masks use)."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    if tuple(m.shape[-2:]) == tuple(hw):
        return m
    return TF.resize(m[None], list(hw), interpolation=InterpolationMode.NEAREST_EXACT)[0]


def pad_box(h: int, w: int, size: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) padding that centres an ``h x w`` image in ``size x size``
    (the odd pixel at the bottom / right, as albumentations' ``PadIfNeeded``)."""
    top, left = max(0, size - h) // 2, max(0, size - w) // 2
    return left, top, max(0, size - w) - left, max(0, size - h) - top


def pad_reflect101(t, box: tuple[int, int, int, int]):
    """Reflect-101 padding of ``(..., H, W)`` by ``box`` = (left, top, right, bottom)."""
    from torchvision.transforms.v2 import functional as TF

    if not any(box):
        return t
    squeeze = t.ndim == 2
    out = TF.pad(t[None] if squeeze else t, list(box), padding_mode="reflect")
    return out[0] if squeeze else out


def affine_matrix(angle: float, tx: float, ty: float, sx: float, sy: float, h: int, w: int):
    """scipy's (matrix, offset) in (row, col) order mapping an OUTPUT pixel to its input point.

    Forward map in pixel (x right, y down) coordinates about the centre c = ((w-1)/2, (h-1)/2):
    ``p = c + (tx*w, ty*h) + R(angle) @ diag(sx, sy) @ (q - c)``, ``R`` a counter-clockwise
    rotation on screen (torchvision's and albumentations' sign): R = [[cos, sin], [-sin, cos]].
    """
    a = math.radians(angle)
    rot = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    fwd = rot @ np.diag([sx, sy])  # (x, y)
    inv = np.linalg.inv(fwd)
    swap = np.array([[0.0, 1.0], [1.0, 0.0]])
    inv_rc = swap @ inv @ swap  # the same map in (row, col) = (y, x) order
    c_rc = np.array([(h - 1) / 2.0, (w - 1) / 2.0])
    t_rc = np.array([ty * h, tx * w])
    return inv_rc, c_rc - inv_rc @ (c_rc + t_rc)


def affine(t, angle: float, tx: float, ty: float, sx: float, sy: float, nearest: bool = False):
    """Rotation / translation / anisotropic scale (:func:`affine_matrix`) of ``(..., H, W)`` with
    a reflect-101 border: bilinear, or nearest (masks) with ``nearest=True``."""
    import torch

    h, w = int(t.shape[-2]), int(t.shape[-1])
    matrix, offset = affine_matrix(angle, tx, ty, sx, sy, h, w)
    arr = t.numpy()
    planes = arr.reshape(-1, h, w)
    out = np.empty_like(planes)
    for i, plane in enumerate(planes):
        ndimage.affine_transform(
            plane, matrix, offset=offset, output=out[i], order=0 if nearest else 1, mode="mirror"
        )
    return torch.from_numpy(out.reshape(arr.shape))


def centre_crop(t, size: int):
    """torchvision centre crop of ``(..., H, W)`` to ``size x size``."""
    from torchvision.transforms.v2 import functional as TF

    return TF.center_crop(t, [size, size])


def colour_jitter(t, factor: float, order: str):
    """Brightness, contrast and saturation all by ``factor`` (hue untouched), applied in
    ``order`` (a permutation of "bcs", drawn per image as torchvision's ColorJitter does)."""
    from torchvision.transforms.v2 import functional as TF

    ops = {"b": TF.adjust_brightness, "c": TF.adjust_contrast, "s": TF.adjust_saturation}
    for code in order:
        t = ops[code](t, factor)
    return t


def gaussian_blur(t, kernel: int, sigma: float):
    """torchvision Gaussian blur, ``kernel x kernel`` taps of ``sigma`` (reflect border)."""
    from torchvision.transforms.v2 import functional as TF

    return TF.gaussian_blur(t, [kernel, kernel], [sigma, sigma])


def noise_field(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """Standard-normal float32 field of the image seed (its own stream, ``default_rng([seed,
    1])``, so the parameters drawn from ``default_rng(seed)`` do not depend on the image size)."""
    return np.random.default_rng([int(seed), 1]).standard_normal(shape, dtype=np.float32)


def add_noise(t, sigma: float, seed: int):
    """``t + sigma * noise_field(seed)`` (independent per pixel and channel), clipped to [0, 1]."""
    import torch

    z = torch.from_numpy(noise_field(seed, tuple(t.shape)))
    return (t + float(sigma) * z).clamp_(0.0, 1.0)


def illumination_gain(
    h: int, w: int, mode: str, strength: float, direction: float, sigma: float
) -> np.ndarray:
    """float64 ``(h, w)`` gain field in [1 - strength, 1], smoothed by a Gaussian of ``sigma``.

    ``linear``: falls linearly from 1 to ``1 - strength`` along ``direction`` (degrees, 0 =
    left to right, 90 = top to bottom), from the image's first to its last pixel along it.
    ``radial``: 1 at the top centre, falling with the distance from it to ``1 - strength`` at the
    farthest pixel (the study's generated data: radial, from the top). ``sigma`` 0: no smoothing;
    else ``scipy.ndimage.gaussian_filter`` with a nearest (edge-repeating) border.
    """
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    if mode == "linear":
        a = math.radians(direction)
        proj = x * math.cos(a) + y * math.sin(a)
    elif mode == "radial":
        proj = np.hypot(x - (w - 1) / 2.0, y)
    else:
        raise ValueError(f"illumination mode must be linear or radial, got {mode!r}")
    lo, hi = proj.min(), proj.max()
    ramp = (proj - lo) / (hi - lo) if hi > lo else np.zeros_like(proj)
    gain = 1.0 - float(strength) * ramp
    return ndimage.gaussian_filter(gain, sigma=float(sigma), mode="nearest") if sigma > 0 else gain


def illuminate(t, gain: np.ndarray):
    """The image times the gain field (every channel), clipped to [0, 1]."""
    import torch

    return (t * torch.from_numpy(gain.astype(np.float32))).clamp_(0.0, 1.0)


def to_uint8(t):
    """float ``(3, H, W)`` in [0, 1] -> uint8, rounded to the nearest grey level."""
    import torch

    return t.clamp(0.0, 1.0).mul(255.0).round_().to(torch.uint8)
