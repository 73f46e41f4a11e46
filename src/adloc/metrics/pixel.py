"""Pixel-level metrics: pixel AUROC, AU-PRO (reference definition) and the study's PRO.

Inputs: ``masks`` and ``maps`` are either arrays of shape (N, H, W) or sequences of N 2-D
arrays (shapes may differ between images but must match pairwise). Masks may be bool or
numeric (numeric masks: ``mask > 0.5`` is anomalous, the study's convention for resized
masks); in a sequence, ``None`` stands for an all-normal mask (a good image). Maps are real-valued, higher = more anomalous; NaN raises ``ValueError``.
The caller decides which images to pass (all test images = paper protocol; anomalous images
only = the study's global runs).

Memory: the exact metrics never build scikit-learn style (N*H*W,) float64 + int64 arrays.
They copy the anomaly-free pixel scores once (in the maps' own dtype, float16 -> float32,
integers -> float64; no downcast, so results are exact for the values given), sort that copy
in place, and answer every question with ``searchsorted`` over the (usually far fewer)
anomalous pixels in chunks. At MVTec scale (150 x 1024 x 1024 float32 maps) the extra memory
is about 4 bytes per normal pixel + 16 bytes per anomalous pixel plus fixed-size chunks
(see ``benchmarks/bench_metrics.py``).

Reference AU-PRO (Bergmann et al., IJCV 2021; the official MVTec AD evaluation code):

* regions: connected components of each ground-truth mask, 8-connectivity (3x3 structure);
* FPR(t) = fraction of ALL anomaly-free pixels of ALL images (good images included) with
  score >= t;
* PRO(t) = mean over all regions of all images of the fraction of the region's pixels with
  score >= t;
* the curve has one vertex per distinct score (ties merged), starting at (0, 0);
* area under the curve up to ``fpr_limit`` by the trapezoid rule, with PRO linearly
  interpolated at ``fpr_limit``, divided by ``fpr_limit``.

The implementation evaluates that same area without materialising the curve: between two
consecutive vertices the FPR only moves at scores held by anomaly-free pixels, so the area is
(1/N_ok) * sum over anomaly-free pixels q of (PRO(> s_q) + PRO(>= s_q)) / 2, which regroups
into sums over anomalous pixels of ``searchsorted`` counts into the sorted anomaly-free
scores; only the segment that crosses ``fpr_limit`` is interpolated explicitly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["pixel_auroc", "au_pro", "pro_curve", "au_pro_study", "pixel_metrics", "ap_f1max_sorted", "au_pro_at"]

_CHUNK = 1 << 22  # anomalous pixels per searchsorted chunk (bounds temporaries to ~100 MB)
_STRUCTURES = {8: np.ones((3, 3), dtype=bool), 4: ndimage.generate_binary_structure(2, 1)}


# ----------------------------------------------------------------------------- input handling


def _pairs(masks, maps) -> list[tuple[np.ndarray, np.ndarray]]:
    if isinstance(masks, np.ndarray) and masks.ndim == 2:
        masks = masks[None]
    if isinstance(maps, np.ndarray) and maps.ndim == 2:
        maps = maps[None]
    if len(masks) != len(maps):
        raise ValueError(f"got {len(masks)} masks but {len(maps)} anomaly maps")
    out = []
    for i, (m, a) in enumerate(zip(masks, maps)):
        a = np.asarray(a)
        m = np.zeros(a.shape, dtype=bool) if m is None else np.asarray(m)
        if m.shape != a.shape:
            raise ValueError(f"image {i}: mask shape {m.shape} != anomaly map shape {a.shape}")
        if m.dtype != np.bool_:
            m = m > 0.5
        out.append((m, a))
    return out


def _work_dtype(pairs) -> np.dtype:
    if not pairs:
        return np.dtype(np.float64)
    dt = np.result_type(*[a.dtype for _, a in pairs])
    if dt == np.float16:
        return np.dtype(np.float32)
    if not np.issubdtype(dt, np.floating):
        return np.dtype(np.float64)
    return dt


def _check_finite(a: np.ndarray, i: int) -> None:
    if np.issubdtype(a.dtype, np.floating) and np.isnan(a).any():
        raise ValueError(f"anomaly map {i} contains NaN; a broken model or a bad resize produced it")


@dataclass
class _Pixels:
    neg: np.ndarray  # anomaly-free pixel scores, sorted ascending
    pos: np.ndarray  # anomalous pixel scores, sorted ascending
    w: np.ndarray | None  # per anomalous pixel: 1 / size of its region (same order as pos)
    n_regions: int


def _extract(pairs, connectivity: int | None) -> _Pixels:
    """Copy scores into a sorted normal-pixel array and a sorted anomalous-pixel array.

    With ``connectivity`` (4 or 8) also labels regions and returns per-pixel weights.
    """
    dt = _work_dtype(pairs)
    n_pos_img = [int(np.count_nonzero(m)) for m, _ in pairs]
    n_pos = sum(n_pos_img)
    n_neg = sum(m.size for m, _ in pairs) - n_pos
    neg = np.empty(n_neg, dtype=dt)
    pos = np.empty(n_pos, dtype=dt)
    w = np.empty(n_pos, dtype=np.float64) if connectivity else None
    n_regions = 0
    i_neg = i_pos = 0
    for i, ((m, a), k) in enumerate(zip(pairs, n_pos_img)):
        _check_finite(a, i)
        nn = m.size - k
        if k == 0:
            neg[i_neg : i_neg + nn] = a.ravel()
        else:
            neg[i_neg : i_neg + nn] = a[~m]
            pos[i_pos : i_pos + k] = a[m]
            if connectivity:
                if m.ndim != 2:
                    raise ValueError(f"mask {i} must be 2-D to find regions, got shape {m.shape}")
                lab, nr = ndimage.label(m, structure=_STRUCTURES[connectivity])
                sizes = np.bincount(lab.ravel(), minlength=nr + 1).astype(np.float64)
                w[i_pos : i_pos + k] = 1.0 / sizes[lab[m]]
                n_regions += nr
        i_neg += nn
        i_pos += k
    neg.sort()
    if n_pos:
        if w is not None:
            order = np.argsort(pos, kind="stable")
            pos = pos[order]
            w = w[order]
            del order
        else:
            pos.sort()
    return _Pixels(neg, pos, w, n_regions)


def _count_sums(neg: np.ndarray, pos: np.ndarray, w: np.ndarray | None, offset: int = 0):
    """Sum over anomalous pixels p of weight_p * (#{neg[offset:] < s_p} + #{neg[offset:] <= s_p}).

    Exact integer arithmetic when ``w`` is None. ``neg`` sorted ascending.
    """
    total = 0 if w is None else 0.0
    for lo in range(0, pos.size, _CHUNK):
        q = pos[lo : lo + _CHUNK]
        c = np.searchsorted(neg, q, "left")
        r = np.searchsorted(neg, q, "right")
        if offset:  # counts within neg[offset:] only: (count - offset)+
            c -= offset
            r -= offset
            np.maximum(c, 0, out=c)
            np.maximum(r, 0, out=r)
        c += r
        del r
        if w is None:
            total += int(c.sum())
        else:
            total += float(np.dot(w[lo : lo + _CHUNK], c))
    return total


# ----------------------------------------------------------------------------- AP and F1-max


def ap_f1max_sorted(neg: np.ndarray, pos: np.ndarray) -> tuple[float, float]:
    """Exact average precision (scikit-learn's ``average_precision_score``: sum over distinct
    thresholds, descending, of (R_k - R_{k-1}) * P_k) and F1-max (the largest F1 over every
    threshold ``score >= t``) from the sorted (ascending) normal and anomalous scores.

    Recall moves only at anomalous scores, and lowering a threshold past normal scores alone
    only adds false positives, so both sums run over the distinct anomalous scores v:
    TP(v) = #pos >= v, FP(v) = #neg >= v, in chunks of ``searchsorted`` (no (N,) float64
    arrays). NaN (both) when there is no anomalous or no normal score.
    """
    p, n = pos.size, neg.size
    if p == 0 or n == 0:
        return math.nan, math.nan
    starts = np.flatnonzero(np.concatenate(([True], pos[1:] != pos[:-1])))
    ap = 0.0
    f1 = 0.0
    for lo in range(0, starts.size, _CHUNK):
        st = starts[lo : lo + _CHUNK]
        v = pos[st]
        ends = np.append(starts[lo + 1 : lo + 1 + _CHUNK], p)[: st.size]
        tp = (p - st).astype(np.float64)
        fp = (n - np.searchsorted(neg, v, "left")).astype(np.float64)
        ap += float(np.sum((ends - st) / p * (tp / (tp + fp))))
        f1 = max(f1, float(np.max(2.0 * tp / (tp + fp + p))))
    return ap, f1


# ----------------------------------------------------------------------------- pixel AUROC


def _auroc_from(px: _Pixels) -> float:
    p, n = px.pos.size, px.neg.size
    if p == 0 or n == 0:
        return math.nan
    twice_u = _count_sums(px.neg, px.pos, None)
    return twice_u / (2.0 * p * n)


def pixel_auroc(masks, maps, max_pixels: int | None = None, seed: int = 0) -> float:
    """Pixel AUROC over all pixels of the given images, pooled.

    ``max_pixels=None`` (default): EXACT. Equals scikit-learn ``roc_auc_score`` on the
    flattened pixels (Mann-Whitney U, ties count 1/2), computed by sorting the anomaly-free
    scores and counting with ``searchsorted`` in integer arithmetic.

    ``max_pixels=k``: APPROXIMATE. Each pixel is kept independently with probability
    ``k / total`` (``numpy.random.default_rng(seed)``), about ``k`` pixels, then the exact
    computation runs on that sample. Use only to bound time on huge inputs.

    Returns NaN (no exception) when there is no anomalous or no anomaly-free pixel.
    """
    pairs = _pairs(masks, maps)
    if max_pixels is not None:
        total = sum(m.size for m, _ in pairs)
        if max_pixels <= 0:
            raise ValueError(f"max_pixels must be positive, got {max_pixels}")
        if total > max_pixels:
            rng = np.random.default_rng(seed)
            p = max_pixels / total
            sub = []
            for m, a in pairs:
                keep = rng.random(m.shape) < p
                sub.append((m[keep], a[keep]))
            pairs = sub
    return _auroc_from(_extract(pairs, connectivity=None))


# ----------------------------------------------------------------------------- reference AU-PRO


def _check_limit(fpr_limit: float) -> float:
    fpr_limit = float(fpr_limit)
    if not (0.0 < fpr_limit <= 1.0):
        raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit}")
    return fpr_limit


def _au_pro_from(px: _Pixels, fpr_limit: float) -> float:
    n = px.neg.size
    if n == 0 or px.n_regions == 0:
        return math.nan
    neg, pos, w, r = px.neg, px.pos, px.w, px.n_regions
    # smallest count k of top-scoring normal pixels with k / n >= fpr_limit (float compare,
    # the same comparison the curve's FPR values would get)
    k = min(max(math.ceil(fpr_limit * n), 1), n)
    while k > 1 and (k - 1) / n >= fpr_limit:
        k -= 1
    while k < n and k / n < fpr_limit:
        k += 1
    t = neg[n - k]  # k-th largest normal score: its tie group crosses the limit
    n_le = int(np.searchsorted(neg, t, "right"))
    n_lt = int(np.searchsorted(neg, t, "left"))
    n_gt, n_ge = n - n_le, n - n_lt
    # full segments: normal pixels with score > t, i.e. neg[n_le:]
    area = _count_sums(neg, pos, w, offset=n_le) / (2.0 * n * r)
    # the crossing segment, from (F_b, P_b) to (F_a, P_a), cut at fpr_limit
    w_cum = np.concatenate(([0.0], np.cumsum(w)))
    w_tot = w_cum[-1]
    p_b = (w_tot - w_cum[np.searchsorted(pos, t, "right")]) / r  # PRO(score > t)
    p_a = (w_tot - w_cum[np.searchsorted(pos, t, "left")]) / r  # PRO(score >= t)
    f_b, f_a = n_gt / n, n_ge / n
    if fpr_limit > f_b:
        p_lim = p_b + (p_a - p_b) * (fpr_limit - f_b) / (f_a - f_b)
        area += 0.5 * (p_b + p_lim) * (fpr_limit - f_b)
    return float(area / fpr_limit)


def au_pro(masks, anomaly_maps, fpr_limit: float = 0.3, connectivity: int = 8) -> float:
    """Normalised area under the PRO curve up to ``fpr_limit``: the reference definition.

    EXACT (no threshold grid): see the module docstring for the definition, which follows
    Bergmann et al. (IJCV 2021) and the official MVTec AD evaluation code. FPR counts every
    anomaly-free pixel of every image passed, so pass the good test images too.
    ``connectivity`` 8 (reference) or 4. Returns NaN when there is no ground-truth region or
    no anomaly-free pixel.
    """
    fpr_limit = _check_limit(fpr_limit)
    if connectivity not in _STRUCTURES:
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    return _au_pro_from(_extract(_pairs(masks, anomaly_maps), connectivity), fpr_limit)


def au_pro_at(masks, anomaly_maps, fpr_limits, connectivity: int = 8) -> list[float]:
    """:func:`au_pro` at each of ``fpr_limits`` from one extraction of the pixels and regions."""
    limits = [_check_limit(f) for f in fpr_limits]
    if connectivity not in _STRUCTURES:
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    px = _extract(_pairs(masks, anomaly_maps), connectivity)
    return [_au_pro_from(px, f) for f in limits]


def pixel_metrics(
    masks, maps, fpr_limit: float = 0.3, connectivity: int = 8, strict_limit: float | None = None
) -> dict:
    """``{"pixel_auroc", "pixel_ap", "pixel_f1_max", "au_pro", "au_pro_strict"}`` from one
    sorted copy of the same images' pixels (all exact; AP and F1-max as
    :func:`ap_f1max_sorted`; ``au_pro_strict`` at ``strict_limit``, NaN when it is None)."""
    fpr_limit = _check_limit(fpr_limit)
    strict = None if strict_limit is None else _check_limit(strict_limit)
    px = _extract(_pairs(masks, maps), connectivity)
    ap, f1 = ap_f1max_sorted(px.neg, px.pos)
    return {"pixel_auroc": _auroc_from(px), "pixel_ap": ap, "pixel_f1_max": f1,
            "au_pro": _au_pro_from(px, fpr_limit),
            "au_pro_strict": math.nan if strict is None else _au_pro_from(px, strict)}


def pro_curve(masks, maps, connectivity: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """The full reference PRO curve: (fpr, pro), ascending FPR, starting at (0, 0), one vertex
    per distinct score (thresholds descending, ties merged), ending at (1, 1).

    Exact; memory is O(number of distinct scores) float64 on top of the sorted pixel copy,
    so for MVTec-scale inputs prefer :func:`au_pro` and plot a subsample of this curve.
    NaN-free; empty arrays when there is no region or no anomaly-free pixel.
    """
    if connectivity not in _STRUCTURES:
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    px = _extract(_pairs(masks, maps), connectivity)
    n, r = px.neg.size, px.n_regions
    if n == 0 or r == 0:
        return np.empty(0), np.empty(0)
    values = np.unique(np.concatenate((px.neg, px.pos)))[::-1]
    fpr = (n - np.searchsorted(px.neg, values, "left")) / n
    w_cum = np.concatenate(([0.0], np.cumsum(px.w)))
    pro = (w_cum[-1] - w_cum[np.searchsorted(px.pos, values, "left")]) / r
    fpr = np.clip(np.concatenate(([0.0], fpr)), 0.0, 1.0)
    pro = np.clip(np.concatenate(([0.0], pro)), 0.0, 1.0)
    return fpr, pro


# ----------------------------------------------------------------------------- the study's PRO


def au_pro_study(
    masks,
    maps,
    n_thresholds: int = 200,
    fpr_limit: float = 0.3,
    connectivity: int = 4,
    argsort_kind: str | None = None,
) -> float:
    """The study's PRO, reproduced (``study`` preset only; the reference is :func:`au_pro`).

    Source: IvanNece/Detection-of-Anomalies-with-Localization,
    ``src/metrics/pixel_metrics.py::compute_pro`` (called by notebooks 06 and 10 through
    ``compute_pixel_metrics``). Algorithm:

    1. keep only images whose mask has an anomalous pixel (good images are dropped, so FPR
       comes from the anomaly-free pixels of anomalous images only);
    2. ``n_thresholds`` thresholds ``np.linspace(min, max)`` over all pixels of those images;
    3. regions: ``scipy.ndimage.label`` with its default structure = 4-connectivity;
    4. per threshold t: FPR = share of anomaly-free pixels with score >= t (0 if there are
       none); PRO = mean over ALL regions (pooled across images, not per image) of the share
       of the region's pixels with score >= t;
    5. points sorted by FPR with ``np.argsort`` (default kind, like the study: the order among
       equal FPRs, hence which point survives step 6, depends on numpy's sort implementation
       and CPU; pass ``argsort_kind="stable"`` for a machine-independent result, which keeps
       the lowest threshold of each tie), then only the first point of each run of equal FPR
       is kept;
    6. points with FPR <= ``fpr_limit`` (no interpolation at the limit); trapezoid area / limit;
       fewer than 2 such points -> their mean PRO (0.0 if none).

    Deviation: with no anomalous image the study returned 1.0; this returns NaN.
    Comparisons are done in float64 (the study compared float32 maps with float64 thresholds,
    which numpy 1.x may have rounded to float32; this only matters for pixels lying exactly on
    a threshold).
    """
    fpr_limit = float(fpr_limit)
    n_thr = int(n_thresholds)
    if n_thr < 1:
        raise ValueError(f"n_thresholds must be >= 1, got {n_thresholds}")
    if connectivity not in _STRUCTURES:
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    pairs = [(m, a) for m, a in _pairs(masks, maps) if m.any()]
    if not pairs:
        return math.nan
    for i, (_, a) in enumerate(pairs):
        _check_finite(a, i)
    lo = min(float(np.min(a)) for _, a in pairs)
    hi = max(float(np.max(a)) for _, a in pairs)
    thr = np.linspace(lo, hi, n_thr)
    # m_idx = number of thresholds <= score: the pixel counts at thresholds j < m_idx
    neg_hist = np.zeros(n_thr + 1, dtype=np.int64)
    region_hists, region_sizes = [], []
    n_neg = 0
    for m, a in pairs:
        idx = np.searchsorted(thr, a.astype(np.float64, copy=False).ravel(), "right")
        mf = m.ravel()
        neg_hist += np.bincount(idx[~mf], minlength=n_thr + 1)
        n_neg += int((~mf).sum())
        lab, nr = ndimage.label(m, structure=_STRUCTURES[connectivity])
        labf = lab.ravel()[mf] - 1
        h = np.bincount(labf * (n_thr + 1) + idx[mf], minlength=nr * (n_thr + 1)).reshape(nr, n_thr + 1)
        region_hists.append(h)
        region_sizes.append(h.sum(axis=1))
    # count of pixels with score >= thr[j] = suffix sum of the histogram from j + 1
    neg_ge = np.cumsum(neg_hist[::-1])[::-1][1:]
    fpr = neg_ge / n_neg if n_neg > 0 else np.zeros(n_thr)
    rh = np.concatenate(region_hists, axis=0)
    sizes = np.concatenate(region_sizes).astype(np.float64)
    reg_ge = np.cumsum(rh[:, ::-1], axis=1)[:, ::-1][:, 1:]
    pro = (reg_ge / sizes[:, None]).mean(axis=0)
    order = np.argsort(fpr) if argsort_kind is None else np.argsort(fpr, kind=argsort_kind)
    fpr_s, pro_s = fpr[order], pro[order]
    keep = np.ones(fpr_s.size, dtype=bool)
    keep[1:] = fpr_s[1:] != fpr_s[:-1]  # sorted, so "differs from the previous" == "first of its run"
    fpr_u, pro_u = fpr_s[keep], pro_s[keep]
    valid = fpr_u <= fpr_limit
    if valid.sum() < 2:
        return float(pro_u[valid].mean()) if valid.any() else 0.0
    x, y = fpr_u[valid], pro_u[valid]
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0) / fpr_limit)
