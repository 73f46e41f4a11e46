"""Approximate greedy k-center coreset (PatchCore's memory-bank subsampling).

Algorithm (as patchcore-inspection's ``ApproximateGreedyCoresetSampler``):

1. Project the features to ``proj_dim`` dimensions with a seeded Gaussian random matrix
   (Johnson-Lindenstrauss; entries N(0, 1/proj_dim)); skipped when ``proj_dim`` is None or not
   smaller than D.
2. Start (``start``):

   * ``"mean_of_random"`` (patchcore-inspection's way, the default): draw ``starts`` distinct
     random points; every point's initial "distance to the coreset" is its MEAN L2 distance to
     those starting points (the starting points are not selected).
   * ``"random_point"`` (the study's sampler, ``GreedyCoresetSubsampling`` in
     IvanNece/Detection-of-Anomalies-with-Localization): ONE random point is the coreset's first
     member (it is kept, and counts towards ``n``); every point's initial distance is its L2
     distance to it. The point is the first of the seeded permutation that ``"mean_of_random"``
     draws its points from (:func:`coreset_start_indices`).
3. Repeat until ``n`` points are selected: select the point with the largest distance to the
   coreset (the lowest index among exact ties), then lower every point's distance to
   ``min(old, distance to the new point)``.

Distances are kept SQUARED (argmax and min are the same as with L2). A selected point's
distance is set to ``-inf`` so it can never be selected twice (the reference relies on its
distance being ~0, which fails when many patches are identical, e.g. flat synthetic backgrounds).

Three implementations of step 3 (``method``; the dense loop in :mod:`adloc.models.coreset_dense`,
the CPU loops in :mod:`adloc.models.coreset_cpu`):

* ``"dense"`` (the CUDA path): every iteration updates all N distances with one matrix-vector
  product (``|x|^2 - 2 x.c + |c|^2``), with no host synchronisation per iteration (the argmax
  index stays a device tensor; selected indices go to a preallocated device tensor). On CUDA
  the loop's ~8 small kernels per iteration are captured once in a CUDA graph of
  ``graph_chunk`` iterations and replayed, so Python's per-kernel launch cost (several
  microseconds per kernel, the same order as the product itself) disappears; replay runs the
  same kernels, so the selection is identical to launching them one by one (tested on the GPU).
* ``"plain"`` (CPU reference): every iteration computes all N squared distances directly,
  ``sum_i (x_i - c_i)^2``, with faiss' SIMD kernel (``fvec_L2sqr_ny``, one row at a time, so a
  row's value never depends on which other rows are computed with it).
* ``"pruned"`` (the CPU default; with 2+ torch threads an iteration's distance calls are split
  between two threads): the same computation as ``"plain"``, skipping the points
  whose distance provably cannot go down. The projected points are split once into blocks of
  ``block_size`` nearby points (a balanced binary tree: median splits along the direction
  between two far-apart points) and stored contiguously per block; each block keeps its centre
  mu_B, radius r_B and the largest current distance of its points. For a new centre c, every
  point x of block B has ``||x - c|| >= ||c - mu_B|| - r_B``; when that bound (made smaller by a
  safety margin for float64 round-off, squared, and compared with the block maximum scaled by
  ``1 + 1e-4``, which covers faiss' float32 round-off) exceeds the block's largest distance,
  no distance in the block can change and the block is skipped. The argmax runs over per-block
  maxima (ties: lowest original index, as ``argmax`` of the full array). Distances that are
  computed are computed with the same per-row kernel as ``"plain"``, so ``"pruned"`` selects
  exactly the same points as ``"plain"``; early iterations touch every block, late ones few.

``dtype="float16"`` rounds the projected points to float16 before step 2, on every device
and method: the coreset is then the exact greedy coreset of the rounded points (rounding moves a
point by ~5e-4 of its norm, far less than the random projection's own distortion). On CUDA the
matrix-vector product then reads the float16 points (half the bytes, the loop's bottleneck) and
accumulates and returns float32 (``torch.mm(..., out_dtype=torch.float32)``); the squared norms
are float32 norms of the rounded values. Projections that overflow float16 raise.

CPU selection is deterministic for a seed and independent of the thread count. CPU and CUDA
(``"dense"``) can differ when two candidates' distances tie to within float32 rounding: the two
compute the distances with different float32 formulas.
"""

from __future__ import annotations

import logging
import math
import time

import torch

from ..errors import ModelError
from .configs import CORESET_STARTS
from .coreset_cpu import DEFAULT_BLOCK_SIZE, select_cpu
from .coreset_dense import DEFAULT_GRAPH_CHUNK, greedy_dense

log = logging.getLogger("adloc.models.coreset")

METHODS = ("auto", "dense", "plain", "pruned")
#: storage of the projected points during the greedy loop
DTYPES = ("float32", "float16")
#: how the greedy loop starts (module docstring, step 2)
STARTS = CORESET_STARTS

__all__ = [
    "DEFAULT_BLOCK_SIZE", "DEFAULT_GRAPH_CHUNK", "DTYPES", "METHODS", "STARTS", "coreset_start_indices",
    "covering_radius", "greedy_coreset", "random_projection",
]


def random_projection(x: torch.Tensor, proj_dim: int | None, seed: int, device: torch.device | str | None = None,
                      chunk_rows: int = 65536, matrix: torch.Tensor | None = None) -> torch.Tensor:
    """Project ``x`` (N, D) to (N, proj_dim) with a seeded Gaussian matrix (or the given
    ``matrix`` (D, proj_dim)), chunk-wise on ``device``.

    Returns ``x`` itself (moved to ``device``, float32) when ``proj_dim`` is None or ``>= D``.
    """
    device = torch.device(device) if device is not None else x.device
    n, d = x.shape
    if proj_dim is None or proj_dim >= d:
        return x.to(device, torch.float32)
    if matrix is None:
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        matrix = torch.randn(d, proj_dim, generator=gen, dtype=torch.float32) / math.sqrt(proj_dim)
    mat = matrix.to(device, torch.float32)
    out = torch.empty((n, proj_dim), dtype=torch.float32, device=device)
    for s in range(0, n, chunk_rows):
        out[s : s + chunk_rows] = x[s : s + chunk_rows].to(device, torch.float32) @ mat
    return out


def coreset_start_indices(num: int, seed: int, starts: int = 1) -> torch.Tensor:
    """The seeded random starting points (int64, CPU) of a coreset of ``num`` points.

    The first ``starts`` entries of a permutation drawn from ``seed + 1``; ``start="random_point"``
    uses the first one only, so for a seed both start rules begin from the same point.
    """
    gen = torch.Generator(device="cpu").manual_seed(int(seed) + 1)
    return torch.randperm(num, generator=gen)[: max(1, min(int(starts), num))]


def greedy_coreset(
    x: torch.Tensor,
    n: int,
    proj_dim: int | None = 128,
    seed: int = 0,
    starts: int = 10,
    *,
    device: torch.device | str | None = None,
    method: str = "auto",
    block_size: int = DEFAULT_BLOCK_SIZE,
    dtype: str = "float32",
    graph_chunk: int = DEFAULT_GRAPH_CHUNK,
    threads: int | None = None,
    start: str = "mean_of_random",
    draw=None,
) -> torch.Tensor:
    """Indices (n,) int64 of an approximate greedy k-center coreset of ``x`` (N, D), in selection order.

    What is selected: ``proj_dim``, ``seed``, ``starts``, ``dtype``, ``start``, ``draw``. Where
    and how (never what, but for the CPU vs CUDA rounding of the module docstring): ``device``,
    ``method``, ``block_size``, ``graph_chunk``, ``threads``.

    ``x`` may live on the CPU while ``device`` is CUDA: the projection is computed chunk-wise on
    ``device`` and only the (N, proj_dim) projection lives there. ``n >= N`` returns all indices.
    ``method``: ``"auto"`` (``"dense"`` on CUDA, ``"pruned"`` on the CPU), ``"dense"``,
    ``"plain"`` or ``"pruned"`` (see the module docstring; the last two need the CPU and faiss).
    ``dtype``: ``"float32"``, or ``"float16"`` to round the projected points to float16 first
    (the greedy loop then selects among the rounded points, on every device and method; on
    CUDA the matrix-vector product reads half the bytes). ``graph_chunk``: on CUDA, iterations
    per captured CUDA graph (0: launch every iteration's kernels from Python); the selection is
    the same either way. ``threads``: threads of the pruned CPU loop (default: torch's thread
    count; the selection is the same for any value). ``start``: ``"mean_of_random"``
    (``starts`` random points, not selected) or ``"random_point"`` (one random point, selected
    first: the study's sampler). ``draw``: given draws (``.projection`` (D, proj_dim) and
    ``.start``, :class:`adloc.models.study_draws.StudyDraw`) instead of the seeded ones; needs
    ``start="random_point"``. Returned indices are on the CPU.
    """
    _check_options(x, n, method, dtype, start)
    num, n = int(x.shape[0]), int(n)
    if n >= num:
        return torch.arange(num, dtype=torch.int64)
    device = torch.device(device) if device is not None else x.device
    if method == "auto":
        method = "dense" if device.type != "cpu" else "pruned"
    if method != "dense" and device.type != "cpu":
        raise ModelError(f"coreset method {method!r} runs on the CPU; use method 'dense' on {device}")
    t0 = time.perf_counter()
    _check_draw(draw, x, proj_dim, start)
    z = random_projection(x, proj_dim, seed, device, matrix=None if draw is None else draw.projection)
    if dtype == "float16":
        # on CUDA the loop keeps the float16 points; elsewhere their exact float32 values
        z = _round_half(z, keep_half=method == "dense" and device.type == "cuda")
    keep = start == "random_point"
    if draw is None:
        start_idx = coreset_start_indices(num, seed, 1 if keep else starts)
    else:
        start_idx = torch.tensor([int(draw.start)], dtype=torch.int64)
    info = ""
    with torch.inference_mode():
        if method == "dense":
            sel = greedy_dense(z, n, start_idx.to(device), int(graph_chunk), keep_start=keep).cpu()
        else:
            nthreads = torch.get_num_threads() if threads is None else int(threads)
            sel, info = select_cpu(z, n, start_idx, keep, method, int(block_size), nthreads)
    log.info(
        "coreset (%s, %s, start %s): %d x %d -> %d points in %.2f s%s",
        method, dtype, start, num, int(z.shape[1]), n, time.perf_counter() - t0, info,
    )
    return sel


def _check_options(x: torch.Tensor, n: int, method: str, dtype: str, start: str) -> None:
    if x.ndim != 2:
        raise ModelError(f"coreset input must be (N, D), got {tuple(x.shape)}")
    if method not in METHODS:
        raise ModelError(f"coreset method {method!r} unknown; use one of {list(METHODS)}")
    if dtype not in DTYPES:
        raise ModelError(f"coreset dtype {dtype!r} unknown; use one of {list(DTYPES)}")
    if start not in STARTS:
        raise ModelError(f"coreset start {start!r} unknown; use one of {list(STARTS)}")
    if int(x.shape[0]) == 0 or int(n) <= 0:
        raise ModelError(f"coreset needs N > 0 points and n > 0 samples, got N={int(x.shape[0])}, n={int(n)}")


def _check_draw(draw, x: torch.Tensor, proj_dim: int | None, start: str) -> None:
    """Given draws must fit the points and go with the study's start."""
    num = int(x.shape[0])
    if draw is not None and (start != "random_point" or not 0 <= int(draw.start) < num
                             or tuple(draw.projection.shape) != (int(x.shape[1]), int(proj_dim or 0))):
        raise ModelError(
            f"coreset draws do not fit: start {draw.start} of {num} points, projection "
            f"{tuple(draw.projection.shape)} for {int(x.shape[1])} x {proj_dim} (start rule {start!r})"
        )


def _round_half(z: torch.Tensor, keep_half: bool) -> torch.Tensor:
    """``z`` rounded to float16 (kept float16 with ``keep_half``, else its exact float32 values);
    a projection that overflows float16 raises."""
    zh = z.to(torch.float16)
    if not bool(torch.isfinite(zh).all()):
        raise ModelError(
            "coreset dtype float16: the projected features overflow float16 "
            f"(largest magnitude {float(z.abs().max()):.4g} > 65504); use coreset dtype float32"
        )
    return zh if keep_half else zh.float()


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
