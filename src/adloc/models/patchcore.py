"""PatchCore (Roth et al., CVPR 2022), with the paper's scoring and the study's.

Embedding (per image, from raw stage maps ``{layer: (N, C_l, h_l, w_l)}``; the first layer in
``layers`` sets the patch grid h x w):

* ``pretrain_embed_dim=None`` (the study, anomalib): each layer is averaged over its
  ``patch_size`` x ``patch_size`` neighbourhood (``avg_pool2d``, stride 1, zero padding counted),
  deeper layers are bilinearly upsampled (``align_corners=False``) to the first layer's grid,
  and the layers are concatenated: D = sum C_l (ResNet-50 layers 2+3: 1536).
* ``pretrain_embed_dim=P`` (patchcore-inspection, the paper): each position's zero-padded
  ``patch_size``^2 neighbourhood of a layer is flattened channel-major (C_l * 9 values, as
  ``torch.nn.Unfold``) and reduced to P values by ``adaptive_avg_pool1d``; deeper layers are
  bilinearly upsampled; the L per-layer P-vectors are concatenated and, with
  ``target_embed_dim=T``, reduced again by ``adaptive_avg_pool1d`` to T. This reproduces the
  reference exactly (it upsamples before the per-layer pooling; both steps are linear and act on
  different axes, so the order does not matter). For WRN50-2 (P = T = 1024) it means: layer-3
  part = 3x3 mean of each channel, channel pairs averaged; layer-2 part = a 3x3 mean with the
  centre counted twice ((sum + centre) / 10) per channel. On the CPU both pools are computed by
  :mod:`adloc.models.patch_pool` (the same float32 operations in the same order, no unfold).

Memory bank: approximate greedy k-center coreset (:mod:`adloc.models.coreset`) of all training
patches, ``max(1, int(N_patches * coreset_ratio))`` entries; ``coreset_start`` picks
patchcore-inspection's start (``"mean_of_random"``) or the study's (``"random_point"``).

Memory of a fit: the training features as given (keep them float16 with
``load_features(..., keep_dtype=True)``: every chunk is cast to float32 as it is embedded;
``fit(..., release_features=True)`` frees them once every image is embedded), one
store of all patch embeddings (N_patches x D), the coreset's projection (N_patches x 128
float32, about three copies at the peak of the CPU loop) and the float32 bank. With
``embedding_dtype="float16"`` the store is float16 (half the memory: 2.8 M patches x 1024 take
5.7 GB instead of 11.5 GB, the global model at MVTec AD's 15 classes); the coreset is then
selected from, and the bank holds, the float16-rounded embeddings (relative change ~5e-4 per
value), so selection and scores can differ slightly from ``"float32"``, the default. The
projection reads the store chunk by chunk and the bank is gathered chunk by chunk, so neither
makes a second full copy.

Scoring (:class:`PatchCoreConfig` ``scoring``):

* ``"paper"``: patch score = L2 distance to the nearest bank entry; anomaly map = patch-score
  grid, upsampled, blurred (``blur_sigma``). Image score = s* re-weighted (paper eq. 7, in the
  numerically stable softmax form anomalib uses): m_test* = the patch with the largest score
  s* = ||m_test* - m*||, m* its nearest bank entry, N_b(m*) the ``num_neighbors`` nearest bank
  entries of m* (m* itself included), and
  ``s = (1 - exp(||m_test* - m*||) / sum_{m in N_b(m*)} exp(||m_test* - m||)) * s*``.
  (patchcore-inspection itself skips the re-weighting and uses squared faiss distances.)
* ``"study"``: the study's code (IvanNece/Detection-of-Anomalies-with-Localization,
  ``src/models/memory_bank.py``): SQUARED L2 from faiss, k = ``num_neighbors`` neighbours of
  each query patch, patch score = ``d1 * (1 - exp(-d1) / (sum_i exp(-d_i) + 1e-8))``, image
  score = max of that grid, map = that grid upsampled (the study did not blur: set
  ``blur_sigma=0``).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ModelError
from .common import FeatureModel, chunks, query_block, release_features as release_features_of, score_maps, source_table
from .configs import PatchCoreConfig
from .coreset import greedy_coreset
from .knn import KnnIndex
from .patch_pool import pool_channels, pool_patches

KIND = "patchcore"
#: images per k-NN search when the caller does not say (:meth:`PatchCore.predict`)
DEFAULT_QUERY_IMAGES = 16
log = logging.getLogger("adloc.models.patchcore")


def patchcore_embedding(
    feats: Mapping[str, torch.Tensor],
    layers,
    patch_size: int = 3,
    pretrain_embed_dim: int | None = None,
    target_embed_dim: int | None = None,
    unfold: bool | None = None,
) -> torch.Tensor:
    """Locally aware patch embedding (B, D, h, w) from stage maps (see module docstring).

    ``unfold`` None: the pooling without unfold (:mod:`adloc.models.patch_pool`) on the CPU,
    ``F.unfold`` + ``adaptive_avg_pool1d`` elsewhere; True / False force one of them (the same
    values on the CPU, bit for bit: ``benchmarks/check_knn_bf16.py --embedding``, the tests)."""
    pad = patch_size // 2
    ref = tuple(feats[layers[0]].shape[-2:])
    direct = (feats[layers[0]].device.type == "cpu") if unfold is None else not unfold
    parts = []
    for layer in layers:
        x = feats[layer].float()
        b, c, h, w = x.shape
        if pretrain_embed_dim is None:
            y = F.avg_pool2d(x, patch_size, stride=1, padding=pad, count_include_pad=True) if patch_size > 1 else x
        elif direct:  # the same values, bit for bit, without the unfold (patch_pool)
            y = pool_patches(x, patch_size, int(pretrain_embed_dim))
        else:
            u = F.unfold(x, kernel_size=patch_size, padding=pad, stride=1)  # (B, C*p*p, h*w), channel-major
            u = u.transpose(1, 2).reshape(b * h * w, 1, c * patch_size * patch_size)
            y = F.adaptive_avg_pool1d(u, int(pretrain_embed_dim)).reshape(b, h * w, -1)
            y = y.transpose(1, 2).reshape(b, -1, h, w)
        if (h, w) != ref:
            y = F.interpolate(y, size=ref, mode="bilinear", align_corners=False)
        parts.append(y)
    emb = torch.cat(parts, 1)
    if target_embed_dim is not None and direct:
        emb = pool_channels(emb, int(target_embed_dim))
    elif target_embed_dim is not None:
        b, d, h, w = emb.shape
        e = emb.permute(0, 2, 3, 1).reshape(b * h * w, 1, d)
        e = F.adaptive_avg_pool1d(e, int(target_embed_dim)).reshape(b, h, w, -1)
        emb = e.permute(0, 3, 1, 2)
    return emb.contiguous()


_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def _gather_rows(store: torch.Tensor, sel: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
    """float32 ``store[sel]``, converted chunk-wise (no float16 copy of the bank beside it)."""
    if store.dtype == torch.float32:
        return store.index_select(0, sel).contiguous()
    out = torch.empty((int(sel.shape[0]), int(store.shape[1])), dtype=torch.float32)
    for s in range(0, int(sel.shape[0]), chunk):
        out[s : s + chunk] = store.index_select(0, sel[s : s + chunk])
    return out


def _store_rows(emb: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Rows of ``emb`` on the CPU for the patch store; float16 only if nothing overflows."""
    rows = patch_rows(emb)
    if dtype == torch.float16:
        big = float(rows.abs().max())
        if not big <= 65504.0:
            raise ModelError(
                f"PatchCore embedding_dtype float16: an embedding value ({big:.4g}) overflows "
                "float16 (max 65504); set patchcore.embedding_dtype: float32"
            )
    return rows.cpu()


def patch_rows(emb: torch.Tensor) -> torch.Tensor:
    """(B, D, h, w) -> (B*h*w, D), image-major then row-major positions."""
    return emb.permute(0, 2, 3, 1).reshape(-1, emb.shape[1])


class PatchCore(FeatureModel):
    """PatchCore on pre-extracted stage maps.

    ``fit(features, sources=None, provenance=None)`` then ``predict(features)``;
    ``save(path)`` / ``PatchCore.load(path, expect_config)``.
    ``features`` is ``{layer: Tensor (N, C, h, w)}`` or an :class:`adloc.features.FeatureSet`.
    """

    NAME = "PatchCore"
    KIND = KIND
    CONFIG = PatchCoreConfig

    #: images per embedding chunk (bounds memory; WRN50-2 at 224: ~15 MB per image unfolded)
    embed_batch = 16

    def __init__(self, config: PatchCoreConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        self.bank: torch.Tensor | None = None
        self.bank_sources: dict[str, int] | None = None
        #: per bank entry, the index into ``source_names`` of the class it came from (global fits)
        self.bank_origin: torch.Tensor | None = None
        self.source_names: list[str] | None = None
        self.grid: tuple[int, int] | None = None
        self._index: KnnIndex | None = None
        self._draw_record: dict | None = None  # coreset_draws 'study': what was replayed

    # ------------------------------------------------------------------ embedding
    def _embed(self, feats: Mapping[str, torch.Tensor], s: int, e: int) -> torch.Tensor:
        c = self.config
        part = {layer: feats[layer][s:e].to(self.device, torch.float32) for layer in c.layers}
        return patchcore_embedding(part, list(c.layers), int(c.patch_size), c.pretrain_embed_dim, c.target_embed_dim)

    # ------------------------------------------------------------------ fit
    def fit(self, features, sources=None, provenance: Mapping[str, Any] | None = None,
            release_features: bool = False, draw_order=None) -> "PatchCore":
        """Build the memory bank from training images' stage maps.

        ``sources``: one class label per image (global models); the bank then records how many
        entries came from each class (``bank_sources``). ``release_features=True``: ``features``
        (the FeatureSet or dict given) is emptied once every image is embedded, so the stage maps
        are freed before the coreset (the caller must not need them afterwards).
        ``draw_order`` (``coreset_draws: study``): ``[(model, training images), ...]`` of the
        models the study fitted after its one seeding, this one last
        (:mod:`adloc.models.study_draws`); their draws are replayed to get this model's.
        """
        c = self.config
        feats, prov, input_size, n, srcs = self._fit_inputs(features, sources, provenance)
        store, per, (h, w) = self._patch_store(feats)
        if release_features:
            del feats
            release_features_of(features)
        total, d = int(store.shape[0]), int(store.shape[1])
        n_keep = max(1, int(total * float(c.coreset_ratio)))
        if n_keep >= total:
            sel = torch.arange(total)
        else:
            # the projection (and the greedy loop) run on self.device; the full patches stay on the CPU
            draw = self._study_draw(draw_order, per, d, n)
            sel = greedy_coreset(
                store, n_keep, c.coreset_projection_dim, c.seed, c.coreset_starts,
                device=self.device, dtype=c.coreset_dtype, start=c.coreset_start, draw=draw,
            )
        self.bank = _gather_rows(store, sel)
        del store
        self.grid = (int(h), int(w))
        self.n_train_images = n
        extra = {} if self._draw_record is None else {"study_draws": self._draw_record}
        self._set_provenance(prov, input_size, **extra)
        img_of = (sel // per).tolist() if srcs is not None else None
        self.train_sources, self.source_names, self.bank_origin = source_table(srcs, img_of)
        self.bank_sources = None if srcs is None else dict(sorted(Counter(srcs[i] for i in img_of).items()))
        self._index = None
        return self

    def _patch_store(self, feats: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, int, tuple[int, int]]:
        """``(store, patches per image, grid)``: every training patch's embedding, on the CPU in
        ``embedding_dtype``, embedded ``embed_batch`` images at a time."""
        n = int(next(iter(feats.values())).shape[0])
        with torch.inference_mode():
            first = self._embed(feats, 0, min(n, self.embed_batch))
            _, d, h, w = first.shape
            per = h * w
            # CPU copy of all patches (float16: half the memory; see the module docstring)
            store = torch.empty((n * per, d), dtype=_DTYPES[self.config.embedding_dtype])
            store[: first.shape[0] * per] = _store_rows(first, store.dtype)
            for s, e in chunks(n, self.embed_batch):
                if s == 0:
                    continue
                store[s * per : e * per] = _store_rows(self._embed(feats, s, e), store.dtype)
            del first
        return store, per, (h, w)

    def _study_draw(self, draw_order, per: int, dim: int, n_images: int):
        """This model's replayed draws (``coreset_draws: study``), else None."""
        c = self.config
        self._draw_record = None
        if c.coreset_draws != "study":
            if draw_order:
                raise ModelError("draw_order given but PatchCore coreset_draws is 'seeded'")
            return None
        if c.coreset_projection_dim is None:
            raise ModelError("coreset_draws 'study' replays the study's projection: set "
                             "coreset_projection_dim (the study's is 128)")
        if not draw_order or int(draw_order[-1][1]) != n_images:
            raise ModelError(
                f"coreset_draws 'study' needs the fitting order ending with this model's "
                f"{n_images} training images, got {draw_order!r}"
            )
        from .study_draws import study_draws

        order = [(str(name), int(k) * per) for name, k in draw_order]
        draw = study_draws(order, dim, int(c.coreset_projection_dim), seed=int(c.seed))[order[-1][0]]
        self._draw_record = {"order": [name for name, _ in order], **draw.record()}
        return draw

    # ------------------------------------------------------------------ predict
    def _knn(self) -> KnnIndex:
        if self.bank is None:
            raise self._not_fitted()
        if self._index is None:
            self._index = KnnIndex(self.bank.to(self.device), bf16=bool(self.config.knn_bf16))
        return self._index

    def predict(self, features, batch_size: int = 16,
                query_images: int | None = DEFAULT_QUERY_IMAGES) -> tuple[np.ndarray, np.ndarray]:
        """``(image_scores float32 (N,), anomaly_maps float32 (N, image_size, image_size))``.

        The k-NN search runs on blocks of ``query_images`` images (None: all N in one search),
        counted from the first image, whatever ``batch_size`` (images embedded at a time, a
        memory bound): faiss' distances depend on how many queries one search holds (its BLAS
        blocking rounds differently), so the blocks are fixed by the caller's setting, never by
        memory, and the results are bit-identical for any ``batch_size``. The study searched 8
        images at a time per class, a whole split at a time for its global model.
        """
        c = self.config
        feats, n = self._predict_inputs(features)
        block = query_block(query_images, n)
        index = self._knn()
        t0, knn0 = time.perf_counter(), index.search_seconds
        scores = np.empty(n, dtype=np.float32)
        maps = np.empty((n, int(c.image_size), int(c.image_size)), dtype=np.float32)
        with torch.inference_mode():
            for s, e in chunks(n, block):
                bs = max(1, int(batch_size))
                embs = [self._embed(feats, s2, min(e, s2 + bs)) for s2 in range(s, e, bs)]
                emb = embs[0] if len(embs) == 1 else torch.cat(embs)
                del embs
                b, d, h, w = emb.shape
                if d != index.bank.shape[1]:
                    raise ModelError(
                        f"features give {d}-d patch embeddings but the memory bank holds {index.bank.shape[1]}-d "
                        "entries; score with features from the same backbone and layers"
                    )
                rows = patch_rows(emb)
                if c.scoring == "paper":
                    grid, img = self._score_paper(rows, b, h, w, index)
                else:
                    grid, img = self._score_study(rows, b, h, w, index)
                m = score_maps(grid, int(c.image_size), float(c.blur_sigma), c.blur_mode)
                scores[s:e] = img.float().cpu().numpy()
                maps[s:e] = m.cpu().numpy()
        log.info(
            "predict: %d images in %.2f s (kNN %.2f s, %s, bank %d)",
            n, time.perf_counter() - t0, index.search_seconds - knn0, index.backend, index.size,
        )
        if index.stats is not None:
            st = index.stats
            log.info("predict: bf16 k-NN %d queries (%d settled by the projected bound), %.2f candidates per "
                     "query, %d fell back to float32", st["queries"], st["projected"],
                     st["candidates"] / max(1, st["queries"]), st["fallback"])
        return scores, maps

    def _score_paper(self, rows, b, h, w, index: KnnIndex):
        d1, i1 = index.search(rows, 1, squared=False)
        patch = d1[:, 0].reshape(b, h * w)
        nn_idx = i1[:, 0].reshape(b, h * w)
        j = patch.argmax(1)  # m_test* per image
        ar = torch.arange(b, device=patch.device)
        q = rows.reshape(b, h * w, -1)[ar, j]  # (B, D)
        bank = index.bank
        m_star_idx = nn_idx[ar, j].to(bank.device)
        m_star = bank.index_select(0, m_star_idx)  # (B, D)
        _, nb = index.search(m_star, int(self.config.num_neighbors), squared=False)  # N_b(m*), m* first
        qd = q.to(bank.device, torch.float64)
        s_star = (qd - m_star.double()).norm(dim=1)  # ||m_test* - m*||
        d_nb = (qd.unsqueeze(1) - bank[nb.to(bank.device)].double()).norm(dim=2)  # (B, b)
        weight = 1.0 - torch.exp(s_star - torch.logsumexp(d_nb, dim=1))
        img = (weight * s_star).to(patch.device)
        return patch.reshape(b, h, w), img

    def _score_study(self, rows, b, h, w, index: KnnIndex):
        k = int(self.config.num_neighbors)
        d2, _ = index.search(rows, k, squared=True)  # float32 squared L2, like faiss IndexFlatL2
        if d2.shape[1] == 1:
            patch = d2[:, 0]  # the study skipped re-weighting when only one neighbour was searched
        else:
            ex = torch.exp(-d2)
            weight = 1.0 - ex[:, 0] / (ex.sum(1) + 1e-8)
            patch = d2[:, 0] * weight
        grid = patch.reshape(b, h, w)
        return grid, grid.reshape(b, -1).amax(1)

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> None:
        self._save(
            path,
            self.bank is not None,
            {"bank": self.bank, **({"bank_origin": self.bank_origin} if self.bank_origin is not None else {})},
            bank_sources=self.bank_sources,
            source_names=self.source_names,
            train_sources=self.train_sources,
            grid=list(self.grid) if self.grid else None,
            n_train_images=int(self.n_train_images),
        )

    @classmethod
    def load(cls, path, expect_config: PatchCoreConfig | Mapping[str, Any] | None = None,
             device: str | None = None) -> "PatchCore":
        """Load a fitted model; ``expect_config`` mismatches raise :class:`ModelError` naming the keys.

        ``device``: where to score (default: ``expect_config``'s device, else the CPU).
        """
        obj, cfg = cls._read_file(path, expect_config, device)
        bank = obj["state"].get("bank")
        if not isinstance(bank, torch.Tensor) or bank.ndim != 2 or bank.shape[0] == 0:
            raise ModelError(f"{path}: memory bank missing or malformed; the file is corrupt. Delete the file and rerun.")
        model = cls._from_file(obj, cfg)
        model.bank = bank.float().contiguous()
        model.bank_sources = obj.get("bank_sources")
        model.bank_origin = obj["state"].get("bank_origin")
        model.source_names = obj.get("source_names")
        model.grid = tuple(obj["grid"]) if obj.get("grid") else None
        return model
