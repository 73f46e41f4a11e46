"""Exact k-NN by a bfloat16 candidate search and a float32 re-ranking (opt-in, CPU).

The reference it matches (:func:`direct_knn`, bit for bit): the squared distance of a query
``q`` to a bank row ``b`` is ``r(q, b)`` = the float32 sum of ``fl(fl(q_j - b_j)^2)`` by a fixed
pairwise tree (halves added elementwise, the length zero-padded to a power of two), and the
``k`` nearest are the ``k`` smallest ``r``, ties to the lower bank index. Every step is one
IEEE float32 operation per element, so ``r`` does not depend on how many pairs are evaluated
together. It is the *direct* formula, not faiss' ``|q|^2 + |b|^2 - 2 q.b``: faiss' float32
values carry its own cancellation error (about ``2^-24 (|q|^2 + |b|^2)`` per distance), so
they can differ from ``r`` in the last bits and, at near ties, in the neighbour.

Levels (:class:`Bf16Search`). Banks of 256+ dimensions are first searched through a projected
lower bound (:mod:`adloc.models.knn_project`: a 65-wide float32 product instead of the full-width
bf16 one, the same contract); the queries it cannot settle with at most ``max_candidates``
candidates go to the bf16 level below, and those to the float32 level.

Candidate search (the bf16 level). Rows are centred on the bank mean ``mu`` (distances
are translation invariant; centring shrinks the norms that the error scales with):
``c = fl32(x - mu)``, ``x~ = bf16(c)``. One bfloat16 matrix product of the augmented rows
``[q~, n_q(3 bf16 pieces), 1, 1, 1]`` and ``[-2 b~, 1, 1, 1, n_b(3 pieces)]`` gives
``a ~= n_q + n_b - 2 q~.b~ ~= |q~ - b~|^2``, where ``n`` is the float32 ``|x~|^2``.

Error bound, with ``u = 2^-24``, ``v = 2^-8`` (bf16), ``g(n) = n u / (1 - n u)``, ``D`` the
dimension and ``N = n_q + n_b`` (both inflated by ``1 + 2 g(D)``, plus the pieces' residual):

1. Inputs: ``|x~_j - (x_j - mu_j)| <= rho |x_j - mu_j|`` with ``rho = (1+u)(1+v) - 1``, so with
   ``t = |q - b|`` (exact) and ``T = |q~ - b~|``: ``|t - T| <= eta = rho/(1-rho) (|q~| + |b~|)``.
2. Product: bf16 products are exact in float32 and the kernels (oneDNN AVX512-BF16/AMX, and
   the float32 path) accumulate in float32, so in any order the sum is within
   ``g(D+6) * sum|terms| <= g(D+6) * 2.1 N`` of the exact augmented dot, which is within
   ``g(D) N + residuals`` of ``T^2``. The product is then rounded to bf16 (torch returns bf16):
   ``|a - acc| <= v/(1-v) |a| = alpha |a|``. Hence ``|a - T^2| <= alpha |a| + beta``.
3. Reference: ``r = t^2 (1 + theta)`` with ``(1-u)^m <= 1 + theta <= (1+u)^m``, ``m = L + 3``,
   ``L = ceil(log2 D)`` (difference, square, ``L`` tree additions).

So ``r_i <= up(a_i) = (sqrt(a_i + alpha|a_i| + beta) + eta)^2 (1+u)^m`` and
``r_i >= lo(a_i) = max(0, sqrt(max(0, a_i - alpha|a_i| - beta)) - eta)^2 (1-u)^m``; both are
nondecreasing in ``a`` (for fixed ``eta``, ``beta``: with the bank's largest ``|b~|`` they hold
for every row, one value per query).
Let ``U`` = ``up`` of the k-th smallest ``a``. ``k`` rows have ``r <= U``, so every row of the
reference top k (and every row tied with its k-th) has ``r <= U``, hence ``lo(a) <= U``, i.e.
``a <= tau = ((sqrt(U / (1-u)^m) + eta)^2 + beta) / (1 - alpha)``. The candidates are all rows
with ``a <= tau`` (``tau`` rounded up); re-ranking them with ``r`` and the same tie rule gives
the reference's result exactly. All slack terms are multiplied by 1.25 and ``1e-30`` absolute
is added (subnormal flushing in the kernels), computed in float64.

Windows (the bf16 level). The bounds hold per pair with the bank row's own ``|b~|`` and
``n_b`` in ``eta`` and ``beta``, which is much tighter than the bank's largest (WRN50-2 banks:
largest centred norm ~4x the median). Each query's ``max(k, max_candidates)`` smallest scores
form a window; ``U`` = the k-th smallest ``up`` in it (k rows have ``r <= U``); a window row
is a candidate if its own ``lo <= U``. Rows outside the window have scores >= the window's
last, so none of them can qualify if ``lo`` of that last score with the bank's largest norm is
``> U``; otherwise the query is *over*: it gets a second window ``widen`` times as wide (from
the same scores), and if it is still over, the float32 level below (MVTec-scale study,
docs/performance.md: 0 of 880,770 patch searches fell back; 2.4-7.6 candidates per patch on
average per scoring job, 14-36 before the per-row terms).
The float32 level (``v = 0``, pieces = 1, ``rho = u``; needs
``torch.get_float32_matmul_precision() == "highest"``, set for the call) takes every row with
``a <= tau`` (bank's largest norm, one threshold per query), whose candidate set is
re-ranked whatever its size. NaN or infinite features are not supported.
"""

from __future__ import annotations

import logging
import math

import torch

log = logging.getLogger(__name__)

U32 = 2.0 ** -24
U16 = 2.0 ** -8
SAFETY = 1.25
TINY = 1e-30
#: pairs evaluated at once by the re-ranking (each a D-vector of float32): 256 x 1,024-d is 1 MB
#: per buffer, so the gathered rows stay in cache through the elementwise passes (16,384 pairs
#: took 3-7x longer on a Sapphire Rapids core: every pass went to memory)
PAIR_CHUNK = 1 << 8
#: queries the projected level (:class:`Bf16Search`) is tried on before it may be dropped
PROJECT_TRIAL = 2048


def bf16_supported() -> bool:
    """Whether this CPU has AVX512-BF16 or AMX-BF16 (the fast oneDNN bf16 kernels)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = f.read()
    except OSError:
        return False
    return ("avx512_bf16" in flags or "amx_bf16" in flags) and torch.backends.mkldnn.is_available()


def _tree_sum_(d: torch.Tensor) -> torch.Tensor:
    """Row sums of ``d`` (P, n) by the fixed pairwise tree, in place (``d`` is overwritten).

    The length is zero-padded to a power of two ``p`` in the reference; adding a padded zero
    leaves a non-negative value unchanged, so the first level adds only the ``n - p/2`` real
    upper columns and the rest of the tree halves exactly as the padded one does.
    """
    n = d.shape[1]
    h = (1 << max(0, (n - 1).bit_length())) // 2
    while h >= 1:
        d[:, : n - h].add_(d[:, h:n])
        n = h
        h //= 2
    return d[:, 0]


def direct_sq_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``r`` for pairs of rows: float32 ``(P,)`` from ``a``, ``b`` float32 ``(P, D)``."""
    d = a - b
    d.mul_(d)
    return _tree_sum_(d).clone()


def pair_distances(queries, bank, qi, bi) -> torch.Tensor:
    """``r`` of the pairs ``(queries[qi], bank[bi])``, gathered :data:`PAIR_CHUNK` at a time
    into two reused buffers."""
    n_pairs, dim = qi.shape[0], queries.shape[1]
    r = torch.empty(n_pairs, dtype=torch.float32)
    width = min(PAIR_CHUNK, n_pairs)
    qa = torch.empty((width, dim), dtype=torch.float32)
    ba = torch.empty((width, dim), dtype=torch.float32)
    for s in range(0, n_pairs, PAIR_CHUNK):
        e = min(n_pairs, s + PAIR_CHUNK)
        a = torch.index_select(queries, 0, qi[s:e], out=qa[: e - s])
        b = torch.index_select(bank, 0, bi[s:e], out=ba[: e - s])
        a.sub_(b).mul_(a)
        r[s:e] = _tree_sum_(a)
    return r


def _rerank(queries, bank, qi, bi, k: int, n_q: int):
    """Top ``k`` of each query among its pairs ``(qi, bi)`` (grouped by ``qi``, ``bi`` ascending)."""
    r = pair_distances(queries, bank, qi, bi)
    order = torch.sort(r, stable=True).indices
    order = order[torch.sort(qi[order], stable=True).indices]  # by query, then r, then index
    counts = torch.bincount(qi, minlength=n_q)
    starts = torch.cumsum(counts, 0) - counts
    sel = order[(starts.unsqueeze(1) + torch.arange(k)).reshape(-1)]
    return r[sel].reshape(n_q, k), bi[sel].reshape(n_q, k)


def direct_knn(queries: torch.Tensor, bank: torch.Tensor, k: int, chunk: int = 64):
    """The reference: exact k-NN under ``r`` by brute force (slow; tests and checks).

    ``(squared distances float32 (Q, k'), indices int64 (Q, k'))``, ``k' = min(k, M)``.
    """
    q_all = queries.detach().to("cpu", torch.float32).contiguous()
    bank = bank.detach().to("cpu", torch.float32).contiguous()
    m = bank.shape[0]
    k = max(1, min(int(k), m))
    out_d, out_i = [], []
    for s in range(0, q_all.shape[0], chunk):
        q = q_all[s : s + chunk]
        qi = torch.arange(q.shape[0]).repeat_interleave(m)
        bi = torch.arange(m).repeat(q.shape[0])
        d, i = _rerank(q, bank, qi, bi, k, q.shape[0])
        out_d.append(d)
        out_i.append(i)
    return torch.cat(out_d), torch.cat(out_i)


def _pieces(n: torch.Tensor, dtype: torch.dtype, count: int):
    """``n`` (float32) as ``count`` values of ``dtype`` and the float64 residual ``|n - sum|``."""
    out, rest = [], n.double()
    for _ in range(count):
        p = rest.to(dtype)
        out.append(p)
        rest = rest - p.double()
    return torch.stack(out, 1), rest.abs()


class _Bounds:
    """Per-query error terms of one block (float64): the inflated squared norm ``nq``, its
    square root and the norm pieces' residual (the module docstring's ``n_q`` terms)."""

    def __init__(self, nq: torch.Tensor, resid: torch.Tensor):
        self.nq, self.qn, self.resid = nq, nq.sqrt(), resid

    def select(self, rows: torch.Tensor) -> "_Bounds":
        return _Bounds(self.nq[rows], self.resid[rows])


class _Level:
    """One candidate level: the bank rows rounded to ``dtype``, augmented, with their bounds.

    The bounds ``eta`` and ``beta`` of a pair use the bank row's own norm in the candidate test
    (:meth:`window`; rows of a large norm are rare, e.g. 197 against a median of 47 in a
    WRN50-2 bank) and the bank's largest for rows that were not looked at (the ``over`` test).
    """

    def __init__(self, bank_c: torch.Tensor, dtype: torch.dtype):
        self.dtype = dtype
        self.count = 3 if dtype == torch.bfloat16 else 1
        self.v = U16 if dtype == torch.bfloat16 else 0.0
        self.rho = (1 + U32) * (1 + self.v) - 1
        self.dim = bank_c.shape[1]
        xt, n, parts, resid = self._round(bank_c)
        ones = torch.ones(xt.shape[0], self.count, dtype=dtype)
        self.aug = torch.cat([xt * -2, ones, parts], 1).contiguous()
        g = self._gamma(self.dim)
        n64 = n.double()
        self.row_norm = torch.sqrt(n64 * (1 + 2 * g))
        self.row_resid = resid
        self.row_n = n64 * (1 + 2 * g) + resid
        self.resid_max = float(resid.max())
        self.n_max = float(n64.max()) * (1 + 2 * g) + self.resid_max
        self.norm_max = math.sqrt(float(n64.max()) * (1 + 2 * g))
        self.g_sum = 2.1 * self._gamma(self.dim + 2 * self.count) + self._gamma(self.dim)
        self.alpha = SAFETY * (self.v / (1 - self.v) if self.v else 0.0)
        self.m = math.ceil(math.log2(max(2, self.dim))) + 3

    def _round(self, c):
        xt = c.to(self.dtype)
        n = (xt.float() * xt.float()).sum(1)
        parts, resid = _pieces(n, self.dtype, self.count)
        return xt, n, parts, resid

    @staticmethod
    def _gamma(n: int) -> float:
        return n * U32 / (1 - n * U32)

    def scores(self, q_c: torch.Tensor):
        """``(a (Q, M) in dtype, the queries' _Bounds)``."""
        xt, n, parts, resid = self._round(q_c)
        ones = torch.ones(xt.shape[0], self.count, dtype=self.dtype)
        a = torch.mm(torch.cat([xt, parts, ones], 1), self.aug.t())
        return a, _Bounds(n.double() * (1 + 2 * self._gamma(self.dim)) + resid, resid)

    def _terms(self, qb: _Bounds, rows: torch.Tensor | None):
        """``(eta, beta)`` float64: per pair with the rows' own norms (``rows`` (Q, w) bank
        indices), or per query (Q, 1) with the bank's largest (``rows`` None)."""
        if rows is None:
            bn, bnorm, bres = self.n_max, self.norm_max, self.resid_max
        else:
            bn, bnorm, bres = self.row_n[rows], self.row_norm[rows], self.row_resid[rows]
        qn, nq, qres = qb.qn.unsqueeze(1), qb.nq.unsqueeze(1), qb.resid.unsqueeze(1)
        eta = SAFETY * (self.rho / (1 - self.rho) * (qn + bnorm)) + TINY
        beta = SAFETY * (self.g_sum * (nq + bn) + qres + bres + TINY)
        return eta, beta

    def _up(self, a, eta, beta):
        """Upper bound of ``r`` from a score (module docstring), float64."""
        return (torch.sqrt((a + self.alpha * a.abs() + beta).clamp_min(0)) + eta) ** 2 * (1 + U32) ** self.m

    def _lo(self, a, eta, beta):
        """Lower bound of ``r`` from a score, float64."""
        return (torch.sqrt((a - self.alpha * a.abs() - beta).clamp_min(0)) - eta).clamp_min(0) ** 2 * (1 - U32) ** self.m

    def _threshold(self, ak: torch.Tensor, eta, beta) -> torch.Tensor:
        """``tau`` (Q, 1) from the k-th smallest score ``ak`` (Q, 1) with per-query terms: every
        row with ``lo(a) <= up(ak)`` has ``a <= tau`` (the module docstring), rounded up to the
        scores' dtype."""
        s = torch.sqrt(self._up(ak.double(), eta, beta) / (1 - U32) ** self.m) + eta
        tau = ((s * s + beta) / (1 - self.alpha)) * (1 + 1e-6) + TINY
        if self.dtype == torch.bfloat16:  # bf16 rounds to nearest, by <= 2^-9 relative
            return (tau * (1 + 2.0 ** -7)).to(torch.bfloat16)
        return tau.float()

    def window(self, a: torch.Tensor, qb: _Bounds, k: int, width: int):
        """``(idx (Q, w) with rows that cannot be among the k nearest set to M, over (Q,))``
        from each query's ``width`` smallest scores of ``a`` (Q, M).

        ``U`` = the k-th smallest upper bound in the window: k rows have ``r <= U``, so every
        row of the reference's k nearest (and its ties) has ``lo <= U``. A window row is kept if
        its lower bound (own norm) is ``<= U``; a query is ``over`` if a row beyond the window
        (score >= the window's last, bank's largest norm) could still be.
        """
        n_rows = a.shape[1]
        w = min(width, n_rows)
        vals, idx = torch.topk(a, w, dim=1, largest=False, sorted=True)
        v = vals.double()
        eta, beta = self._terms(qb, idx)
        u = torch.kthvalue(self._up(v, eta, beta), k, dim=1).values.unsqueeze(1) * (1 + 1e-6) + TINY
        inside = self._lo(v, eta, beta) <= u
        if w < n_rows:
            eta_m, beta_m = self._terms(qb, None)
            over = (self._lo(v[:, -1:], eta_m, beta_m) <= u)[:, 0]
        else:
            over = torch.zeros(a.shape[0], dtype=torch.bool)
        return torch.where(inside, idx, n_rows), over

    def candidates(self, q_c: torch.Tensor, k: int, width: int | None = None, widen: int = 8):
        """``(qi, bi, over)``: the pairs (query, bank row) that can be among the reference's k
        nearest, grouped by query with the bank index ascending, and the queries that may have
        more candidates than the windows hold (those get no pairs). ``width`` None: every row
        is looked at through one mask (nothing is over; the float32 level). A query over its first window of
        ``width`` rows gets a second window ``widen`` times as wide before it counts as over.
        """
        a, qb = self.scores(q_c)
        n_rows = a.shape[1]
        if width is None:  # every row with a score within tau (bank's largest norm): a mask
            eta, beta = self._terms(qb, None)
            thr = self._threshold(torch.topk(a, k, dim=1, largest=False).values.amax(1, keepdim=True), eta, beta)
            qi, bi = (a <= thr).nonzero(as_tuple=True)
            return qi, bi, torch.zeros(a.shape[0], dtype=torch.bool)
        idx, over = self.window(a, qb, k, width)
        groups = [(torch.arange(a.shape[0]), idx, ~over)]
        if bool(over.any()) and width < n_rows and widen > 1:
            rows = over.nonzero()[:, 0]
            idx2, over2 = self.window(a[rows], qb.select(rows), k, width * widen)
            groups.append((rows, idx2, ~over2))
            over = over.clone()
            over[rows] = over2
        qi, bi = zip(*(self._pairs(*g, n_rows) for g in groups))
        qi, bi = torch.cat(qi), torch.cat(bi)
        order = torch.sort(qi, stable=True).indices  # by query; within one, bank index ascending
        return qi[order], bi[order], over

    @staticmethod
    def _pairs(q_rows, idx, keep, n_rows: int):
        """The kept window rows as (query, bank row) pairs, bank index ascending per query."""
        idx = torch.where(keep.unsqueeze(1), idx, n_rows).sort(1).values
        qi, col = (idx < n_rows).nonzero(as_tuple=True)
        return q_rows[qi], idx[qi, col]


class Bf16Search:
    """Exact k-NN under :func:`direct_knn`'s ``r`` on the CPU: bf16 candidates, float32 re-rank.

    ``project`` (default 64; None: off): banks of at least ``4 * project`` dimensions are first
    searched through :class:`adloc.models.knn_project.ProjectedLevel`, a ``project + 1``-wide
    float32 lower bound with the same contract; a query with more than ``max_candidates``
    candidates there goes on to the bf16 level. If more than half of the first
    :data:`PROJECT_TRIAL` queries (or more) go on, the projected level is dropped for the rest
    of the search (it only pays when it settles most queries).

    ``stats``: ``queries``, ``projected`` (settled by the projected level), ``fallback``
    (queries that needed the float32 level) and ``candidates`` (pairs re-ranked), accumulated
    over :meth:`search` calls.
    """

    def __init__(self, bank: torch.Tensor, max_candidates: int = 128, max_block_elems: int = 1 << 26,
                 widen: int = 8, project: int | None = 64):
        self.bank = bank.detach().to("cpu", torch.float32).contiguous()
        self.mean = self.bank.mean(0)
        bank_c = self.bank - self.mean
        self.max_candidates = int(max_candidates)
        self.widen = int(widen)
        self.max_block_elems = int(max_block_elems)
        self._levels = {torch.bfloat16: _Level(bank_c, torch.bfloat16)}
        self._bank_c = bank_c
        self._proj = None
        if project and self.bank.shape[1] >= 4 * int(project):
            from .knn_project import ProjectedLevel

            self._proj = ProjectedLevel(self.bank, self.mean, int(project))
        self._proj_tally = [0, 0]  # queries seen, queries passed on
        self.stats = {"queries": 0, "projected": 0, "fallback": 0, "candidates": 0}

    def _level(self, dtype):
        if dtype not in self._levels:
            self._levels[dtype] = _Level(self._bank_c, dtype)
        return self._levels[dtype]

    def search(self, queries: torch.Tensor, k: int):
        """``(squared distances float32 (Q, k'), indices int64 (Q, k'))``, nearest first."""
        q_all = queries.detach().to("cpu", torch.float32).contiguous()
        m = self.bank.shape[0]
        k = max(1, min(int(k), m))
        n = q_all.shape[0]
        out_d = torch.empty((n, k), dtype=torch.float32)
        out_i = torch.empty((n, k), dtype=torch.int64)
        step = max(1, self.max_block_elems // m)
        for s in range(0, n, step):
            q = q_all[s : s + step]
            rows = torch.arange(s, s + q.shape[0])
            if self._proj is not None:
                qi, bi, over = self._proj.candidates(q, k, self.max_candidates)
                self._settle(q, rows, qi, bi, over, k, out_d, out_i)
                self._watch(q.shape[0], int(over.sum()))
                keep = over.nonzero()[:, 0]
                q, rows = q[keep], rows[keep]
            if not q.shape[0]:
                continue
            width = max(k, self.max_candidates)
            qi, bi, fb = self._level(torch.bfloat16).candidates(q - self.mean, k, width, self.widen)
            self._settle(q, rows, qi, bi, fb, k, out_d, out_i)
            bad = fb.nonzero()[:, 0]
            if bad.numel():
                d, i = self._fallback(q[bad], k)
                out_d[rows[bad]], out_i[rows[bad]] = d, i
                self.stats["fallback"] += int(bad.numel())
        self.stats["queries"] += n
        return out_d, out_i

    def _settle(self, q, rows, qi, bi, passed, k: int, out_d, out_i) -> None:
        """Re-rank the pairs of the queries not ``passed`` on and write their results at
        ``rows`` of ``out_d`` / ``out_i``."""
        ok = (~passed).nonzero()[:, 0]
        if not ok.numel():
            return
        if ok.numel() < q.shape[0]:  # renumber the pairs over the queries kept
            qi = (torch.cumsum(~passed, 0) - 1)[qi]
        d, i = _rerank(q[ok], self.bank, qi, bi, k, ok.numel())
        out_d[rows[ok]], out_i[rows[ok]] = d, i
        self.stats["candidates"] += int(qi.numel())

    def _watch(self, seen: int, passed: int) -> None:
        """Count the projected level's queries; drop the level if it passes most of them on."""
        self.stats["projected"] += seen - passed
        tally = self._proj_tally
        tally[0] += seen
        tally[1] += passed
        if tally[0] >= PROJECT_TRIAL and 2 * tally[1] > tally[0]:
            log.info("knn_bf16: the projected bound passed %d of %d queries on to the bf16 level; "
                     "searching without it from here", tally[1], tally[0])
            self._proj = None

    def _fallback(self, q: torch.Tensor, k: int):
        prec = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("highest")
        try:
            qi, bi, _ = self._level(torch.float32).candidates(q - self.mean, k)
        finally:
            torch.set_float32_matmul_precision(prec)
        return _rerank(q, self.bank, qi, bi, k, q.shape[0])
