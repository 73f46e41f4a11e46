"""Exact k-nearest-neighbour search: faiss ``IndexFlatL2`` on CPU, chunked torch matmul on CUDA.

Both backends are exact brute force. ``faiss.IndexFlatL2`` returns SQUARED L2 distances (the
study used them as they came); :func:`knn` returns squared distances when ``squared=True`` and
L2 distances (square root, after clamping tiny negative round-off to 0) otherwise.

The torch backend computes ``|q|^2 - 2 q.b + |b|^2`` in float32 chunks of queries sized so one
chunk's distance block stays under ``max_block_elems`` elements, then ``topk(largest=False)``.
Results come back sorted by distance, on the queries' device, as ``(float32, int64)`` tensors.
``k`` larger than the bank is clipped to the bank size.

``bf16=True`` (opt-in, CPU banks): where the CPU has AVX512-BF16 or AMX, the search runs as
:class:`adloc.models.knn_bf16.Bf16Search` (backend ``"bf16"``): bfloat16 candidates, re-ranked
in float32, provably equal to the direct-formula float32 reference
:func:`adloc.models.knn_bf16.direct_knn` (not bit-identical to faiss' expansion formula: see
that module). Elsewhere it logs so and searches as without it; CUDA banks are unaffected.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from ..errors import ModelError

log = logging.getLogger(__name__)

#: distance block size for the torch backend (float32 elements; 2**26 = 256 MiB)
DEFAULT_BLOCK_ELEMS = 1 << 26


class KnnIndex:
    """Exact L2 index over ``bank`` (M, D).

    ``backend``: ``"auto"`` (faiss when the bank is on the CPU, torch otherwise), ``"faiss"``
    or ``"torch"``; ``bf16``: see the module docstring. Build once, search many times.
    """

    def __init__(self, bank: torch.Tensor, backend: str = "auto", max_block_elems: int = DEFAULT_BLOCK_ELEMS,
                 bf16: bool = False):
        if bank.ndim != 2 or bank.shape[0] == 0:
            raise ModelError(f"k-NN bank must be a non-empty (M, D) matrix, got {tuple(bank.shape)}")
        if backend == "auto":
            backend = "faiss" if bank.device.type == "cpu" else "torch"
        if backend not in ("faiss", "torch"):
            raise ModelError(f"k-NN backend {backend!r} unknown; use 'auto', 'faiss' or 'torch'")
        self.backend = backend
        self.bank = bank.float().contiguous()
        self.max_block_elems = int(max_block_elems)
        #: seconds spent in :meth:`search` so far (CUDA: synchronised), for timing logs
        self.search_seconds = 0.0
        self._bf16 = self._bf16_search() if bf16 else None
        if self._bf16 is not None:
            self.backend = "bf16"
        elif backend == "faiss":
            import faiss

            if self.bank.device.type != "cpu":
                raise ModelError("the faiss backend needs the bank on the CPU (faiss-cpu); use backend 'torch' on CUDA")
            self._index = faiss.IndexFlatL2(int(self.bank.shape[1]))
            self._index.add(np.ascontiguousarray(self.bank.numpy(), dtype=np.float32))
        else:
            self._bank_sq = (self.bank * self.bank).sum(1)

    def _bf16_search(self):
        from .knn_bf16 import Bf16Search, bf16_supported

        if self.bank.device.type != "cpu":
            log.info("knn_bf16: the bank is on %s; the bf16 search is CPU-only, searching in float32",
                     self.bank.device)
            return None
        if not bf16_supported():
            log.info("knn_bf16: this CPU has no AVX512-BF16/AMX-BF16 instructions; searching in plain float32 (%s)",
                     self.backend)
            return None
        return Bf16Search(self.bank, max_block_elems=self.max_block_elems)

    @property
    def stats(self) -> dict | None:
        """The bf16 search's counters (queries, fallback, candidates), None for other backends."""
        return None if self._bf16 is None else dict(self._bf16.stats)

    @property
    def size(self) -> int:
        return int(self.bank.shape[0])

    def search(self, queries: torch.Tensor, k: int, squared: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``(distances (Q, k'), indices (Q, k'))`` with ``k' = min(k, M)``, nearest first."""
        if queries.ndim != 2 or queries.shape[1] != self.bank.shape[1]:
            raise ModelError(
                f"k-NN queries must be (Q, {self.bank.shape[1]}), got {tuple(queries.shape)}: "
                "the features do not match the memory bank's embedding"
            )
        k = max(1, min(int(k), self.size))
        t0 = time.perf_counter()
        if self._bf16 is not None:
            d2, idx = self._bf16.search(queries, k)
            d2, idx = d2.to(queries.device), idx.to(queries.device)
        elif self.backend == "faiss":
            d2, idx = self._search_faiss(queries, k)
        else:
            d2, idx = self._search_torch(queries, k)
        d2 = d2.clamp_min_(0)
        if d2.device.type == "cuda":
            torch.cuda.synchronize(d2.device)
        self.search_seconds += time.perf_counter() - t0
        return (d2 if squared else d2.sqrt_()), idx

    def _search_faiss(self, queries: torch.Tensor, k: int):
        import faiss

        faiss.omp_set_num_threads(max(1, torch.get_num_threads()))
        q = np.ascontiguousarray(queries.detach().to("cpu", torch.float32).numpy())
        d2, idx = self._index.search(q, k)
        return torch.from_numpy(d2).to(queries.device), torch.from_numpy(idx).to(queries.device)

    def _search_torch(self, queries: torch.Tensor, k: int):
        bank = self.bank
        q_all = queries.detach().to(bank.device, torch.float32)
        n = q_all.shape[0]
        step = max(1, self.max_block_elems // max(1, self.size))
        out_d = torch.empty((n, k), dtype=torch.float32, device=bank.device)
        out_i = torch.empty((n, k), dtype=torch.int64, device=bank.device)
        for s in range(0, n, step):
            q = q_all[s : s + step]
            d = torch.mm(q, bank.t()).mul_(-2)
            d.add_((q * q).sum(1, keepdim=True)).add_(self._bank_sq.unsqueeze(0))
            if k == 1:
                val, ind = d.min(1, keepdim=True)
            else:
                val, ind = torch.topk(d, k, dim=1, largest=False, sorted=True)
            out_d[s : s + step] = val
            out_i[s : s + step] = ind
        return out_d.to(queries.device), out_i.to(queries.device)


def knn(
    queries: torch.Tensor,
    bank: torch.Tensor,
    k: int,
    squared: bool = False,
    backend: str = "auto",
    bf16: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact k-NN of ``queries`` (Q, D) in ``bank`` (M, D): ``(dist (Q, k'), idx (Q, k'))``.

    L2 distances, or squared L2 with ``squared=True`` (what faiss ``IndexFlatL2`` returns).
    One-shot convenience wrapper around :class:`KnnIndex` (``bf16``: its opt-in bf16 search).
    """
    return KnnIndex(bank, backend=backend, bf16=bf16).search(queries, k, squared=squared)
