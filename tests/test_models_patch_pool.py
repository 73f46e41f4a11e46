"""adloc.models.patch_pool: bit for bit torch's unfold + adaptive_avg_pool1d (the paper embedding)."""

import pytest
import torch
import torch.nn.functional as F

from adloc.models.patch_pool import adaptive_windows, pool_channels, pool_patches
from adloc.models.patchcore import patchcore_embedding


def _unfold_pool(x, p, n_out):
    """The previous implementation (patchcore-inspection's order): unfold, transpose, pool."""
    b, c, h, w = x.shape
    u = F.unfold(x, kernel_size=p, padding=p // 2, stride=1)
    u = u.transpose(1, 2).reshape(b * h * w, 1, c * p * p)
    return F.adaptive_avg_pool1d(u, n_out).reshape(b, h * w, -1).transpose(1, 2).reshape(b, -1, h, w)


def _channel_pool(e, n_out):
    b, d, h, w = e.shape
    r = F.adaptive_avg_pool1d(e.permute(0, 2, 3, 1).reshape(b * h * w, 1, d), n_out)
    return r.reshape(b, h, w, -1).permute(0, 3, 1, 2)


def _maps(b, c, h, w, seed, relu=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c, h, w, generator=g) * 10 ** torch.randint(-2, 3, (1, c, 1, 1), generator=g)
    return x.relu() if relu else x


@pytest.mark.parametrize("n_in,n_out", [(9, 9), (4608, 1024), (9216, 1024), (7, 10), (100, 7), (2048, 1000), (5, 1)])
def test_windows_are_adaptive_avg_pool1d_s(n_in, n_out):
    start, length = adaptive_windows(n_in, n_out)
    for i in range(n_out):  # PyTorch's definition: floor(i n / P), ceil((i + 1) n / P)
        assert int(start[i]) == (i * n_in) // n_out
        assert int(start[i] + length[i]) == -((-(i + 1) * n_in) // n_out)


@pytest.mark.parametrize("c,h,w,p,n_out,relu", [
    (512, 28, 28, 3, 1024, True),   # WRN50-2 layer 2 at 224 px: windows of 5 across 3x3 blocks
    (64, 14, 14, 3, 64, True),      # windows of 9: one channel's 3x3 mean
    (7, 5, 6, 3, 10, False),        # more outputs than channels, odd grid, negative values
    (6, 4, 4, 5, 13, False),        # patch size 5
    (3, 4, 3, 1, 2, True),          # patch size 1
    (33, 7, 9, 3, 100, True),
])
def test_pool_patches_is_unfold_plus_adaptive_pool_bit_for_bit(c, h, w, p, n_out, relu):
    x = _maps(3, c, h, w, seed=c + p, relu=relu)
    assert torch.equal(pool_patches(x, p, n_out), _unfold_pool(x, p, n_out))


@pytest.mark.parametrize("d,n_out", [(2048, 1024), (1536, 1024), (2048, 1000), (10, 3), (12, 12), (5, 8)])
def test_pool_channels_is_adaptive_pool_bit_for_bit(d, n_out):
    e = _maps(2, d, 5, 4, seed=d, relu=False)
    assert torch.equal(pool_channels(e, n_out), _channel_pool(e, n_out))


@pytest.mark.parametrize("pre,tgt", [(1024, 1024), (96, 40), (50, 64)])
def test_paper_embedding_unchanged_bit_for_bit(pre, tgt):
    """The whole embedding (upsampling between the pools) equals the unfold formulation."""
    feats = {"layer2": _maps(4, 64, 12, 12, 1), "layer3": _maps(4, 128, 6, 6, 2)}
    ref_parts = []
    for name in ("layer2", "layer3"):
        y = _unfold_pool(feats[name], 3, pre)
        if y.shape[-1] != 12:
            y = F.interpolate(y, size=(12, 12), mode="bilinear", align_corners=False)
        ref_parts.append(y)
    ref = _channel_pool(torch.cat(ref_parts, 1), tgt).contiguous()
    ours = patchcore_embedding(feats, ["layer2", "layer3"], 3, pre, tgt)
    assert ours.is_contiguous() and torch.equal(ours, ref)
    forced = patchcore_embedding(feats, ["layer2", "layer3"], 3, pre, tgt, unfold=True)  # the CUDA path's ops
    assert forced.is_contiguous() and torch.equal(forced, ref)
