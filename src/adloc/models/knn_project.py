"""Exact k-NN candidates from a low-dimensional lower bound: the first level of the bf16 search.

:class:`adloc.models.knn_bf16.Bf16Search` looks at every bank row through one full-width
bfloat16 product per query block; at the MVTec-scale study that product runs at the CPU's bf16
peak (docs/performance.md), so a faster search has to do less arithmetic. This level does a
``d + 1``-wide float32 product instead (``d`` = 64 against the embedding's 1,024), and keeps
:mod:`adloc.models.knn_bf16`'s contract: its candidates always contain the reference's
(:func:`~adloc.models.knn_bf16.direct_knn`) k nearest rows and their ties, so re-ranking them
gives the reference's result bit for bit. A query with more than ``limit`` candidates is handed
to the bf16 level unchanged.

The bound. Rows are centred as in the bf16 level (``c = fl32(x - mu)``; the exact ``c* = x - mu``
differs by ``|c - c*| <= u |c*|`` elementwise, ``u = 2^-24``). ``A`` (d x D, float32 values) is
the bank's top-``d`` principal directions; nothing below needs them exact, only ``A``'s own
values: with ``E = I - A^T A`` and ``v = c*_q - c*_b``,
``|A v|^2 + |E v|^2 = v^T (A^T A + E^T E) v <= f |v|^2``, where ``f = max(1, 1 - mu + mu^2)``
over the eigenvalues ``mu`` of ``A A^T`` (``A^T A + E^T E`` has eigenvalues ``1 - mu + mu^2``
and 1; ``f - 1 ~ 1e-7`` for a float32 orthonormal ``A``). With ``z(c) = [A c, |E c|]`` and
``|E v| >= ||E c*_q| - |E c*_b||``: ``t^2 = |v|^2 >= |z(c*_q) - z(c*_b)|^2 / f``.

Rounding, per row: ``z`` is computed in float64 from ``c`` (error ``<= 1e-10 f |c|``, far above
float64's ~1e-13 for D = 1,024 and orthonormal ``A``; ``f`` grows with ``|A|``) and rounded to
float32 (``<= u |z|``); ``|z(c*) - z(c)| <= sqrt(f) u |c*|``. So ``|z32 - z(c*)| <= rho |c|``
with ``rho = 2.01 sqrt(f) u + 1e-10 f`` (``|c*| <= |c| / (1 - u)``, ``|z| <= sqrt(f) |c| (1 +
1e-10 f)``), and with ``T = |z32_q - z32_b|``:
``sqrt(f) t >= T - eta``, ``eta = rho (|c_q| + |c_b|)``. The float32 product of the augmented
rows ``[z32_q, n_q, 1]``, ``[-2 z32_b, 1, n_b]`` (``n`` = float32 ``|z32|^2``) gives ``a`` with
``|a - T^2| <= beta = g_sum (N_q + N_b)`` as in the bf16 level's float32 case (``N`` = ``n``
inflated by ``1 + 2 g(d + 1)``; ``g_sum = 2.1 g(d + 3) + g(d + 1)``). The reference ``r`` is
``t^2 (1 + theta)`` with ``1 + theta >= (1 - u)^m``, ``m = ceil(log2 D) + 3``. Hence
``r >= lo(a) = max(0, sqrt(max(0, a - beta)) - eta)^2 / f * (1 - u)^m``, nondecreasing in ``a``.

Candidates, per query: the ``k`` rows of the smallest ``a`` (the probes) are re-ranked exactly;
``U`` = the largest of their ``r``: ``k`` rows have ``r <= U``, so every row of the reference's k
nearest (and every tie of its k-th) has ``lo(a) <= U``, i.e. (with the bank's largest ``|c|``
and ``N`` in ``eta`` and ``beta``, one threshold per query) ``a <= tau = (sqrt(U f /
(1 - u)^m) + eta)^2 + beta``. The candidates are the rows with ``a <= tau`` (``tau`` rounded up
to float32). As in the bf16 level every slack term is multiplied by 1.25 and ``1e-30`` is added,
in float64; the product is a plain float32 GEMM (numpy's BLAS, :meth:`ProjectedLevel._product`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from .knn_bf16 import SAFETY, TINY, U32, pair_distances

#: bank rows the principal directions are estimated from (evenly spaced; any ``A`` keeps the
#: search exact, a worse one only leaves more candidates)
PCA_ROWS = 16384
#: queries whose candidate pairs are listed at a time (at most 256 x M pairs in memory)
MASK_ROWS = 256
#: banks of fewer than 16 x this many rows skip :meth:`ProjectedLevel._surely_over`
SAMPLE_MIN = 256
#: rows turned into ``z`` at a time (float64: 2,048 x 1,024 is 16 MB)
ROW_CHUNK = 2048
#: float64 error allowance of ``z`` per unit ``|c|`` (the module docstring), times ``f`` (which
#: grows with ``|A|``, the float64 error's other factor)
Z64_ERR = 1e-10


def _gamma(n: int) -> float:
    return n * U32 / (1 - n * U32)


def principal_directions(bank_c: torch.Tensor, dim: int) -> torch.Tensor:
    """The top-``dim`` principal directions (float32 ``(dim, D)``) of the centred rows
    ``bank_c``, from at most :data:`PCA_ROWS` of them (a float32 covariance: the bound holds
    for any directions, so they need not be exact)."""
    m = bank_c.shape[0]
    rows = bank_c if m <= PCA_ROWS else bank_c[torch.linspace(0, m - 1, PCA_ROWS).long()]
    _, vecs = torch.linalg.eigh((rows.t() @ rows).double())  # ascending eigenvalues
    return vecs[:, -dim:].flip(1).t().float().contiguous()


class ProjectedLevel:
    """Candidates of the reference's k nearest from ``z = [A c, |E c|]`` (module docstring).

    ``bank`` float32 (M, D) as searched, ``mean`` the bank mean the rows are centred on.
    """

    def __init__(self, bank: torch.Tensor, mean: torch.Tensor, dim: int = 64):
        self.bank, self.mean = bank, mean
        bank_c = bank - mean
        full = bank.shape[1]
        self.a32 = principal_directions(bank_c, dim)
        self.a64 = self.a32.double()
        mu = torch.linalg.eigvalsh(self.a64 @ self.a64.t())
        lo_mu, hi_mu = float(mu.min()), float(mu.max())
        self.f = max(1.0, 1 - lo_mu + lo_mu * lo_mu, 1 - hi_mu + hi_mu * hi_mu) * (1 + 1e-9)
        self.rho = 2.01 * math.sqrt(self.f) * U32 + Z64_ERR * self.f
        self.m = math.ceil(math.log2(max(2, full))) + 3
        self.g = _gamma(dim + 1)
        self.g_sum = 2.1 * _gamma(dim + 3) + self.g
        z, n, cn = self._rows(bank_c)
        aug = torch.cat([z * -2, torch.ones(z.shape[0], 1), n.float().unsqueeze(1)], 1)
        self._aug_t = np.ascontiguousarray(aug.numpy().T)  # (d + 3, M) for numpy's GEMM
        self._buf = None
        self.n_max = float(n.max()) * (1 + 2 * self.g)
        self.c_max = float(cn.max())

    def _rows(self, c: torch.Tensor):
        """``(z32 (R, d + 1), n = |z32|^2 float32 as float64, |c| float64 rounded up)``, in
        float64 :data:`ROW_CHUNK` rows at a time (the float64 copies stay small)."""
        z = torch.empty((c.shape[0], self.a32.shape[0] + 1), dtype=torch.float32)
        cn = torch.empty(c.shape[0], dtype=torch.float64)
        for s in range(0, c.shape[0], ROW_CHUNK):
            c64 = c[s : s + ROW_CHUNK].double()
            p = c64 @ self.a64.t()
            z[s : s + ROW_CHUNK, :-1] = p
            z[s : s + ROW_CHUNK, -1] = torch.linalg.vector_norm(c64.sub_(p @ self.a64), dim=1)
            del c64
            cn[s : s + ROW_CHUNK] = torch.linalg.vector_norm(c[s : s + ROW_CHUNK].double(), dim=1)
        n = (z * z).sum(1).double()
        return z, n, cn * (1 + 1e-12)

    def _product(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ aug^T`` (float32 (Q, M)) into a reused buffer, by numpy's BLAS (OpenBLAS) on
        torch's thread count: torch's MKL float32 GEMM ran at 46 GFLOP/s for this thin shape
        on a 2-core AMD Zen 4, OpenBLAS at 126 (any summation order keeps the bound: ``beta``)."""
        nq, m = x.shape[0], self._aug_t.shape[1]
        if self._buf is None or self._buf.shape[0] < nq:
            self._buf = np.empty((nq, m), dtype=np.float32)
        out = self._buf[:nq]
        with threadpool_limits(max(1, torch.get_num_threads()), user_api="blas"):
            np.matmul(x.numpy(), self._aug_t, out=out)
        return torch.from_numpy(out)

    @staticmethod
    def _surely_over(a: torch.Tensor, tau: torch.Tensor, limit: int) -> torch.Tensor:
        """Queries whose candidates in the first sixteenth of the bank already point to more
        than 4 x ``limit`` in all (listing them would cost more than the bf16 level): a shortcut
        only, the exact count decides for the others."""
        m = a.shape[1]
        if m < 16 * SAMPLE_MIN:
            return torch.zeros(a.shape[0], dtype=torch.bool)
        head = (a[:, : m // 16] <= tau).view(torch.uint8).sum(1, dtype=torch.int32)
        return head * 16 > 4 * limit

    def candidates(self, queries: torch.Tensor, k: int, limit: int):
        """``(qi, bi, over)`` for the float32 ``queries`` (Q, D): the pairs (query, bank row)
        that can be among the reference's k nearest, grouped by query with the bank index
        ascending, for the queries with at most ``limit`` of them; ``over`` (Q,) marks the
        others (they get no pairs)."""
        z, n, cn = self._rows(queries - self.mean)
        a = self._product(torch.cat([z, n.float().unsqueeze(1), torch.ones(z.shape[0], 1)], 1))
        nq = a.shape[0]
        probe = a.argmin(1, keepdim=True) if k == 1 else torch.topk(a, k, dim=1, largest=False).indices
        r = pair_distances(queries, self.bank, torch.arange(nq).repeat_interleave(k), probe.reshape(-1))
        u = r.reshape(nq, k).amax(1).double() * (1 + 1e-6) + TINY
        eta = SAFETY * self.rho * (cn + self.c_max) + TINY
        beta = SAFETY * self.g_sum * (n * (1 + 2 * self.g) + self.n_max) + TINY
        s = torch.sqrt(u * self.f / (1 - U32) ** self.m) + eta
        tau = ((s * s + beta) * (1 + 1e-6) + TINY).float().unsqueeze(1)
        over = self._surely_over(a, tau, limit)
        tau[over] = -math.inf  # no pairs listed for them
        qis, bis = [], []
        for s0 in range(0, nq, MASK_ROWS):  # the pairs a few hundred queries at a time: bounded memory
            qi, bi = (a[s0 : s0 + MASK_ROWS] <= tau[s0 : s0 + MASK_ROWS]).nonzero(as_tuple=True)
            many = torch.bincount(qi, minlength=min(MASK_ROWS, nq - s0)) > limit
            if bool(many.any()):
                keep = ~many[qi]
                qi, bi = qi[keep], bi[keep]
                over[s0 : s0 + many.shape[0]] = many
            qis.append(qi + s0)
            bis.append(bi)
        return torch.cat(qis), torch.cat(bis), over
