"""Approximate greedy k-center coreset (PatchCore's memory-bank subsampling).

Algorithm (as patchcore-inspection's ``ApproximateGreedyCoresetSampler``):

1. Project the features to ``proj_dim`` dimensions with a seeded Gaussian random matrix
   (Johnson-Lindenstrauss; entries N(0, 1/proj_dim)); skipped when ``proj_dim`` is None or not
   smaller than D.
2. Draw ``starts`` distinct random points; every point's initial "distance to the coreset" is
   its MEAN L2 distance to those starting points (the starting points are not selected).
3. Repeat ``n`` times: select the point with the largest distance to the coreset, then lower
   every point's distance to ``min(old, distance to the new point)``.

Implementation notes: the loop runs on the device of the projected features with no host
synchronisation per iteration (the argmax index stays a device tensor and indexes the features
directly; selected indices are written into a preallocated device tensor). Distances are kept
SQUARED (``|x|^2 - 2 x.c + |c|^2`` with precomputed ``|x|^2``): the argmax and min are the same as
with L2, and the mean-L2 initialisation is squared once. A selected point's distance is set to
``-inf`` so it can never be selected twice (the reference relies on its distance being ~0, which
fails when many patches are identical, e.g. flat synthetic backgrounds).

Selection is deterministic for a given seed and device; CPU and CUDA can differ when two
candidates' distances tie to within float32 rounding.
"""

from __future__ import annotations

import math

import torch

from ..errors import ModelError


def random_projection(x: torch.Tensor, proj_dim: int | None, seed: int, device: torch.device | str | None = None,
                      chunk_rows: int = 65536) -> torch.Tensor:
    """Project ``x`` (N, D) to (N, proj_dim) with a seeded Gaussian matrix, chunk-wise on ``device``.

    Returns ``x`` itself (moved to ``device``, float32) when ``proj_dim`` is None or ``>= D``.
    """
    device = torch.device(device) if device is not None else x.device
    n, d = x.shape
    if proj_dim is None or proj_dim >= d:
        return x.to(device, torch.float32)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    mat = (torch.randn(d, proj_dim, generator=gen, dtype=torch.float32) / math.sqrt(proj_dim)).to(device)
    out = torch.empty((n, proj_dim), dtype=torch.float32, device=device)
    for s in range(0, n, chunk_rows):
        out[s : s + chunk_rows] = x[s : s + chunk_rows].to(device, torch.float32) @ mat
    return out


def greedy_coreset(
    x: torch.Tensor,
    n: int,
    proj_dim: int | None = 128,
    seed: int = 0,
    starts: int = 10,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Indices (n,) int64 of an approximate greedy k-center coreset of ``x`` (N, D), in selection order.

    ``x`` may live on the CPU while ``device`` is CUDA: the projection is computed chunk-wise on
    ``device`` and only the (N, proj_dim) projection lives there. ``n >= N`` returns all indices.
    Returned indices are on the CPU.
    """
    if x.ndim != 2:
        raise ModelError(f"coreset input must be (N, D), got {tuple(x.shape)}")
    num = int(x.shape[0])
    n = int(n)
    if num == 0 or n <= 0:
        raise ModelError(f"coreset needs N > 0 points and n > 0 samples, got N={num}, n={n}")
    if n >= num:
        return torch.arange(num, dtype=torch.int64)
    device = torch.device(device) if device is not None else x.device
    z = random_projection(x, proj_dim, seed, device)
    with torch.inference_mode():
        zsq = (z * z).sum(1)

        gen = torch.Generator(device="cpu").manual_seed(int(seed) + 1)
        n_starts = max(1, min(int(starts), num))
        start_idx = torch.randperm(num, generator=gen)[:n_starts].to(device)
        c = z.index_select(0, start_idx)  # (S, d)
        d0 = torch.mm(z, c.t()).mul_(-2).add_(zsq.unsqueeze(1)).add_((c * c).sum(1).unsqueeze(0))
        min_d = d0.clamp_min_(0).sqrt_().mean(1).square_()  # (N,) squared mean-L2 distance
        del d0, c

        selected = torch.empty(n, dtype=torch.int64, device=device)
        neg_inf = torch.tensor(float("-inf"), dtype=torch.float32, device=device)
        buf = torch.empty_like(min_d)
        for i in range(n):
            idx = torch.argmax(min_d, dim=0, keepdim=True)  # (1,) on device, no sync
            selected[i : i + 1] = idx
            ci = z.index_select(0, idx).squeeze(0)  # (d,)
            torch.mv(z, ci, out=buf)
            buf.mul_(-2).add_(zsq).add_(zsq.index_select(0, idx))
            torch.minimum(min_d, buf, out=min_d)
            min_d.index_put_((idx,), neg_inf)
    return selected.cpu()


def covering_radius(x: torch.Tensor, selected: torch.Tensor, chunk: int = 4096) -> float:
    """Max over points of the L2 distance to the nearest selected point (exact, float64)."""
    c = x[selected].double()
    csq = (c * c).sum(1)
    worst = 0.0
    for s in range(0, x.shape[0], chunk):
        q = x[s : s + chunk].double()
        d = (q * q).sum(1, keepdim=True) - 2 * q @ c.t() + csq.unsqueeze(0)
        worst = max(worst, float(d.min(1).values.clamp_min(0).max().sqrt()))
    return worst
