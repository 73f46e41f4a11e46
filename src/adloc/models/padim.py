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

from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ModelError
from .common import (
    FeatureModel,
    chunks,
    n_images,
    release_features as release_features_of,
    score_maps,
    source_table,
    unpack_features,
)
from .configs import PadimConfig
from .padim_stats import invert_in_place, padim_statistics

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


class Padim(FeatureModel):
    """PaDiM on pre-extracted stage maps; same API as :class:`adloc.models.patchcore.PatchCore`."""

    NAME = "PaDiM"
    KIND = KIND
    CONFIG = PadimConfig

    #: grid positions per chunk for the in-place inverse and the Mahalanobis product
    position_chunk = 256
    #: bytes of float32 embedding (all training images, a chunk of positions) per statistics
    #: chunk (:func:`padim_statistics`)
    stat_chunk_bytes = 128 << 20

    def __init__(self, config: PadimConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        self.idx: torch.Tensor | None = None
        self.mean: torch.Tensor | None = None  # (D, P)
        self.inv_covariance: torch.Tensor | None = None  # (P, D, D)
        self.grid: tuple[int, int] | None = None
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
        feats, prov, input_size, n, srcs = self._fit_inputs(features, sources, provenance)
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
        self._set_provenance(prov, input_size)
        self.train_sources = source_table(srcs)[0]
        return self

    def _check_train_count(self, n: int) -> None:
        if n < 2:
            raise ModelError(f"PaDiM needs at least 2 training images for a covariance, got {n}")

    # ------------------------------------------------------------------ predict
    def distances(self, features, batch_size: int = 64) -> torch.Tensor:
        """Mahalanobis distance grid (N, h, w), float32 on the CPU (no upsampling, no blur)."""
        feats, _, _ = unpack_features(features, None, self.config.layers)
        n = n_images(feats)
        out = []
        with torch.inference_mode():
            for s, e in chunks(n, batch_size):
                out.append(self._distance_grid(feats, s, e).cpu())
        return torch.cat(out)

    def _distance_grid(self, feats, s: int, e: int) -> torch.Tensor:
        if self.mean is None or self.inv_covariance is None:
            raise self._not_fitted()
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
        feats, n = self._predict_inputs(features)
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
        self._save(
            path,
            self.mean is not None,
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
        obj, cfg = cls._read_file(path, expect_config, device)
        st = obj["state"]
        try:
            mean, inv, idx = st["mean"], st["inv_covariance"], st["idx"]
            ok = mean.ndim == 2 and inv.ndim == 3 and inv.shape[1] == inv.shape[2] == mean.shape[0] == idx.numel()
        except (KeyError, AttributeError):
            ok = False
        if not ok:
            raise ModelError(f"{path}: PaDiM statistics missing or malformed; the file is corrupt. Delete the file and rerun.")
        model = cls._from_file(obj, cfg)
        model.mean = mean.float().to(model.device)
        model.inv_covariance = inv.float().to(model.device)
        model.idx = idx.long()
        model.grid = tuple(obj["grid"])
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
