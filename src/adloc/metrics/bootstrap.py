"""Seeded percentile-bootstrap confidence intervals over images.

Each bootstrap replicate draws ``n`` image indices with replacement
(``numpy.random.default_rng(seed).integers``; with ``stratify=True`` the normal and the
anomalous images are resampled separately, keeping both class counts fixed). Replicates
that lack one class (or where the metric is NaN) are skipped and counted: ``n_valid`` says
how many were used. The interval is ``[q(alpha/2), q(1 - alpha/2)]`` of the valid replicate
values (``numpy.percentile``, linear interpolation). The same ``seed`` gives the same
interval.

``metric`` is a callable ``(labels, scores) -> float`` or one of the names ``"auroc"``,
``"auprc"``. AUROC (``auroc``, ``rank_auroc``, ``"auroc"``) is computed for all replicates
at once from per-replicate image multiplicities: AUROC_b = c_pos,b . K . c_neg,b /
(n_pos,b * n_neg,b) with K[i, j] = [s_i > s_j] + 1/2 [s_i = s_j]; this equals the AUROC of
the resampled multiset exactly. AUPRC uses an exact re-implementation of scikit-learn's
average precision (no input checking) in a loop. Any other callable is looped over.

:func:`paired_gap_ci` resamples the SAME image indices for both score vectors (paired
bootstrap), so identical score vectors give a gap of exactly 0 in every replicate.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from adloc.metrics.image import (
    ap_unchecked,
    rank_auroc_unchecked,
    auprc,
    auroc,
    check_labels_scores,
    rank_auroc,
)

__all__ = ["bootstrap_ci", "paired_gap_ci", "resample_indices"]

_K_MAX = 25_000_000  # largest n_pos * n_neg comparison matrix for the vectorised AUROC


def _resolve(metric) -> tuple[Callable, str]:
    if isinstance(metric, str):
        table = {"auroc": auroc, "auprc": auprc}
        if metric not in table:
            raise ValueError(f"unknown metric name {metric!r}; use a callable or one of {sorted(table)}")
        metric = table[metric]
    if metric is auroc or metric is rank_auroc:
        return metric, "auroc"
    if metric is auprc:
        return metric, "auprc"
    if not callable(metric):
        raise TypeError(f"metric must be callable or a name, got {metric!r}")
    return metric, "generic"


def resample_indices(labels, n_boot: int, seed: int = 0, stratify: bool = False) -> np.ndarray:
    """(n_boot, n) int array of bootstrap image indices, reproducible from ``seed``."""
    lab = np.asarray(labels).astype(bool)
    n = lab.size
    rng = np.random.default_rng(seed)
    if not stratify:
        return rng.integers(0, n, size=(int(n_boot), n))
    pos = np.flatnonzero(lab)
    neg = np.flatnonzero(~lab)
    parts = []
    for group in (neg, pos):
        if group.size:
            parts.append(group[rng.integers(0, group.size, size=(int(n_boot), group.size))])
    return np.concatenate(parts, axis=1) if parts else np.empty((int(n_boot), 0), dtype=np.int64)


def _multiplicities(idx: np.ndarray, n: int) -> np.ndarray:
    b = idx.shape[0]
    flat = (idx + (np.arange(b)[:, None] * n)).ravel()
    return np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float64)


def _auroc_replicates(lab: np.ndarray, sc: np.ndarray, counts: np.ndarray) -> np.ndarray:
    pos_i = np.flatnonzero(lab)
    neg_i = np.flatnonzero(~lab)
    sp, sn = sc[pos_i], sc[neg_i]
    kmat = (sp[:, None] > sn[None, :]).astype(np.float64)
    kmat += 0.5 * (sp[:, None] == sn[None, :])
    cp, cn = counts[:, pos_i], counts[:, neg_i]
    num = np.einsum("bj,bj->b", cp @ kmat, cn)
    den = cp.sum(axis=1) * cn.sum(axis=1)
    out = np.full(counts.shape[0], np.nan)
    ok = den > 0
    out[ok] = num[ok] / den[ok]
    return out


def _replicates(
    kind: str, fn: Callable, lab: np.ndarray, sc: np.ndarray, idx: np.ndarray, counts: np.ndarray | None
) -> np.ndarray:
    if kind == "auroc" and counts is not None:
        return _auroc_replicates(lab, sc, counts)
    vals = np.full(idx.shape[0], np.nan)
    for b, ii in enumerate(idx):
        lb = lab[ii]
        n_pos = int(lb.sum())
        if n_pos == 0 or n_pos == lb.size:
            continue
        if kind == "auroc":
            vals[b] = rank_auroc_unchecked(lb, sc[ii])
        elif kind == "auprc":
            vals[b] = ap_unchecked(lb, sc[ii])
        else:
            vals[b] = float(fn(lb.astype(np.int64), sc[ii]))
    return vals


def _interval(vals: np.ndarray, alpha: float) -> tuple[float, float, int]:
    ok = np.isfinite(vals)
    n_valid = int(ok.sum())
    if n_valid == 0:
        return math.nan, math.nan, 0
    lo, hi = np.percentile(vals[ok], [100.0 * alpha / 2.0, 100.0 * (1.0 - alpha / 2.0)])
    return float(lo), float(hi), n_valid


def _check_args(n_boot: int, alpha: float) -> None:
    if int(n_boot) < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    if not (0.0 < float(alpha) < 1.0):
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def bootstrap_ci(
    labels, scores, metric=auroc, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05, stratify: bool = False
) -> dict:
    """Percentile bootstrap CI of ``metric(labels, scores)`` over resampled images.

    Returns ``{"estimate", "low", "high", "n_boot", "n_valid", "alpha"}``; ``estimate`` is
    the metric on the full data; ``low``/``high`` are NaN when no replicate is valid (e.g.
    ``n_boot=0`` or only one class).
    """
    _check_args(n_boot, alpha)
    fn, kind = _resolve(metric)
    lab, sc = check_labels_scores(labels, scores)
    estimate = float(fn(lab.astype(np.int64), sc))
    idx = resample_indices(lab, n_boot, seed, stratify)
    counts = None
    if kind == "auroc" and lab.sum() * (~lab).sum() <= _K_MAX and n_boot > 0:
        counts = _multiplicities(idx, lab.size)
    vals = _replicates(kind, fn, lab, sc, idx, counts)
    lo, hi, n_valid = _interval(vals, alpha)
    return {
        "estimate": estimate,
        "low": lo,
        "high": hi,
        "n_boot": int(n_boot),
        "n_valid": n_valid,
        "alpha": float(alpha),
    }


def paired_gap_ci(
    labels,
    scores_a,
    scores_b,
    metric=auroc,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    stratify: bool = False,
) -> dict:
    """Paired percentile bootstrap CI of ``metric(a) - metric(b)`` on the same images.

    ``scores_a`` and ``scores_b`` score the same images in the same order (e.g. per-class vs
    global model); every replicate uses the same resampled indices for both. Returns
    ``{"estimate", "low", "high", "n_boot", "n_valid", "alpha", "estimate_a", "estimate_b"}``.
    """
    _check_args(n_boot, alpha)
    fn, kind = _resolve(metric)
    lab, sa = check_labels_scores(labels, scores_a)
    _, sb = check_labels_scores(labels, scores_b)
    est_a = float(fn(lab.astype(np.int64), sa))
    est_b = float(fn(lab.astype(np.int64), sb))
    idx = resample_indices(lab, n_boot, seed, stratify)
    counts = None
    if kind == "auroc" and lab.sum() * (~lab).sum() <= _K_MAX and n_boot > 0:
        counts = _multiplicities(idx, lab.size)
    gaps = _replicates(kind, fn, lab, sa, idx, counts) - _replicates(kind, fn, lab, sb, idx, counts)
    lo, hi, n_valid = _interval(gaps, alpha)
    return {
        "estimate": est_a - est_b,
        "low": lo,
        "high": hi,
        "n_boot": int(n_boot),
        "n_valid": n_valid,
        "alpha": float(alpha),
        "estimate_a": est_a,
        "estimate_b": est_b,
    }
