"""The greedy coreset's dense loop (the CUDA path): one matrix-vector product per iteration,
replayed as CUDA graphs on CUDA.

Entry point :func:`adloc.models.coreset.greedy_coreset` (its module docstring describes the
algorithm); this module holds the loop that runs on ``z.device`` without a host
synchronisation per iteration.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger("adloc.models.coreset")

#: greedy iterations per captured CUDA graph (dense method on CUDA)
DEFAULT_GRAPH_CHUNK = 64
#: eager iterations before a capture (the warm-up that graph capture needs)
_WARM = 3


def mm_out_float32_supported(device: torch.device) -> bool:
    """Whether ``torch.mm(half, half, out_dtype=torch.float32)`` runs on ``device`` (torch >= 2.8 CUDA)."""
    try:
        a = torch.ones((2, 2), dtype=torch.float16, device=device)
        return torch.mm(a, a, out_dtype=torch.float32).dtype == torch.float32
    except (TypeError, RuntimeError, NotImplementedError):
        return False


def _start_distances(zf: torch.Tensor, zsq: torch.Tensor, start_idx: torch.Tensor, keep_start: bool) -> torch.Tensor:
    """(N,) squared distance of every point to the start: to the one starting point
    (``keep_start``), else the squared mean L2 distance to the starting points."""
    c = zf.index_select(0, start_idx)  # (S, d)
    d0 = torch.mm(zf, c.t()).mul_(-2).add_(zsq.unsqueeze(1)).add_((c * c).sum(1).unsqueeze(0))
    if keep_start:
        return d0[:, 0].clamp_min(0).contiguous()
    return d0.clamp_min_(0).sqrt_().mean(1).square_()


def greedy_dense(z: torch.Tensor, n: int, start_idx: torch.Tensor, graph_chunk: int = 0,
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
    if half and not mm_out_float32_supported(device):
        log.warning("this torch cannot return float32 products of float16 matrices; using float32 points")
        z, half = z.float(), False
    zf = z.float() if half else z
    zsq = (zf * zf).sum(1)
    min_d = _start_distances(zf, zsq, start_idx, keep_start)
    del zf

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

    if device.type == "cuda" and graph_chunk > 0 and n - i >= _WARM + graph_chunk:
        i = _replay_graphs(step, selected, i, n, graph_chunk, device)
    while i < n:
        step(selected, i)
        i += 1
    return selected


def _replay_graphs(step, selected: torch.Tensor, i: int, n: int, graph_chunk: int, device: torch.device) -> int:
    """Run ``_WARM`` eager iterations on a side stream, capture ``graph_chunk`` iterations of
    ``step`` once in a CUDA graph and replay it while a whole chunk is left; return the next
    iteration's number."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(_WARM):  # real iterations, run on a side stream before capture
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
    return i
