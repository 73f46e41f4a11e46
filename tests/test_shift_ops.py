"""Each domain-shift operation (adloc.data.shift_ops) against a case computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from adloc.data import shift_ops as ops


def test_longest_side_and_centring_pad():
    assert ops.longest_side(100, 50, 268) == (268, 134)
    assert ops.longest_side(900, 1024, 268) == (round(900 * 268 / 1024), 268)  # 235.5... -> 236
    assert ops.pad_box(268, 134, 268) == (67, 0, 67, 0)
    assert ops.pad_box(133, 268, 268) == (0, 67, 0, 68)  # the odd pixel at the bottom
    assert ops.pad_box(268, 268, 268) == (0, 0, 0, 0)


def test_pad_is_reflect_101():
    # reflect-101 (OpenCV BORDER_REFLECT_101): the edge pixel is not repeated
    row = torch.tensor([[[1.0, 2.0, 3.0, 4.0]]])
    out = ops.pad_reflect101(row, (2, 0, 1, 0))
    assert out[0, 0].tolist() == [3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0]
    mask = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    assert ops.pad_reflect101(mask, (0, 1, 0, 0)).tolist() == [[0.0, 0.0], [0.0, 1.0], [0.0, 0.0]]


def _ramp(h=6, w=6):
    return torch.arange(h * w, dtype=torch.float32).reshape(1, h, w)


def test_affine_identity_translation_rotation_scale():
    t = _ramp()
    assert torch.equal(ops.affine(t, 0.0, 0.0, 0.0, 1.0, 1.0), t)
    # tx = 1/6 of width 6: one pixel to the right; column 0 reads column -1 = column 1 (mirror)
    moved = ops.affine(t, 0.0, 1 / 6, 0.0, 1.0, 1.0)
    assert torch.allclose(moved[..., 1:], t[..., :-1], atol=1e-4)
    assert torch.allclose(moved[..., 0], t[..., 1], atol=1e-4)
    # ty = 1/6 of height 6: one row down
    assert torch.allclose(ops.affine(t, 0.0, 0.0, 1 / 6, 1.0, 1.0)[..., 1:, :], t[..., :-1, :], atol=1e-4)
    # +90 degrees: counter-clockwise on screen, np.rot90 (top-right corner -> top-left)
    rot = ops.affine(t, 90.0, 0.0, 0.0, 1.0, 1.0)
    assert torch.allclose(rot, torch.rot90(t, 1, dims=(1, 2)), atol=1e-4)
    assert torch.equal(ops.affine(t, 90.0, 0.0, 0.0, 1.0, 1.0, nearest=True), torch.rot90(t, 1, dims=(1, 2)))
    # scale x 0.5 about the centre c = 2.5: output column x reads input column c + (x - c) / 0.5
    row = torch.arange(6, dtype=torch.float32).reshape(1, 1, 6).repeat(1, 3, 1)
    half = ops.affine(row, 0.0, 0.0, 0.0, 0.5, 1.0)
    expect = []
    for x in range(6):
        src = 2.5 + (x - 2.5) * 2.0  # -2.5 ... 7.5, mirrored at the edge pixels (reflect-101)
        src = -src if src < 0 else (10 - src if src > 5 else src)
        expect.append(src)  # the ramp's value equals its (fractional) column
    assert torch.allclose(half[0, 1], torch.tensor(expect), atol=1e-4)


def test_affine_matrix_round_trip():
    """The (matrix, offset) maps each output pixel to the input point the forward map sends there."""
    angle, tx, ty, sx, sy, h, w = 7.0, 0.05, -0.08, 0.93, 0.97, 40, 50
    m, off = ops.affine_matrix(angle, tx, ty, sx, sy, h, w)
    a = math.radians(angle)
    fwd = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]]) @ np.diag([sx, sy])
    c = np.array([(w - 1) / 2, (h - 1) / 2])
    q = np.array([11.0, 29.0])  # input (x, y)
    p = c + np.array([tx * w, ty * h]) + fwd @ (q - c)
    back = m @ p[::-1] + off  # (row, col)
    assert np.allclose(back[::-1], q)


def test_colour_jitter_by_hand():
    grey = torch.full((3, 2, 2), 0.5)
    assert torch.allclose(ops.colour_jitter(grey, 1.2, "bcs"), torch.full((3, 2, 2), 0.6), atol=1e-4)  # only b acts (grey weights sum to 0.9999)
    two = torch.tensor([0.2, 0.6]).reshape(1, 1, 2).repeat(3, 1, 1)
    # contrast 0.5 about the grey mean 0.4: 0.4 + 0.5 * (v - 0.4)
    assert torch.allclose(ops.colour_jitter(two, 0.5, "c")[0, 0], torch.tensor([0.3, 0.5]), atol=1e-4)
    red = torch.tensor([1.0, 0.0, 0.0]).reshape(3, 1, 1)
    lum = 0.2989  # torchvision's rgb_to_grayscale weight of red
    sat = ops.colour_jitter(red, 0.5, "s")[:, 0, 0]
    assert torch.allclose(sat, torch.tensor([0.5 + 0.5 * lum, 0.5 * lum, 0.5 * lum]), atol=1e-4)
    assert torch.equal(ops.colour_jitter(red, 1.0, "bcs"), red)


def test_gaussian_blur_of_a_delta():
    t = torch.zeros(1, 5, 5)
    t[0, 2, 2] = 1.0
    g = np.exp(-0.5 * np.arange(-1, 2) ** 2 / 1.0**2)
    g /= g.sum()  # [0.274, 0.452, 0.274]
    out = ops.gaussian_blur(t, 3, 1.0)[0, 1:4, 1:4].numpy()
    assert np.allclose(out, np.outer(g, g), atol=1e-6)
    big = torch.zeros(1, 9, 9)
    big[0, 4, 4] = 1.0  # away from the border: the 5-tap kernel keeps the mass
    assert float(ops.gaussian_blur(big, 5, 0.7).sum()) == pytest.approx(1.0, abs=1e-6)
    # reflect-101 border: a delta on the edge row folds back (pixel -1 reads pixel 1)
    edge = torch.zeros(1, 5, 5)
    edge[0, 1, 2] = 1.0
    assert float(ops.gaussian_blur(edge, 3, 1.0)[0, 0, 2]) == pytest.approx(2 * g[0] * g[1], abs=1e-6)


def test_noise_is_the_seeded_field_times_sigma():
    t = torch.full((3, 4, 4), 0.5)
    out = ops.add_noise(t.clone(), 0.02, seed=7)
    z = np.random.default_rng([7, 1]).standard_normal((3, 4, 4), dtype=np.float32)
    assert np.allclose(out.numpy(), 0.5 + 0.02 * z, atol=1e-7)
    assert torch.equal(ops.add_noise(t.clone(), 0.02, seed=7), out)


def test_illumination_gain_linear_and_radial():
    lin = ops.illumination_gain(3, 5, "linear", 0.4, 0.0, sigma=0.0)
    assert np.allclose(lin, np.tile(1 - 0.4 * np.arange(5) / 4, (3, 1)))  # left to right
    down = ops.illumination_gain(5, 3, "linear", 0.4, 90.0, sigma=0.0)
    assert np.allclose(down[:, 0], 1 - 0.4 * np.arange(5) / 4)  # 90 degrees: top to bottom
    rad = ops.illumination_gain(5, 5, "radial", 0.5, 0.0, sigma=0.0)
    assert rad[0, 2] == 1.0 and rad.min() == pytest.approx(0.5)  # 1 at top centre
    assert rad[4, 0] == rad[4, 4] == pytest.approx(0.5)  # farthest: the bottom corners
    assert np.allclose(rad, rad[:, ::-1])
    smooth = ops.illumination_gain(64, 64, "linear", 0.6, 0.0, sigma=80.0)
    assert 0.4 <= smooth.min() < smooth.max() <= 1.0
    assert np.all(np.diff(smooth[0]) < 0)  # still falls left to right after smoothing
    img = torch.full((3, 3, 5), 0.5)
    assert np.allclose(ops.illuminate(img, lin).numpy(), 0.5 * lin[None].astype(np.float32))


def test_to_uint8_rounds():
    t = torch.tensor([0.0, 0.5 / 255, 1.49 / 255, 1.0, 1.2]).reshape(1, 1, 5)
    assert ops.to_uint8(t).flatten().tolist() == [0, 0, 1, 255, 255]  # round half to even at 0.5
