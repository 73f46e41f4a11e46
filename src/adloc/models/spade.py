"""SPADE (Cohen & Hoshen 2020, "Sub-Image Anomaly Detection with Deep Pyramid Correspondences").

No training beyond storing the training images' stage maps ``{layer: (N, C_l, h_l, w_l)}``
(in the dtype given: float16 features stay float16) and their pooled features.

* Image feature: the global average pool (float64) of the last layer in ``layers`` (the paper
  pooled the backbone's final feature; ``layers: [..., layer4]`` does the same here).
* Image score: the mean L2 distance of a test image's pooled feature to its ``K = min(k, N)``
  nearest training images' (paper: k = 50). Distances are computed pair by pair in float64
  (``torch.cdist`` without the matmul shortcut), the neighbours ordered by a stable sort (ties:
  the lower training index first).
* Feature pyramid of an image: every layer bilinearly upsampled (``align_corners=False``) to the
  grid of the first layer in ``layers`` and concatenated (D = sum C_l), as PatchCore's embedding
  without the local averaging.
* Anomaly map: for each position of the test pyramid, the L2 distance to the nearest patch
  among all positions of its K neighbours' pyramids; upsampled to the image size and blurred
  (``blur_sigma``, :func:`adloc.models.common.score_maps`; the paper: sigma 4).

Blocking and determinism: test images are processed ``query_images`` at a time (a memory bound);
every distance is computed for one test image against a fixed chunk of its gallery
(``gallery_images`` neighbours at a time, set by the grid only) and each map is upsampled and
blurred on its own, so results do not depend on ``query_images``. Within a chunk the candidate is found with the float32 matmul form
``|b|^2 - 2 q.b`` (one matrix product of ``[q, 1]`` and ``[-2 b, |b|^2]``) and its distance is then recomputed exactly (float64 of ``q - b``); the map is
the minimum of those exact distances over the chunks. Memory of a search: one chunk's pyramids
(``gallery_images`` x h x w x D float32) and its distance block (at most
``GALLERY_BLOCK_ELEMS`` float32 values), never the K images' whole gallery.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ModelError
from .common import FeatureModel, chunks, query_block, score_maps, source_table, unpack_features
from .configs import SpadeConfig

KIND = "spade"
#: test images processed together when the caller does not say (:meth:`Spade.predict`)
DEFAULT_QUERY_IMAGES = 16
#: bound on one nearest-patch distance block (float32 elements: 256 MiB)
GALLERY_BLOCK_ELEMS = 1 << 26
log = logging.getLogger("adloc.models.spade")


def feature_pyramid(feats: Mapping[str, torch.Tensor], layers) -> torch.Tensor:
    """(B, D, h, w) float32: every layer upsampled to ``layers[0]``'s grid, concatenated."""
    ref = tuple(feats[layers[0]].shape[-2:])
    parts = []
    for layer in layers:
        x = feats[layer].float()
        if tuple(x.shape[-2:]) != ref:
            x = F.interpolate(x, size=ref, mode="bilinear", align_corners=False)
        parts.append(x)
    return torch.cat(parts, 1)


def pooled_features(x: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """Global average pool (N, C, h, w) -> (N, C) float64, ``chunk`` images at a time."""
    out = torch.empty((int(x.shape[0]), int(x.shape[1])), dtype=torch.float64, device=x.device)
    for s, e in chunks(int(x.shape[0]), chunk):
        out[s:e] = x[s:e].double().mean((2, 3))
    return out


def nearest_images(queries: torch.Tensor, train: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(distances (B, K), indices (B, K))`` of the ``K = min(k, M)`` nearest rows of ``train``
    (M, C) to each query (B, C), float64, nearest first, ties by index."""
    d = torch.cdist(queries.double(), train.double(), compute_mode="donot_use_mm_for_euclid_dist")
    order = torch.sort(d, dim=1, stable=True).indices[:, : max(1, min(int(k), int(train.shape[0])))]
    return d.gather(1, order), order


def gallery_images(positions: int) -> int:
    """Gallery images per distance block for a grid of ``positions`` cells."""
    return max(1, GALLERY_BLOCK_ELEMS // max(1, positions * positions))


def _rows(pyr: torch.Tensor) -> torch.Tensor:
    """(B, D, h, w) -> (B*h*w, D)."""
    return pyr.permute(0, 2, 3, 1).reshape(-1, pyr.shape[1]).contiguous()


class Spade(FeatureModel):
    """SPADE on pre-extracted stage maps: ``fit(features, sources=None)``, ``predict(features)``,
    ``save(path)`` / ``Spade.load(path, expect_config)`` (see the module docstring)."""

    NAME = "SPADE"
    KIND = KIND
    CONFIG = SpadeConfig

    def __init__(self, config: SpadeConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        #: the training images' stage maps {layer: (N, C, h, w)}, as given (CPU)
        self.train: dict[str, torch.Tensor] | None = None
        #: pooled training features (N, C_last) float64
        self.pooled: torch.Tensor | None = None
        #: per training image, the index into ``source_names`` of its class (global fits)
        self.train_origin: torch.Tensor | None = None
        self.source_names: list[str] | None = None
        self._on_device: dict[str, torch.Tensor] | None = None

    # ------------------------------------------------------------------ fit
    def fit(self, features, sources=None, provenance: Mapping[str, Any] | None = None,
            release_features: bool = False) -> "Spade":
        """Store the training images' stage maps and pooled features. The model keeps its own
        references, so ``release_features`` (emptying the caller's container) frees nothing
        here; it is accepted for the common interface."""
        c = self.config
        feats, prov, input_size, n, srcs = self._fit_inputs(features, sources, provenance)
        self.train = {layer: feats[layer].detach().to("cpu").contiguous() for layer in c.layers}
        self.pooled = pooled_features(self.train[c.layers[-1]])
        self.n_train_images = n
        self._set_provenance(prov, input_size)
        self.train_sources, self.source_names, self.train_origin = source_table(srcs)
        self._on_device = None
        return self

    def _check_train_count(self, n: int) -> None:
        if n == 0:
            raise ModelError("SPADE needs at least one training image; the train split is empty")

    # ------------------------------------------------------------------ predict
    def _train_layers(self) -> dict[str, torch.Tensor]:
        if self.train is None or self.pooled is None:
            raise self._not_fitted()
        if self._on_device is None:
            self._on_device = {layer: t.to(self.device) for layer, t in self.train.items()}
        return self._on_device

    def _check_shapes(self, feats: Mapping[str, torch.Tensor]) -> None:
        for layer, t in self.train.items():
            a, b = tuple(t.shape[1:]), tuple(feats[layer].shape[1:])
            if a != b:
                raise ModelError(
                    f"features to score have {layer} of shape (C, h, w) = {b} but SPADE was fitted on "
                    f"{a}; score with features from the same backbone, layers and input size"
                )

    def predict(self, features, query_images: int | None = DEFAULT_QUERY_IMAGES) -> tuple[np.ndarray, np.ndarray]:
        """``(image_scores float32 (N,), anomaly_maps float32 (N, image_size, image_size))``.

        ``query_images``: test images processed together (None: all N); results do not depend
        on it (see the module docstring).
        """
        c = self.config
        feats, n = self._predict_inputs(features)
        block = query_block(query_images, n)
        train = self._train_layers()
        self._check_shapes(feats)
        t0 = time.perf_counter()
        size = int(c.image_size)
        scores = np.empty(n, dtype=np.float32)
        maps = np.empty((n, size, size), dtype=np.float32)
        pooled_train = self.pooled.to(self.device)
        with torch.inference_mode():
            for s, e in chunks(n, block):
                part = {layer: feats[layer][s:e].to(self.device, torch.float32) for layer in c.layers}
                dist, idx = nearest_images(pooled_features(part[c.layers[-1]]), pooled_train, int(c.k))
                scores[s:e] = dist.mean(1).float().cpu().numpy()
                pyr = feature_pyramid(part, c.layers)
                del part
                for i in range(e - s):  # one image at a time: a conv's rounding depends on its batch
                    grid = self._patch_distances(pyr[i], idx[i], train).unsqueeze(0)
                    maps[s + i] = score_maps(grid, size, float(c.blur_sigma), c.blur_mode)[0].cpu().numpy()
        log.info("predict: %d images in %.2f s (k %d of %d training images)",
                 n, time.perf_counter() - t0, min(int(c.k), self.n_train_images), self.n_train_images)
        return scores, maps

    def neighbours(self, features) -> np.ndarray:
        """(N, K) int64: each image's nearest training images (indices into the training set,
        nearest first), as :meth:`predict` retrieves them; with ``train_origin`` and
        ``source_names`` a global model's retrieval shows which classes it routes an image to."""
        c = self.config
        feats, _, _ = unpack_features(features, None, c.layers[-1:])
        self._train_layers()
        x = feats[c.layers[-1]]
        out = [nearest_images(pooled_features(x[s:e].to(self.device, torch.float32)), self.pooled.to(self.device),
                              int(c.k))[1].cpu() for s, e in chunks(int(x.shape[0]), DEFAULT_QUERY_IMAGES)]
        return torch.cat(out).numpy()

    def _patch_distances(self, query: torch.Tensor, neighbours: torch.Tensor,
                         train: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(h, w) float32: per position of ``query`` (D, h, w), the L2 distance to the nearest
        patch of the training images ``neighbours`` (their pyramids), chunk by chunk."""
        layers = self.config.layers
        d, h, w = query.shape
        q = query.permute(1, 2, 0).reshape(h * w, d).contiguous()
        q64 = q.double()
        q1 = torch.cat([q, q.new_ones(h * w, 1)], 1)  # [q, 1] . [-2b, |b|^2] = |b|^2 - 2 q.b
        best = torch.full((h * w,), float("inf"), dtype=torch.float64, device=q.device)
        ids = neighbours.to(self.device)
        for s, e in chunks(int(ids.shape[0]), gallery_images(h * w)):
            sel = ids[s:e]
            gal = _rows(feature_pyramid({layer: train[layer].index_select(0, sel) for layer in layers}, layers))
            approx = torch.mm(q1, torch.cat([gal * -2.0, (gal * gal).sum(1, keepdim=True)], 1).t())
            cand = gal.index_select(0, approx.argmin(1))
            del approx, gal
            exact = (q64 - cand.double()).pow(2).sum(1)
            best = torch.minimum(best, exact)
        return best.sqrt().float().reshape(h, w)

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> None:
        self._save(path, self.train is not None, self._state() if self.train is not None else {},
                   train_sources=self.train_sources, source_names=self.source_names,
                   n_train_images=int(self.n_train_images))

    def _state(self) -> dict[str, torch.Tensor]:
        state = {f"train.{layer}": t for layer, t in self.train.items()}
        state["pooled"] = self.pooled
        if self.train_origin is not None:
            state["train_origin"] = self.train_origin
        return state

    @classmethod
    def load(cls, path, expect_config: SpadeConfig | Mapping[str, Any] | None = None,
             device: str | None = None) -> "Spade":
        """Load a fitted model; ``expect_config`` mismatches raise :class:`ModelError` naming the keys."""
        obj, cfg = cls._read_file(path, expect_config, device)
        state = obj["state"]
        train = {layer: state.get(f"train.{layer}") for layer in cfg.layers}
        pooled = state.get("pooled")
        n = int(obj.get("n_train_images") or 0)
        ok = isinstance(pooled, torch.Tensor) and pooled.ndim == 2 and pooled.shape[0] == n > 0 and all(
            isinstance(t, torch.Tensor) and t.ndim == 4 and t.shape[0] == n for t in train.values())
        if not ok:
            raise ModelError(f"{path}: SPADE training features missing or malformed; the file is corrupt. "
                             "Delete the file and rerun.")
        model = cls._from_file(obj, cfg)
        model.train, model.pooled = train, pooled.double()
        model.source_names = obj.get("source_names")
        model.train_origin = state.get("train_origin")
        return model
