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

Three implementations of step 3 (``method``):

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
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ..errors import ModelError
from .configs import CORESET_STARTS

log = logging.getLogger("adloc.models.coreset")

#: points per block of the pruned CPU loop
DEFAULT_BLOCK_SIZE = 64
#: relative slack on a block's largest distance before it is skipped (faiss float32 round-off
#: on a sum of 128 squares is below 1e-5 relative)
_REL_TOL = 1e-4
#: an iteration computes its distances in two threads only when it touches at least this many
#: rows (below, handing work to the second thread costs more than it saves)
_PAR_MIN_ROWS = 16384
#: neighbouring active blocks separated by at most this many inactive ones are computed in one
#: call (computing an extra block changes nothing; one call less saves more than it costs)
_MERGE_GAP = 4

METHODS = ("auto", "dense", "plain", "pruned")
#: storage of the projected points during the greedy loop
DTYPES = ("float32", "float16")
#: greedy iterations per captured CUDA graph (dense method on CUDA)
DEFAULT_GRAPH_CHUNK = 64


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


#: how the greedy loop starts (module docstring, step 2)
STARTS = CORESET_STARTS


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
    if x.ndim != 2:
        raise ModelError(f"coreset input must be (N, D), got {tuple(x.shape)}")
    if method not in METHODS:
        raise ModelError(f"coreset method {method!r} unknown; use one of {list(METHODS)}")
    if dtype not in DTYPES:
        raise ModelError(f"coreset dtype {dtype!r} unknown; use one of {list(DTYPES)}")
    if start not in STARTS:
        raise ModelError(f"coreset start {start!r} unknown; use one of {list(STARTS)}")
    num = int(x.shape[0])
    n = int(n)
    if num == 0 or n <= 0:
        raise ModelError(f"coreset needs N > 0 points and n > 0 samples, got N={num}, n={n}")
    if n >= num:
        return torch.arange(num, dtype=torch.int64)
    device = torch.device(device) if device is not None else x.device
    if method == "auto":
        method = "dense" if device.type != "cpu" else "pruned"
    if method != "dense" and device.type != "cpu":
        raise ModelError(f"coreset method {method!r} runs on the CPU; use method 'dense' on {device}")
    t0 = time.perf_counter()
    if draw is not None and (start != "random_point" or not 0 <= int(draw.start) < num
                             or tuple(draw.projection.shape) != (int(x.shape[1]), int(proj_dim or 0))):
        raise ModelError(
            f"coreset draws do not fit: start {draw.start} of {num} points, projection "
            f"{tuple(draw.projection.shape)} for {int(x.shape[1])} x {proj_dim} (start rule {start!r})"
        )
    z = random_projection(x, proj_dim, seed, device, matrix=None if draw is None else draw.projection)
    if dtype == "float16":
        zh = z.to(torch.float16)
        if not bool(torch.isfinite(zh).all()):
            raise ModelError(
                "coreset dtype float16: the projected features overflow float16 "
                f"(largest magnitude {float(z.abs().max()):.4g} > 65504); use coreset dtype float32"
            )
        # on CUDA the loop keeps the float16 points; elsewhere their exact float32 values
        z = zh if (method == "dense" and device.type == "cuda") else zh.float()
        del zh
    keep = start == "random_point"
    if draw is None:
        start_idx = coreset_start_indices(num, seed, 1 if keep else starts)
    else:
        start_idx = torch.tensor([int(draw.start)], dtype=torch.int64)
    info = ""
    with torch.inference_mode():
        if method == "dense":
            sel = _greedy_dense(z, n, start_idx.to(device), int(graph_chunk), keep_start=keep).cpu()
        else:
            zn = np.ascontiguousarray(z.detach().numpy(), dtype=np.float32)
            min_d = _initial_distances_cpu(zn, start_idx.numpy())
            first = np.empty(0, dtype=np.int64)
            if keep:  # the starting point is the first member; the loop selects the rest
                first = start_idx.numpy().astype(np.int64)
                min_d[first] = -np.inf
            if n - len(first) == 0:
                out = np.empty(0, dtype=np.int64)
            elif method == "plain":
                out = _greedy_plain(zn, min_d, n - len(first))
            else:
                nthreads = torch.get_num_threads() if threads is None else int(threads)
                out, frac = _greedy_pruned(zn, min_d, n - len(first), int(block_size), max(1, nthreads))
                info = f", {100 * frac:.1f}% of point distances computed"
            sel = torch.from_numpy(np.concatenate((first, out)))
    log.info(
        "coreset (%s, %s, start %s): %d x %d -> %d points in %.2f s%s",
        method, dtype, start, num, int(z.shape[1]), n, time.perf_counter() - t0, info,
    )
    return sel


# ---------------------------------------------------------------------------------- dense (CUDA)
def _mm_out_float32_supported(device: torch.device) -> bool:
    """Whether ``torch.mm(half, half, out_dtype=torch.float32)`` runs on ``device`` (torch >= 2.8 CUDA)."""
    try:
        a = torch.ones((2, 2), dtype=torch.float16, device=device)
        return torch.mm(a, a, out_dtype=torch.float32).dtype == torch.float32
    except (TypeError, RuntimeError, NotImplementedError):
        return False


def _greedy_dense(z: torch.Tensor, n: int, start_idx: torch.Tensor, graph_chunk: int = 0,
                  keep_start: bool = False) -> torch.Tensor:
    """The greedy loop with one matrix-vector product per iteration, all on ``z.device``.

    ``keep_start``: ``start_idx`` holds one point, selected first (``start="random_point"``);
    otherwise the initial distances are the mean distances to ``start_idx`` (not selected).

    ``z`` is float32, or float16 on CUDA: then the products read the float16 points and
    accumulate and return float32 (``torch.mm(..., out_dtype=torch.float32)``), and the squared
    norms are the float32 norms of the float16 values, so the distances are those between the
    rounded points, as on the CPU. On CUDA, after three eager iterations (the warm-up that graph
    capture needs) ``graph_chunk`` iterations are captured once in a CUDA graph and replayed:
    the same kernels on the same tensors, without Python's per-kernel launch cost.
    """
    device = z.device
    half = z.dtype == torch.float16
    if half and not _mm_out_float32_supported(device):
        log.warning("this torch cannot return float32 products of float16 matrices; using float32 points")
        z, half = z.float(), False
    zf = z.float() if half else z
    zsq = (zf * zf).sum(1)
    c = zf.index_select(0, start_idx)  # (S, d)
    d0 = torch.mm(zf, c.t()).mul_(-2).add_(zsq.unsqueeze(1)).add_((c * c).sum(1).unsqueeze(0))
    if keep_start:  # (N,) squared L2 distance to the one starting point
        min_d = d0[:, 0].clamp_min(0).contiguous()
    else:  # (N,) squared mean-L2 distance
        min_d = d0.clamp_min_(0).sqrt_().mean(1).square_()
    del d0, c, zf

    selected = torch.empty(n, dtype=torch.int64, device=device)
    neg_inf = torch.tensor(float("-inf"), dtype=torch.float32, device=device)
    buf = torch.empty_like(min_d)
    i = 0
    if keep_start:
        selected[:1] = start_idx[:1]
        min_d.index_put_((start_idx[:1],), neg_inf)
        i = 1

    def step(out: torch.Tensor, j: int) -> None:
        idx = torch.argmax(min_d, dim=0, keepdim=True)  # (1,) on device, no sync
        out[j : j + 1] = idx
        ci = z.index_select(0, idx)  # (1, d)
        if half:
            dist = torch.mm(z, ci.t(), out_dtype=torch.float32).squeeze(1)
        else:
            dist = torch.mv(z, ci.squeeze(0), out=buf)
        dist.mul_(-2).add_(zsq).add_(zsq.index_select(0, idx))
        torch.minimum(min_d, dist, out=min_d)
        min_d.index_put_((idx,), neg_inf)

    warm = 3
    if device.type == "cuda" and graph_chunk > 0 and n - i >= warm + graph_chunk:
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(warm):  # real iterations, run on a side stream before capture
                step(selected, i)
                i += 1
        torch.cuda.current_stream(device).wait_stream(side)
        chunk = torch.empty(graph_chunk, dtype=torch.int64, device=device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):  # captured, not run
            for j in range(graph_chunk):
                step(chunk, j)
        while n - i >= graph_chunk:
            graph.replay()
            selected[i : i + graph_chunk].copy_(chunk)
            i += graph_chunk
        del graph
    while i < n:
        step(selected, i)
        i += 1
    return selected


# ---------------------------------------------------------------------------------- CPU (faiss)
def _faiss():
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is a requirement
        raise ModelError("the CPU coreset needs faiss-cpu (pip install faiss-cpu); or use method 'dense'") from exc
    return faiss


def _sq_dists(faiss, out: np.ndarray, c: np.ndarray, rows: np.ndarray) -> None:
    """``out[i] = sum_j (rows[i, j] - c[j])^2`` (float32, faiss SIMD kernel, row by row)."""
    faiss.fvec_L2sqr_ny(faiss.swig_ptr(out), faiss.swig_ptr(c), faiss.swig_ptr(rows), rows.shape[1], rows.shape[0])


def _initial_distances_cpu(z: np.ndarray, start_idx: np.ndarray) -> np.ndarray:
    """Squared mean L2 distance of every point to the starting points (float64 sum, float32 out)."""
    faiss = _faiss()
    buf = np.empty(len(z), dtype=np.float32)
    acc = np.zeros(len(z), dtype=np.float64)
    for s in start_idx.tolist():
        _sq_dists(faiss, buf, np.ascontiguousarray(z[s]), z)
        acc += np.sqrt(np.maximum(buf, 0).astype(np.float64))
    return np.square(acc / len(start_idx)).astype(np.float32)


def _greedy_plain(z: np.ndarray, min_d: np.ndarray, n: int) -> np.ndarray:
    faiss = _faiss()
    min_d = min_d.copy()
    buf = np.empty_like(min_d)
    sel = np.empty(n, dtype=np.int64)
    for i in range(n):
        j = int(min_d.argmax())
        sel[i] = j
        _sq_dists(faiss, buf, z[j], z)
        np.minimum(min_d, buf, out=min_d)
        min_d[j] = -np.inf
    return sel


def _partition(z: np.ndarray, block_size: int) -> list[np.ndarray]:
    """Balanced binary-tree partition into ceil(N / block_size) leaves of nearby points.

    Each node is split at the median of the projection on the direction between two far-apart
    points (the point farthest from the node's mean, and the point farthest from that one).
    Leaves come out in tree order (neighbouring leaves are close), each sorted by index. The
    partition only affects speed, never the selection.
    """
    num = len(z)
    zsq = np.einsum("ij,ij->i", z, z)
    leaves: list[np.ndarray] = []
    stack = [(np.arange(num), max(1, -(-num // block_size)))]
    while stack:
        idx, k = stack.pop()
        if k == 1 or len(idx) < 2:
            leaves.append(np.sort(idx))
            continue
        whole = len(idx) == num  # the root: the points themselves, not a copy of all of them
        x = z if whole else z[idx]
        q = zsq if whole else zsq[idx]
        a = x[int(np.argmax(q - 2 * (x @ x.mean(0))))]
        b = x[int(np.argmax(q - 2 * (x @ a)))]
        order = np.argsort(x @ (b - a), kind="stable")
        k_left = k // 2
        n_left = int(round(len(idx) * k_left / k))
        stack.append((idx[order[n_left:]], k - k_left))
        stack.append((idx[order[:n_left]], k_left))
    return leaves


def _dist_runs(faiss, dptr, zptr, cp, dim: int, size: int, runs) -> None:
    """Squared distances to the centre ``cp`` for the block runs ``[(first, end), ...]``."""
    for s0, e0 in runs:
        faiss.fvec_L2sqr_ny(dptr[s0], cp, zptr[s0], dim, (e0 - s0) * size)


def _split_runs(st: np.ndarray, en: np.ndarray, lens: np.ndarray) -> tuple[list, list]:
    """The block runs cut into two lists of (almost) equal block counts, for two threads."""
    half = int(lens.sum()) // 2
    head, tail, acc = [], [], 0
    for s0, e0 in zip(st.tolist(), en.tolist()):
        if acc >= half:
            tail.append((s0, e0))
        elif acc + (e0 - s0) <= half:
            head.append((s0, e0))
        else:
            cut = s0 + (half - acc)
            head.append((s0, cut))
            tail.append((cut, e0))
        acc += e0 - s0
    return head, tail


def _greedy_pruned(z: np.ndarray, min_d: np.ndarray, n: int, block_size: int,
                   threads: int = 1) -> tuple[np.ndarray, float]:
    """Exact ``_greedy_plain`` with triangle-inequality block pruning; also the computed fraction.

    ``threads > 1``: an iteration's distance computations are split between the calling thread
    and one worker (faiss releases the GIL); each row is computed by the same kernel either
    way, so the selection does not depend on ``threads``.
    """
    if threads > 1:
        with ThreadPoolExecutor(max_workers=1) as pool:
            return _greedy_pruned_loop(z, min_d, n, block_size, pool)
    return _greedy_pruned_loop(z, min_d, n, block_size, None)


def _greedy_pruned_loop(z: np.ndarray, min_d: np.ndarray, n: int, block_size: int,
                        pool: ThreadPoolExecutor | None) -> tuple[np.ndarray, float]:
    faiss = _faiss()
    sp = faiss.swig_ptr
    num, dim = z.shape
    leaves = _partition(z, max(1, block_size))
    nb = len(leaves)
    size = max(len(leaf) for leaf in leaves)
    perm = np.full(nb * size, -1, dtype=np.int64)  # block-major position -> original index (-1: padding)
    for k, leaf in enumerate(leaves):
        perm[k * size : k * size + len(leaf)] = leaf
    valid = perm >= 0
    zp = np.zeros((nb * size, dim), dtype=np.float32)
    zp[valid] = z[perm[valid]]
    md = np.full(nb * size, -np.inf, dtype=np.float32)
    md[valid] = min_d[perm[valid]]
    md2 = md.reshape(nb, size)
    perm2 = perm.reshape(nb, size)
    valid2 = valid.reshape(nb, size)

    # block centres and radii in float64, from the float32 points themselves
    mu = np.empty((nb, dim), dtype=np.float64)
    rad = np.empty(nb, dtype=np.float64)
    step = max(1, (1 << 22) // max(1, size * dim))
    for s in range(0, nb, step):
        zb = zp[s * size : (s + step) * size].reshape(-1, size, dim).astype(np.float64)
        vb = valid2[s : s + step]
        mb = (zb * vb[..., None]).sum(1) / vb.sum(1)[:, None]
        rb = np.sqrt(((zb - mb[:, None, :]) ** 2).sum(2))
        rb[~vb] = 0.0
        mu[s : s + step] = mb
        rad[s : s + step] = rb.max(1)
    rad *= 1.0 + 1e-12
    musq = np.einsum("ij,ij->i", mu, mu)
    musq_max = float(musq.max())

    blocks = np.arange(nb)
    pos = md2.argmax(1)
    bmax = md2[blocks, pos]  # largest distance per block (float32)
    barg = perm2[blocks, pos]  # original index of the first maximum of each block
    dist = np.empty(nb * size, dtype=np.float32)
    dist2 = dist.reshape(nb, size)
    zptr = [sp(zp[k * size :]) for k in range(nb)]
    dptr = [sp(dist[k * size :]) for k in range(nb)]
    sel = np.empty(n, dtype=np.int64)
    computed = 0
    for i in range(n):
        top = bmax.max()
        cand = np.flatnonzero(bmax == top)
        b = int(cand[0]) if len(cand) == 1 else int(cand[np.argmin(barg[cand])])
        p = b * size + int(md2[b].argmax())
        sel[i] = perm[p]
        c = zp[p]
        c64 = c.astype(np.float64)
        csq = float(c64 @ c64)
        # computed ||c - mu_B|| is at most sqrt(eps) above the true one (float64 round-off of the
        # expanded square); subtracting eta keeps lb a true lower bound
        eta = math.sqrt(1e-13 * (csq + musq_max))
        lb = np.sqrt(np.maximum(musq - 2.0 * (mu @ c64) + csq, 0.0)) - rad - eta
        act = lb <= 0
        act |= lb * lb <= bmax * (1.0 + _REL_TOL)
        act[b] = True
        a = np.flatnonzero(act)
        if len(a) > 1:
            brk = np.flatnonzero(np.diff(a) > _MERGE_GAP + 1)
            st = np.concatenate(([a[0]], a[brk + 1]))
            en = np.concatenate((a[brk], [a[-1]])) + 1
        else:
            st, en = a, a + 1
        cp = sp(c)
        lens = en - st
        if pool is not None and int(lens.sum()) * size >= _PAR_MIN_ROWS:
            head, tail = _split_runs(st, en, lens)
            job = pool.submit(_dist_runs, faiss, dptr, zptr, cp, dim, size, head)
            _dist_runs(faiss, dptr, zptr, cp, dim, size, tail)
            job.result()
        else:
            _dist_runs(faiss, dptr, zptr, cp, dim, size, zip(st.tolist(), en.tolist()))
        if len(st) == 1:
            blk = np.arange(int(st[0]), int(en[0]))
        else:
            blk = np.repeat(st - np.concatenate(([0], np.cumsum(lens)[:-1])), lens) + np.arange(int(lens.sum()))
        computed += len(blk)
        sub = np.minimum(md2[blk], dist2[blk])
        md2[blk] = sub
        md[p] = -np.inf
        sub = md2[blk]
        q = sub.argmax(1)
        bmax[blk] = sub[np.arange(len(blk)), q]
        barg[blk] = perm2[blk, q]
    return sel, computed / max(1, n * nb)


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
