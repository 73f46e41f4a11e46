"""PaDiM (Defard et al., ICPR 2021), following anomalib's ``PadimModel`` conventions.

* Embedding: stage maps of ``layers`` (first = finest grid, e.g. layer1 at 56x56 for a 224
  input); deeper layers NEAREST-upsampled to the first layer's grid and concatenated (anomalib
  ``generate_embedding``), then a seeded random subset of ``n_features`` channels
  (``torch.randperm`` with a seeded generator, kept in the model; stored sorted, which leaves
  Mahalanobis distances unchanged). Only the selected channels are ever upsampled.
* Fit: per grid position, the mean and the UNBIASED covariance (N - 1, as anomalib's
  ``MultiVariateGaussian``) of the N training embeddings, plus ``covariance_eps * I``. Mean and
  covariance come from one pass over the grid, a chunk of positions at a time with ALL N images
  (:func:`padim_statistics`: centred, no E[xx^T] - mu mu^T cancellation; one matrix product of
  inner size N per position, on a contiguous (positions, N, D) buffer); the inverse is then
  computed in place, position chunk by position chunk (Cholesky), so only one (P, D, D) float32
  tensor ever exists (WRN50-2, 550 dims, 56x56: 3.8 GB); the inverse of a chunk is
  ``L^-T L^-1`` (triangular solve, then one batched product), ~10x less CPU time than
  ``torch.cholesky_inverse``. Two fits on the same features are bit-identical, for any
  position-chunk size.
* Score: Mahalanobis distance per position (``sqrt(clamp(delta^T S^-1 delta, 0))``), bilinear
  upsample to ``image_size``, Gaussian blur (sigma = ``blur_sigma``; anomalib uses torch
  ``reflect`` padding = ``blur_mode="mirror"`` here), image score = max of the BLURRED map (as
  anomalib's ``torch.amax(anomaly_map)``).
  Distances, maps and scores are bit-identical for any scoring ``batch_size`` (a memory bound
  only): the Mahalanobis products get at least ``MIN_ROWS`` rows and the maps are made
  ``MIN_ROWS`` at a time (:func:`blocked_score_maps`).

``n_features=None`` resolves from the features' backbone: 100 for resnet18 / resnet50 /
resnet50_timm, 550 for wide_resnet50_2 (the PaDiM paper's values, also anomalib's defaults),
else ``min(100, total channels)``. anomalib draws its subset with Python's ``random.sample``, so
the exact channels of the study cannot be reproduced; only the rule is.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from collections import Counter
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ModelError
from ..runtime import resolve_device
from .common import (
    FeatureModel,
    chunks,
    count_sources,
    load_model_file,
    release_features as release_features_of,
    save_model_file,
    score_maps,
    unpack_features,
)
from .configs import PadimConfig

KIND = "padim"
#: fewest image rows per Mahalanobis product (see :meth:`Padim._distance_grid`), and the images
#: per upsample-and-blur call (:func:`blocked_score_maps`)
MIN_ROWS = 8

N_FEATURES_DEFAULTS = {"resnet18": 100, "resnet50": 100, "resnet50_timm": 100, "wide_resnet50_2": 550}




def resolve_n_features(n_features: int | None, backbone: str | None, total_channels: int) -> int:
    """The number of random channels PaDiM keeps (see module docstring)."""
    n = n_features if n_features is not None else N_FEATURES_DEFAULTS.get(backbone or "", min(100, total_channels))
    if not (0 < int(n) <= total_channels):
        raise ModelError(
            f"PaDiM n_features {n} is out of range for {total_channels} feature channels "
            f"(backbone {backbone}); use 1..{total_channels}"
        )
    return int(n)


def padim_embedding(feats: Mapping[str, torch.Tensor], layers, idx: torch.Tensor) -> torch.Tensor:
    """(B, len(idx), h1, w1): the channels ``idx`` (ascending, into the layer concatenation)."""
    ref = tuple(feats[layers[0]].shape[-2:])
    parts = []
    offset = 0
    idx = idx.to(feats[layers[0]].device)
    for layer in layers:
        x = feats[layer]
        c = x.shape[1]
        local = idx[(idx >= offset) & (idx < offset + c)] - offset
        if local.numel():
            y = x.index_select(1, local).float()
            if tuple(y.shape[-2:]) != ref:
                y = F.interpolate(y, size=ref, mode="nearest")
            parts.append(y)
        offset += c
    return torch.cat(parts, 1)


class RowEmbedding:
    """The values of :func:`padim_embedding` for all images at a range of grid positions,
    position-major: (positions, N, D) float32.

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
    the values of :func:`padim_embedding`) is laid out (positions, N, D) contiguously, so each
    position's scatter matrix is one matrix product of inner size N, written once into its
    slice of the (P, D, D) buffer. The mean is accumulated in float64. (Before 2026-11-30: two
    passes over 32-image chunks, each adding a 32-image product into the whole 3.8 GB buffer
    through a permuted view, several times slower on the CPU; same values up to float rounding.)
    """
    h, w = grid
    p = h * w
    d = int(idx.numel())
    rows = RowEmbedding(feats, layers, idx, grid)
    n = int(next(iter(feats.values())).shape[0])
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


class Padim(FeatureModel):
    """PaDiM on pre-extracted stage maps; same API as :class:`adloc.models.patchcore.PatchCore`."""

    NAME = "PaDiM"

    #: grid positions per chunk for the in-place inverse and the Mahalanobis product
    position_chunk = 256
    #: bytes of float32 embedding (all training images, a chunk of positions) per statistics
    #: chunk (:func:`padim_statistics`)
    stat_chunk_bytes = 128 << 20

    def __init__(self, config: PadimConfig | Mapping[str, Any] | None = None) -> None:
        self.config = config if isinstance(config, PadimConfig) else PadimConfig.from_dict(config)
        self.device = resolve_device(self.config.device)
        self.idx: torch.Tensor | None = None
        self.mean: torch.Tensor | None = None  # (D, P)
        self.inv_covariance: torch.Tensor | None = None  # (P, D, D)
        self.provenance: dict[str, Any] = {}
        self.grid: tuple[int, int] | None = None
        self.train_sources: dict[str, int] | None = None
        self.n_train_images = 0
        self.n_features: int | None = None

    def _embed(self, feats, s: int, e: int) -> torch.Tensor:
        # moved as stored (float16 stays float16); padim_embedding casts the picked channels
        part = {layer: feats[layer][s:e].to(self.device) for layer in self.config.layers}
        return padim_embedding(part, list(self.config.layers), self.idx)

    # ------------------------------------------------------------------ fit
    def fit(self, features, sources=None, provenance: Mapping[str, Any] | None = None,
            release_features: bool = False) -> "Padim":
        """Mean and inverse covariance per position. ``release_features=True``: ``features`` is
        emptied once the statistics are gathered, before the inversion (as :meth:`PatchCore.fit`)."""
        c = self.config
        feats, prov, input_size = unpack_features(features, provenance, c.layers)
        self._check_input_size(input_size)
        n = int(next(iter(feats.values())).shape[0])
        if n < 2:
            raise ModelError(f"PaDiM needs at least 2 training images for a covariance, got {n}")
        srcs = count_sources(sources, n)
        total = sum(int(feats[layer].shape[1]) for layer in c.layers)
        d = resolve_n_features(c.n_features, prov.get("backbone"), total)
        gen = torch.Generator(device="cpu").manual_seed(int(c.seed))
        self.idx = torch.randperm(total, generator=gen)[:d].sort().values
        h, w = (int(v) for v in feats[c.layers[0]].shape[-2:])
        with torch.inference_mode():
            mean, cov = padim_statistics(feats, list(c.layers), self.idx, (h, w), self.device,
                                         self.stat_chunk_bytes)
            if release_features:
                del feats
                release_features_of(features)
            cov.div_(n - 1)
            cov.diagonal(dim1=1, dim2=2).add_(float(c.covariance_eps))
            invert_in_place(cov, self.position_chunk)
        self.mean, self.inv_covariance = mean, cov
        self.grid = (h, w)
        self.n_features = d
        self.n_train_images = n
        self.provenance = {**prov, "layers": list(c.layers)}
        if input_size is not None:
            self.provenance["input_size"] = int(input_size)
        self.train_sources = dict(sorted(Counter(srcs).items())) if srcs is not None else None
        return self

    # ------------------------------------------------------------------ predict

    def distances(self, features, batch_size: int = 64) -> torch.Tensor:
        """Mahalanobis distance grid (N, h, w), float32 on the CPU (no upsampling, no blur)."""
        feats, _, _ = unpack_features(features, None, self.config.layers)
        n = int(next(iter(feats.values())).shape[0])
        out = []
        with torch.inference_mode():
            for s, e in chunks(n, batch_size):
                out.append(self._distance_grid(feats, s, e).cpu())
        return torch.cat(out)

    def _distance_grid(self, feats, s: int, e: int) -> torch.Tensor:
        if self.mean is None or self.inv_covariance is None:
            raise ModelError("PaDiM is not fitted: call fit() or Padim.load() first")
        emb = self._embed(feats, s, e)
        b, d, h, w = emb.shape
        if (h, w) != tuple(self.grid) or d != self.mean.shape[0]:
            raise ModelError(
                f"features give a {d}-d embedding on a {h}x{w} grid but the model expects "
                f"{self.mean.shape[0]}-d on {self.grid[0]}x{self.grid[1]}; use features from the same "
                "backbone, layers and input size"
            )
        emb = emb.reshape(b, d, h * w)
        # at least MIN_ROWS rows per product (zero rows padded): MKL computes products of fewer
        # rows by another kernel, so an image's distances would depend on how many images were
        # scored with it; from MIN_ROWS rows on, every row is computed alike (see the tests)
        rows = max(b, MIN_ROWS)
        d2 = torch.empty((h * w, b), dtype=torch.float32, device=emb.device)
        buf = emb.new_zeros((min(self.position_chunk, h * w), rows, d))  # reused; padding rows stay 0
        for ps, pe in chunks(h * w, self.position_chunk):
            delta = buf[: pe - ps]
            torch.sub(emb[:, :, ps:pe].permute(2, 0, 1), self.mean[:, ps:pe].t().unsqueeze(1), out=delta[:, :b])
            t = torch.bmm(delta, self.inv_covariance[ps:pe])  # (p, rows, D)
            d2[ps:pe] = (t[:, :b] * delta[:, :b]).sum(-1)
        return d2.clamp_min_(0).sqrt_().t().reshape(b, h, w)

    def predict(self, features, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """``(image_scores float32 (N,), anomaly_maps float32 (N, image_size, image_size))``."""
        c = self.config
        feats, prov, input_size = unpack_features(features, None, c.layers)
        self._check_input_size(input_size)
        self._check_provenance(prov)
        n = int(next(iter(feats.values())).shape[0])
        scores = np.empty(n, dtype=np.float32)
        maps = np.empty((n, int(c.image_size), int(c.image_size)), dtype=np.float32)
        with torch.inference_mode():
            for s, e in chunks(n, batch_size):
                grid = self._distance_grid(feats, s, e)
                m = blocked_score_maps(grid, int(c.image_size), float(c.blur_sigma), c.blur_mode)
                scores[s:e] = m.reshape(e - s, -1).amax(1).cpu().numpy()
                maps[s:e] = m.cpu().numpy()
        return scores, maps

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> None:
        if self.mean is None:
            raise ModelError("cannot save an unfitted PaDiM; call fit() first")
        save_model_file(
            path,
            KIND,
            self.config.to_dict(),
            self.provenance,
            {"mean": self.mean, "inv_covariance": self.inv_covariance, "idx": self.idx},
            train_sources=self.train_sources,
            grid=list(self.grid),
            n_train_images=int(self.n_train_images),
            n_features=int(self.n_features),
        )

    @classmethod
    def load(cls, path, expect_config: PadimConfig | Mapping[str, Any] | None = None,
             device: str | None = None) -> "Padim":
        """Load a fitted model; ``expect_config`` mismatches raise :class:`ModelError` naming the keys."""
        obj, cfg = load_model_file(path, KIND, PadimConfig, expect_config, device)
        st = obj["state"]
        try:
            mean, inv, idx = st["mean"], st["inv_covariance"], st["idx"]
            ok = mean.ndim == 2 and inv.ndim == 3 and inv.shape[1] == inv.shape[2] == mean.shape[0] == idx.numel()
        except (KeyError, AttributeError):
            ok = False
        if not ok:
            raise ModelError(f"{path}: PaDiM statistics missing or malformed; the file is corrupt. Delete the file and rerun.")
        model = cls(cfg)
        model.mean = mean.float().to(model.device)
        model.inv_covariance = inv.float().to(model.device)
        model.idx = idx.long()
        model.provenance = dict(obj.get("provenance") or {})
        model.train_sources = obj.get("train_sources")
        model.grid = tuple(obj["grid"])
        model.n_train_images = int(obj.get("n_train_images") or 0)
        model.n_features = int(obj.get("n_features") or idx.numel())
        return model


def blocked_score_maps(grid: torch.Tensor, image_size: int, blur_sigma: float, blur_mode: str) -> torch.Tensor:
    """:func:`adloc.models.common.score_maps` on blocks of exactly ``MIN_ROWS`` grids (the last
    padded with zeros): the convolutions pick their algorithm by the number of maps, and some
    round differently per algorithm, so a fixed block makes every map independent of how many
    images were scored together (tested); also cheaper than one call on a large batch."""
    out = []
    for s, e in chunks(grid.shape[0], MIN_ROWS):
        block = grid[s:e]
        if e - s < MIN_ROWS:
            block = torch.cat([block, block.new_zeros((MIN_ROWS - (e - s), *block.shape[1:]))])
        out.append(score_maps(block, image_size, blur_sigma, blur_mode)[: e - s])
    return torch.cat(out)


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
