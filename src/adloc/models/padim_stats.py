"""PaDiM's fit statistics: per grid position the mean and centred scatter of the training
embeddings in one pass (:func:`padim_statistics`), and the in-place inverse of the covariances
(:func:`invert_in_place`). The model, its embedding and its scoring: :mod:`adloc.models.padim`
(whose module docstring describes the method).
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import Mapping

import torch
import torch.nn.functional as F

from ..errors import ModelError
from .common import chunks, n_images


class RowEmbedding:
    """The values of :func:`adloc.models.padim.padim_embedding` for all images at a range of grid
    positions, position-major: (positions, N, D) float32.

    Reads only the stage-map rows and the ``idx`` channels those positions need, at the stage's
    own resolution; deeper layers are then mapped to the first layer's grid by copying whole
    (N, channels) blocks of source rows / columns, the ones ``F.interpolate(mode="nearest")``
    picks (asked of torch, not re-derived). So a fit walks the grid a chunk of positions at a
    time, each chunk laid out as its matrix products want it.
    """

    def __init__(self, feats: Mapping[str, torch.Tensor], layers, idx: torch.Tensor, grid: tuple[int, int]) -> None:
        self.feats, self.grid = feats, (int(grid[0]), int(grid[1]))
        self.parts = []  # (layer, local channels, source rows, source columns): indices as lists
        self.scratch: dict[str, torch.Tensor] = {}
        offset = 0
        for layer in layers:
            x = feats[layer]
            c, hl, wl = (int(v) for v in x.shape[1:])
            local = idx[(idx >= offset) & (idx < offset + c)] - offset
            if local.numel():
                rows, cols = _nearest_source(hl, self.grid[0]), _nearest_source(wl, self.grid[1])
                self.parts.append((layer, local.to(x.device), rows.tolist(), cols.tolist()))
            offset += c

    def centred(self, start: int, stop: int, out: torch.Tensor) -> torch.Tensor:
        """Write the embedding minus its mean over the N images into ``out`` (stop - start, N, D),
        float32, positions row-major; return that mean, (stop - start, D). The mean is summed in
        float64; both are computed at each stage's own resolution (the same numbers as on the
        grid), then gathered onto the grid's positions with one ``index_select`` per stage into
        a scratch buffer kept between calls (on the CPU, fresh allocations of this size cost
        more than the copies)."""
        w = self.grid[1]
        r0, r1 = start // w, (stop - 1) // w + 1
        c0, c1 = (start - r0 * w, stop - r0 * w) if r1 - r0 == 1 else (0, w)
        mean = out.new_empty((stop - start, out.shape[2]))
        off = 0
        for layer, local, rows, cols in self.parts:
            lo, hi = rows[r0], rows[r1 - 1] + 1  # nearest maps are monotone
            clo, chi = cols[c0], cols[c1 - 1] + 1
            y = self.feats[layer][:, local, lo:hi, clo:chi].to(out.device)  # (N, C, rows, cols): own resolution
            n, c = y.shape[:2]
            mu = (torch.sum(y, 0, dtype=torch.float64) / n).float().permute(1, 2, 0).reshape(-1, c)  # (rows*cols, C)
            yc = out.new_empty((hi - lo, chi - clo, n, c))
            torch.sub(y.permute(2, 3, 0, 1), mu.view(hi - lo, chi - clo, 1, c), out=yc)
            del y
            grid_pos = (divmod(q, w) for q in range(start, stop))
            src = [(rows[r] - lo) * (chi - clo) + cols[col] - clo for r, col in grid_pos]  # rows of yc
            flat = yc.view(-1, n, c)
            if src == list(range(src[0], src[0] + len(src))):  # the stage's own grid: no gather
                out[:, :, off : off + c].copy_(flat[src[0] : src[0] + len(src)])
                mean[:, off : off + c] = mu[src[0] : src[0] + len(src)]
            else:
                index = torch.tensor(src, device=out.device)
                scratch = self._scratch(layer, (len(src), n, c), out)
                torch.index_select(flat, 0, index, out=scratch)
                out[:, :, off : off + c].copy_(scratch)
                mean[:, off : off + c] = mu.index_select(0, index)
            off += c
        return mean

    def _scratch(self, layer: str, shape: tuple[int, int, int], like: torch.Tensor) -> torch.Tensor:
        """A contiguous (shape) float32 view of a buffer kept per stage, grown when needed."""
        size = shape[0] * shape[1] * shape[2]
        buf = self.scratch.get(layer)
        if buf is None or buf.numel() < size or buf.device != like.device:
            buf = self.scratch[layer] = like.new_empty(size)
        return buf[:size].view(shape)


def _nearest_source(size_in: int, size_out: int) -> torch.Tensor:
    """Source index of each output index of a nearest resize ``size_in`` -> ``size_out``, as
    ``F.interpolate(mode="nearest")`` computes it (asked of torch, not re-derived)."""
    src = torch.arange(size_in, dtype=torch.float64).view(1, 1, size_in)
    return F.interpolate(src, size=size_out, mode="nearest").view(-1).long()


@contextlib.contextmanager
def one_thread(device: torch.device | str):
    """Run torch's CPU ops single-threaded inside the block (then restore the thread count).

    For the fit's gathers and copies, which are memory-bound: each parallel CPU op waits at a
    barrier for both threads, and on the shared 2-core VM (load ~3) the gather of a 728-image
    chunk took 1.5 CPU s with 2 threads against 0.22 s with one. No effect for CUDA tensors."""
    if torch.device(device).type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def padim_statistics(feats: Mapping[str, torch.Tensor], layers, idx: torch.Tensor, grid: tuple[int, int],
                     device, chunk_bytes: int = 128 << 20) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D, P) and centred scatter matrices (P, D, D) (not yet divided by N - 1), float32.

    One chunk of grid positions at a time, each holding about ``chunk_bytes`` of float32
    embedding: the embedding of ALL N images at the chunk's positions (:class:`RowEmbedding`,
    the values of :func:`adloc.models.padim.padim_embedding`) is laid out (positions, N, D)
    contiguously, so each position's scatter matrix is one matrix product of inner size N,
    written once into its slice of the (P, D, D) buffer. The mean is accumulated in float64. (Before 2026-11-30: two
    passes over 32-image chunks, each adding a 32-image product into the whole 3.8 GB buffer
    through a permuted view, several times slower on the CPU; same values up to float rounding.)
    """
    h, w = grid
    p = h * w
    d = int(idx.numel())
    rows = RowEmbedding(feats, layers, idx, grid)
    n = n_images(feats)
    mean = torch.empty((d, p), dtype=torch.float32, device=device)
    cov = torch.empty((p, d, d), dtype=torch.float32, device=device)
    step = max(1, int(chunk_bytes) // (4 * n * d))
    buf = torch.empty((min(step, p), n, d), dtype=torch.float32, device=device)
    for ps, pe in chunks(p, step):
        x = buf[: pe - ps]
        with one_thread(x.device):  # memory-bound gathers: see one_thread
            mean[:, ps:pe] = rows.centred(ps, pe, x).t()  # x: (positions, N, D), centred
        torch.bmm(x.transpose(1, 2), x, out=cov[ps:pe])
    del buf
    return mean, cov


def invert_in_place(cov: torch.Tensor, chunk: int, workers: int | None = None) -> None:
    """Replace each SPD matrix of ``cov`` (P, D, D) by its inverse, ``chunk`` positions at a time.

    On the CPU the chunks are shared among ``workers`` Python threads (default: torch's thread
    count; at most ``chunk`` positions in work over all of them), each running torch
    single-threaded (:func:`one_thread`): every matrix is computed by the same single-threaded
    kernels whatever the number of cores (bit-identical results for any thread count), and the
    cores work on different matrices instead of sharing one 550 x 550 factorisation (on the
    loaded 2-core VM: 0.75 CPU s per 64 positions against 1.35 s with two MKL threads each).
    """
    if cov.device.type != "cpu":
        for s, e in chunks(cov.shape[0], chunk):
            _invert_chunk(cov, s, e)
        return
    workers = max(1, int(workers or torch.get_num_threads()))
    spans = list(chunks(cov.shape[0], max(1, chunk // workers)))
    with one_thread("cpu"):
        if workers == 1:
            for s, e in spans:
                _invert_chunk(cov, s, e)
        else:
            inference = torch.is_inference_mode_enabled()  # thread-local: passed on to the workers

            def work(s: int, e: int) -> None:
                with torch.inference_mode(inference):
                    _invert_chunk(cov, s, e)

            with ThreadPoolExecutor(workers) as pool:
                for job in [pool.submit(work, s, e) for s, e in spans]:
                    job.result()


def _invert_chunk(cov: torch.Tensor, s: int, e: int) -> None:
    block = cov[s:e]
    lower, info = torch.linalg.cholesky_ex(block)
    if bool((info != 0).any()):
        try:
            inv = torch.linalg.inv(block)
        except RuntimeError:
            bad = s + int(torch.nonzero(info)[0, 0])
            raise ModelError(
                f"PaDiM covariance at grid position {bad} is singular; raise covariance_eps "
                "(the study and anomalib use 0.01) or use more training images"
            ) from None
        block.copy_(inv)
    else:
        # S^-1 = L^-T L^-1 from one triangular solve and one batched product: ~10x less CPU
        # time than torch.cholesky_inverse (LAPACK potri) here, equally accurate (both
        # 2.2e-5 from a float64 inverse at D = 550; 6e-7 apart), and symmetric
        eye = torch.eye(lower.shape[-1], dtype=lower.dtype, device=lower.device).expand_as(lower)
        inv_lower = torch.linalg.solve_triangular(lower, eye, upper=False)
        torch.bmm(inv_lower.transpose(1, 2), inv_lower, out=block)
        del inv_lower
    del lower
