"""Image-level metrics: AUROC, AUPRC and the confusion metrics at a fixed threshold.

Conventions used throughout :mod:`adloc.metrics`:

* ``labels``: 1 / True = anomalous (the positive class), 0 / False = normal.
* ``scores``: higher = more anomalous.
* An image is predicted anomalous when ``score >= threshold``. The comparison is done in
  float64 (scores are cast to float64 first), so a threshold calibrated here reproduces the
  same decisions whatever the storage dtype of the scores.
* Ratios whose denominator is zero (precision with no predicted anomaly, recall and F1 with
  no anomalous image, specificity with no normal image) are NaN (N/A in the tables), never a
  0 that would read as a measured failure (:func:`rates_from_counts`).
* Ranking metrics (AUROC, AUPRC) are undefined when only one class is present: they are
  NaN, and :func:`image_metrics` says why in its ``note`` field.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["auroc", "auprc", "confusion_at", "image_metrics", "rank_auroc", "check_labels_scores",
           "rank_auroc_unchecked", "ap_unchecked"]


def check_labels_scores(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert ``labels`` (-> bool, 1-D) and ``scores`` (-> float64, 1-D).

    Raises ``ValueError`` on a length mismatch, labels other than 0/1, or non-finite scores
    (NaN or +-inf: an anomaly score must be a real number; a NaN usually means a broken model).
    """
    lab = np.asarray(labels)
    sc = np.asarray(scores, dtype=np.float64)
    if lab.ndim != 1 or sc.ndim != 1:
        raise ValueError(f"labels and scores must be 1-D, got shapes {lab.shape} and {sc.shape}")
    if lab.shape != sc.shape:
        raise ValueError(f"labels and scores differ in length: {lab.shape[0]} vs {sc.shape[0]}")
    if lab.dtype != np.bool_:
        if lab.size and not np.isin(lab, (0, 1)).all():
            bad = np.unique(lab[~np.isin(lab, (0, 1))])[:5]
            raise ValueError(f"labels must be 0 (normal) or 1 (anomalous); found {bad.tolist()}")
        lab = lab.astype(bool)
    if not np.isfinite(sc).all():
        n_bad = int((~np.isfinite(sc)).sum())
        raise ValueError(f"{n_bad} of {sc.size} scores are NaN or infinite")
    return lab, sc


def _one_class_note(lab: np.ndarray) -> str | None:
    n_pos = int(lab.sum())
    n_neg = int(lab.size - n_pos)
    if lab.size == 0:
        return "no images: AUROC/AUPRC undefined (NaN)"
    if n_pos == 0:
        return f"only normal images (n={n_neg}): AUROC/AUPRC undefined (NaN)"
    if n_neg == 0:
        return f"only anomalous images (n={n_pos}): AUROC/AUPRC undefined (NaN)"
    return None


def auroc(labels, scores) -> float:
    """Image AUROC (scikit-learn ``roc_auc_score``); NaN when only one class is present."""
    lab, sc = check_labels_scores(labels, scores)
    if _one_class_note(lab) is not None:
        return math.nan
    from sklearn.metrics import roc_auc_score  # lazy: rules that only calibrate skip it

    return float(roc_auc_score(lab, sc))


def auprc(labels, scores) -> float:
    """Image AUPRC as scikit-learn ``average_precision_score`` (step-wise, not trapezoidal);
    NaN when only one class is present."""
    lab, sc = check_labels_scores(labels, scores)
    if _one_class_note(lab) is not None:
        return math.nan
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(lab, sc))


def rank_auroc(labels, scores) -> float:
    """AUROC as the Mann-Whitney U statistic with average ranks for ties.

    Mathematically identical to ``roc_auc_score`` (ties count 1/2); it avoids scikit-learn's
    input checking, which makes it the fast path for bootstrap loops. NaN for one class.
    """
    lab, sc = check_labels_scores(labels, scores)
    return rank_auroc_unchecked(lab, sc)


def rank_auroc_unchecked(lab: np.ndarray, sc: np.ndarray) -> float:
    """:func:`rank_auroc` of already checked bool labels and float scores (the bootstrap's inner
    loop); NaN for one class."""
    n_pos = int(lab.sum())
    n_neg = lab.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    neg = np.sort(sc[~lab])
    pos = sc[lab]
    # For each positive: (#neg < s) + (#neg <= s) = 2 * (#neg < s) + (#neg == s).
    twice_u = int(np.searchsorted(neg, pos, "left").sum()) + int(np.searchsorted(neg, pos, "right").sum())
    return twice_u / (2.0 * n_pos * n_neg)


def ap_unchecked(lab: np.ndarray, sc: np.ndarray) -> float:
    """Average precision exactly as scikit-learn defines it: sum over distinct thresholds
    (descending) of (recall_k - recall_{k-1}) * precision_k. NaN for one class."""
    n_pos = int(lab.sum())
    if n_pos == 0 or n_pos == lab.size:
        return math.nan
    order = np.argsort(-sc, kind="stable")
    s = sc[order]
    tp = np.cumsum(lab[order])
    last = np.flatnonzero(np.append(s[1:] != s[:-1], True))  # last index of each tie group
    tp = tp[last].astype(np.float64)
    precision = tp / (last + 1)
    recall = tp / n_pos
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def _safe_div(a: float, b: float) -> float:
    """``a / b``; NaN (undefined, reported N/A) when ``b`` is 0."""
    return float(a) / float(b) if b else math.nan


def confusion_at(labels, scores, threshold: float) -> dict:
    """Confusion counts at ``score >= threshold`` (float64 comparison).

    Returns ``{"tp", "tn", "fp", "fn"}`` as Python ints.
    """
    lab, sc = check_labels_scores(labels, scores)
    thr = float(threshold)
    if not math.isfinite(thr):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    pred = sc >= thr
    tp = int(np.count_nonzero(pred & lab))
    fp = int(np.count_nonzero(pred & ~lab))
    fn = int(np.count_nonzero(~pred & lab))
    tn = int(lab.size - tp - fp - fn)
    return {"tp": tp, "tn": tn, "fp": fp, "fn": fn}


def rates_from_counts(tp: int, tn: int, fp: int, fn: int) -> dict:
    """accuracy, precision, recall, specificity, f1 from counts; 0/0 -> NaN (undefined: e.g.
    recall and F1 of a test split without anomalous images, precision when nothing is
    predicted anomalous), never a 0 that would read as a measured failure."""
    n = tp + tn + fp + fn
    return {
        "accuracy": _safe_div(tp + tn, n),
        "precision": _safe_div(tp, tp + fp),
        "recall": _safe_div(tp, tp + fn),
        "specificity": _safe_div(tn, tn + fp),
        # F1 is about finding anomalies: undefined (not 0) when there is none to find
        "f1": _safe_div(2 * tp, 2 * tp + fp + fn) if tp + fn else math.nan,
    }


def image_metrics(labels, scores, threshold: float) -> dict:
    """All image-level metrics on one split.

    Keys: ``auroc``, ``auprc`` (NaN if one class only), ``threshold``, ``tp``, ``tn``,
    ``fp``, ``fn``, ``accuracy``, ``precision``, ``recall``, ``specificity``, ``f1``
    (prediction ``score >= threshold``; 0/0 -> NaN), ``n``, ``n_anomalous``, ``n_normal`` and
    ``note`` (None, or why AUROC/AUPRC are NaN).
    """
    lab, sc = check_labels_scores(labels, scores)
    note = _one_class_note(lab)
    if note is None:
        from sklearn.metrics import average_precision_score, roc_auc_score

        au = float(roc_auc_score(lab, sc))
        ap = float(average_precision_score(lab, sc))
    else:
        au = ap = math.nan
    counts = confusion_at(lab, sc, threshold)
    out = {"auroc": au, "auprc": ap, "threshold": float(threshold)}
    out.update(counts)
    out.update(rates_from_counts(**counts))
    n_pos = int(lab.sum())
    out.update({"n": int(lab.size), "n_anomalous": n_pos, "n_normal": int(lab.size - n_pos), "note": note})
    return out
