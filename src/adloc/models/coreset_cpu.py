"""The greedy coreset's CPU loops (faiss): ``"plain"`` and the exact ``"pruned"`` loop.

Entry point :func:`adloc.models.coreset.greedy_coreset` (its module docstring describes the
algorithm and both loops); this module holds the CPU side: the starting distances, the plain
reference loop and the block-pruned loop, all computing a row's squared distance with faiss'
per-row SIMD kernel (``fvec_L2sqr_ny``), so the two loops select exactly the same points.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ModelError

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


def faiss_module():
    """The faiss module, or a :class:`ModelError` saying how to install it."""
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is a requirement
        raise ModelError("the CPU coreset needs faiss-cpu (pip install faiss-cpu); or use method 'dense'") from exc
    return faiss


def _sq_dists(faiss, out: np.ndarray, c: np.ndarray, rows: np.ndarray) -> None:
    """``out[i] = sum_j (rows[i, j] - c[j])^2`` (float32, faiss SIMD kernel, row by row)."""
    faiss.fvec_L2sqr_ny(faiss.swig_ptr(out), faiss.swig_ptr(c), faiss.swig_ptr(rows), rows.shape[1], rows.shape[0])


def initial_distances(z: np.ndarray, start_idx: np.ndarray) -> np.ndarray:
    """Squared mean L2 distance of every point to the starting points (float64 sum, float32 out)."""
    faiss = faiss_module()
    buf = np.empty(len(z), dtype=np.float32)
    acc = np.zeros(len(z), dtype=np.float64)
    for s in start_idx.tolist():
        _sq_dists(faiss, buf, np.ascontiguousarray(z[s]), z)
        acc += np.sqrt(np.maximum(buf, 0).astype(np.float64))
    return np.square(acc / len(start_idx)).astype(np.float32)


def select_cpu(z: torch.Tensor, n: int, start_idx: torch.Tensor, keep_start: bool, method: str,
               block_size: int, threads: int) -> tuple[torch.Tensor, str]:
    """The CPU greedy loop (``method`` ``"plain"`` or ``"pruned"``) from ``start_idx``:
    ``(indices (n,) int64, log note)``. ``keep_start``: the one starting point is the coreset's
    first member (``start="random_point"``); otherwise the starting points are not selected."""
    zn = np.ascontiguousarray(z.detach().numpy(), dtype=np.float32)
    min_d = initial_distances(zn, start_idx.numpy())
    first = np.empty(0, dtype=np.int64)
    if keep_start:  # the starting point is the first member; the loop selects the rest
        first = start_idx.numpy().astype(np.int64)
        min_d[first] = -np.inf
    info = ""
    if n - len(first) == 0:
        out = np.empty(0, dtype=np.int64)
    elif method == "plain":
        out = greedy_plain(zn, min_d, n - len(first))
    else:
        out, frac = greedy_pruned(zn, min_d, n - len(first), int(block_size), max(1, int(threads)))
        info = f", {100 * frac:.1f}% of point distances computed"
    return torch.from_numpy(np.concatenate((first, out))), info


def greedy_plain(z: np.ndarray, min_d: np.ndarray, n: int) -> np.ndarray:
    """The reference loop: every iteration computes all N squared distances."""
    faiss = faiss_module()
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


# ------------------------------------------------------------------------------- pruned loop
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


@dataclass
class _Blocks:
    """The points stored block-major (``nb`` blocks of ``size`` rows, padded), their current
    distances, and each block's bounding sphere (float64 centre ``mu``, radius ``rad``)."""

    size: int
    perm: np.ndarray  # (nb * size,) block-major position -> original index (-1: padding)
    zp: np.ndarray  # (nb * size, dim) float32 points, padding rows zero
    md: np.ndarray  # (nb * size,) float32 current squared distances (padding: -inf)
    mu: np.ndarray  # (nb, dim) float64
    rad: np.ndarray  # (nb,) float64
    musq: np.ndarray  # (nb,) float64 |mu|^2

    @property
    def nb(self) -> int:
        return len(self.rad)


def _blocks(z: np.ndarray, min_d: np.ndarray, block_size: int) -> _Blocks:
    num, dim = z.shape
    leaves = _partition(z, max(1, block_size))
    nb = len(leaves)
    size = max(len(leaf) for leaf in leaves)
    perm = np.full(nb * size, -1, dtype=np.int64)
    for k, leaf in enumerate(leaves):
        perm[k * size : k * size + len(leaf)] = leaf
    valid = perm >= 0
    zp = np.zeros((nb * size, dim), dtype=np.float32)
    zp[valid] = z[perm[valid]]
    md = np.full(nb * size, -np.inf, dtype=np.float32)
    md[valid] = min_d[perm[valid]]
    mu, rad = _block_spheres(zp, valid.reshape(nb, size), size)
    return _Blocks(size, perm, zp, md, mu, rad, np.einsum("ij,ij->i", mu, mu))


def _block_spheres(zp: np.ndarray, valid2: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Block centres and radii in float64, from the float32 points themselves."""
    nb, dim = valid2.shape[0], zp.shape[1]
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
    return mu, rad


def _active_runs(bl: _Blocks, c: np.ndarray, bmax: np.ndarray, b: int, musq_max: float):
    """``(starts, ends)`` of the runs of blocks whose distances the new centre ``c`` may lower
    (block ``b``, the centre's own, always; gaps of at most ``_MERGE_GAP`` blocks merged)."""
    c64 = c.astype(np.float64)
    csq = float(c64 @ c64)
    # computed ||c - mu_B|| is at most sqrt(eps) above the true one (float64 round-off of the
    # expanded square); subtracting eta keeps lb a true lower bound
    eta = math.sqrt(1e-13 * (csq + musq_max))
    lb = np.sqrt(np.maximum(bl.musq - 2.0 * (bl.mu @ c64) + csq, 0.0)) - bl.rad - eta
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
    return st, en


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


def greedy_pruned(z: np.ndarray, min_d: np.ndarray, n: int, block_size: int,
                  threads: int = 1) -> tuple[np.ndarray, float]:
    """Exact :func:`greedy_plain` with triangle-inequality block pruning; also the computed fraction.

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
    faiss = faiss_module()
    sp = faiss.swig_ptr
    dim = z.shape[1]
    bl = _blocks(z, min_d, block_size)
    nb, size, perm, zp, md = bl.nb, bl.size, bl.perm, bl.zp, bl.md
    md2, perm2 = md.reshape(nb, size), perm.reshape(nb, size)
    musq_max = float(bl.musq.max())

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
        st, en = _active_runs(bl, c, bmax, b, musq_max)
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
