"""PatchCore's paper embedding pools without materialising the unfolded neighbourhoods (CPU).

The paper embedding (:func:`adloc.models.patchcore.patchcore_embedding`) flattens each
position's zero-padded ``p x p`` neighbourhood channel-major (``torch.nn.functional.unfold``:
index ``u = c * p^2 + k``, ``k = dy * p + dx``) and averages it to ``P`` values with
``adaptive_avg_pool1d``; it then averages the concatenated layer vectors to ``T`` values the
same way. Written out, output ``i`` of an adaptive average over ``n`` inputs is the float32 sum
``0 + v[s_i] + v[s_i + 1] + ... + v[e_i - 1]``, added in that order, divided by
``e_i - s_i``, with ``s_i = floor(i n / P)`` and ``e_i = ceil((i + 1) n / P)``.

:func:`pool_patches` and :func:`pool_channels` compute exactly those operations, in the same
order, vectorised over images and positions: for step ``t`` every window with more than ``t``
values adds its ``(s_i + t)``-th input, read from a shifted view of the padded map (no unfold,
no transposed copy). So they give bit for bit the unfold + ``adaptive_avg_pool1d`` result
(tested against it: ``tests/test_models_patch_pool.py``), at less than half its CPU time for
WRN50-2 at 224 px (16 images: 0.48 CPU s against 1.15 on one Sapphire Rapids core). That
equality rests on torch's CPU kernel summing each window sequentially in float32 and then
dividing, which the test guards; CUDA keeps the unfold path (its kernel is not checked here).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def adaptive_windows(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(start, length)`` int64 ``(n_out,)`` of ``adaptive_avg_pool1d``'s windows."""
    i = torch.arange(n_out, dtype=torch.int64)
    start = torch.div(i * n_in, n_out, rounding_mode="floor")
    end = -torch.div(-(i + 1) * n_in, n_out, rounding_mode="floor")  # ceil
    return start, end - start


def pool_patches(x: torch.Tensor, patch_size: int, n_out: int) -> torch.Tensor:
    """``(B, n_out, h, w)``: each position's zero-padded ``patch_size``^2 neighbourhood of
    ``x`` (B, C, h, w), flattened channel-major, averaged to ``n_out`` values."""
    b, c, h, w = x.shape
    p2, pad = patch_size * patch_size, patch_size // 2
    xp = F.pad(x, (pad, pad, pad, pad))
    start, length = adaptive_windows(c * p2, n_out)
    acc = torch.zeros((b, n_out, h, w), dtype=x.dtype, device=x.device)
    for t in range(int(length.max())):
        live = (length > t).nonzero()[:, 0]
        u = start[live] + t
        chan, k = torch.div(u, p2, rounding_mode="floor"), u % p2
        for kk in torch.unique(k).tolist():  # one shifted view per neighbourhood offset
            sel = (k == kk).nonzero()[:, 0]
            dy, dx = divmod(kk, patch_size)
            acc.index_add_(1, live[sel], xp[:, :, dy : dy + h, dx : dx + w].index_select(1, chan[sel]))
    return acc.div_(length.to(acc.dtype).reshape(1, n_out, 1, 1))


def pool_channels(e: torch.Tensor, n_out: int) -> torch.Tensor:
    """``adaptive_avg_pool1d`` over dim 1 of ``e`` (B, n_in, h, w): ``(B, n_out, h, w)``."""
    b, n_in = e.shape[:2]
    start, length = adaptive_windows(n_in, n_out)
    if n_in % n_out == 0:  # equal, disjoint windows: strided views, no gathers
        r = n_in // n_out
        v = e.reshape(b, n_out, r, *e.shape[2:])
        acc = torch.zeros_like(v[:, :, 0])
        for t in range(r):
            acc.add_(v[:, :, t])
        return acc.div_(float(r))
    acc = torch.zeros((b, n_out, *e.shape[2:]), dtype=e.dtype, device=e.device)
    for t in range(int(length.max())):
        live = (length > t).nonzero()[:, 0]
        acc.index_add_(1, live, e.index_select(1, start[live] + t))
    return acc.div_(length.to(acc.dtype).reshape(1, n_out, *([1] * (e.dim() - 2))))
