"""F1-optimal decision threshold calibrated on the validation split.

Two modes:

``exact`` (default protocol)
    The exact F1 maximum. Predictions only change when the threshold crosses a validation
    score, so every achievable prediction set is covered by these candidates: for each
    distinct score ``u`` (descending) one threshold ``t`` with ``u_next < t <= u`` (the
    midpoint of ``u`` and the next lower distinct score ``u_next``; the lowest candidate is
    the minimum score itself, i.e. everything predicted anomalous), plus one threshold above
    the maximum (everything predicted normal). Counts come from one sort and cumulative
    sums: O(n log n).

    Tie rule: among candidates with the same (maximal) F1 the LARGEST threshold wins. A larger
    threshold never has lower specificity, so of equally good F1 operating points we keep the
    one with the fewest false alarms on normal images; this matters when a class's threshold
    is applied to other classes' normals (the cross-class analysis). F1 values are compared
    exactly (IEEE division is correctly rounded, so equal fractions give equal floats).

``study`` (the ``study`` preset)
    The study's algorithm (IvanNece/Detection-of-Anomalies-with-Localization,
    ``src/metrics/threshold_selection.py::calibrate_threshold``, used by notebooks 06 and 10
    through ``ThresholdCalibrator.calibrate``): ``grid_size`` (1000) evenly spaced candidates
    ``np.linspace(min - m, max + m, grid_size)`` with ``m = 0.01 * (max - min)``, i.e. a
    margin of 1 % of the score RANGE (not of the value); F1 of ``score >= t`` where a
    candidate that predicts every image anomalous or every image normal counts as F1 = 0;
    the first candidate with a strictly larger F1 wins, so ties go to the LOWEST threshold,
    and if no candidate has F1 > 0 the first candidate (``min - m``, everything anomalous)
    is returned.

Both modes report the F1, precision and recall that the chosen threshold really achieves
on the validation split (for ``study`` this can differ from the grid's F1 only in the
all-anomalous corner case above).

Degenerate validation splits (no anomalous or no normal image) cannot be calibrated:
``on_degenerate="error"`` raises :class:`adloc.errors.CalibrationError` naming the missing
class and the fix; ``"fallback"`` returns a documented fallback threshold and records it in
``ThresholdResult.fallback``. A silent everything-anomalous threshold is never returned.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from adloc.errors import CalibrationError
from adloc.metrics.image import check_labels_scores, confusion_at, rates_from_counts

__all__ = ["ThresholdResult", "calibrate_threshold", "exact_f1_candidates", "study_f1_grid"]

MODES = ("exact", "study")
ON_DEGENERATE = ("error", "fallback")
FALLBACK_NO_ANOMALIES = "no_anomalies_in_val: max normal score"
FALLBACK_NO_NORMALS = "no_normals_in_val: min anomalous score"


@dataclass(frozen=True)
class ThresholdResult:
    """A calibrated threshold; predict anomalous when ``score >= threshold``.

    ``f1``, ``precision``, ``recall`` are measured on the validation split at ``threshold``;
    ``n_candidates`` is how many thresholds were compared (0 for a fallback); ``fallback`` is
    None, or which fallback rule produced the threshold.
    """

    threshold: float
    f1: float
    precision: float
    recall: float
    mode: str
    n_candidates: int
    fallback: str | None = None
    n_anomalous: int = 0
    n_normal: int = 0

    def to_dict(self) -> dict:
        """Plain dict; undefined validation rates (NaN) become None (N/A in JSON)."""
        return {k: None if isinstance(v, float) and math.isnan(v) else v
                for k, v in asdict(self).items()}


def _f1_from_counts(tp: np.ndarray, fp: np.ndarray, n_pos: int) -> np.ndarray:
    """F1 = 2tp / (2tp + fp + fn) elementwise, 0 where the denominator is 0."""
    tp = tp.astype(np.float64)
    denom = 2.0 * tp + fp + (n_pos - tp)
    return np.divide(2.0 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


def exact_f1_candidates(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    """All exact-mode candidate thresholds (descending) and their F1 on (labels, scores).

    The first candidate lies above the maximum score (everything normal), the last equals
    the minimum score (everything anomalous).
    """
    lab, sc = check_labels_scores(labels, scores)
    if sc.size == 0:
        return np.empty(0), np.empty(0)
    values, inverse = np.unique(sc, return_inverse=True)  # ascending distinct scores
    pos_counts = np.bincount(inverse[lab], minlength=values.size)
    neg_counts = np.bincount(inverse[~lab], minlength=values.size)
    u = values[::-1]  # descending
    tp = np.cumsum(pos_counts[::-1])  # predicted positive = {score >= u[j]}
    fp = np.cumsum(neg_counts[::-1])
    n_pos = int(lab.sum())
    # threshold t_j in (u[j+1], u[j]] selects exactly {score >= u[j]}
    thr = np.empty(u.size + 1)
    hi = float(u[0])
    above = hi + max(abs(hi), 1.0) * 1e-6
    thr[0] = above if above > hi else np.nextafter(hi, np.inf)
    if u.size > 1:
        mid = u[1:] + (u[:-1] - u[1:]) / 2.0
        # midpoint of two adjacent floats may round onto the lower one: use the upper then
        bad = ~(mid > u[1:])
        mid[bad] = u[:-1][bad]
        thr[1:-1] = mid
    thr[-1] = u[-1]
    f1 = np.empty(u.size + 1)
    f1[0] = 0.0  # nothing predicted anomalous
    f1[1:] = _f1_from_counts(tp, fp, n_pos)
    return thr, f1


def study_f1_grid(labels, scores, grid_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """The study's candidate grid (ascending) and its F1 values (all-same predictions -> 0)."""
    lab, sc = check_labels_scores(labels, scores)
    lo, hi = float(sc.min()), float(sc.max())
    margin = (hi - lo) * 0.01
    thr = np.linspace(lo - margin, hi + margin, int(grid_size))
    pos = np.sort(sc[lab])
    neg = np.sort(sc[~lab])
    tp = pos.size - np.searchsorted(pos, thr, "left")  # count of pos >= t
    fp = neg.size - np.searchsorted(neg, thr, "left")
    f1 = _f1_from_counts(tp, fp, pos.size)
    n_pred = tp + fp
    f1[(n_pred == 0) | (n_pred == sc.size)] = 0.0
    return thr, f1


def _degenerate(lab: np.ndarray, sc: np.ndarray, mode: str, on_degenerate: str,
                advice: str | None = None) -> ThresholdResult | None:
    n_pos = int(lab.sum())
    n_neg = int(lab.size - n_pos)
    if lab.size == 0:
        raise CalibrationError(
            "cannot calibrate a threshold: the validation split is empty. "
            "Fix: check splits.train_fraction / splits.val_anomaly_fraction and that the class has images."
        )
    if n_pos and n_neg:
        return None
    if n_pos == 0:
        if on_degenerate == "error":
            raise CalibrationError(
                f"cannot calibrate an F1 threshold: the validation split has no anomalous images "
                f"({n_neg} normal, 0 anomalous). Fix: "
                + (advice or "put anomalous images in validation (raise splits.val_anomaly_fraction, "
                   "or give the class more anomalous test images), or set threshold.on_degenerate: "
                   "fallback to use the max normal validation score + epsilon.")
            )
        m = float(sc.max())
        thr = m + max(abs(m), 1.0) * 1e-6
        fb = FALLBACK_NO_ANOMALIES
    else:
        if on_degenerate == "error":
            raise CalibrationError(
                f"cannot calibrate an F1 threshold: the validation split has no normal images "
                f"(0 normal, {n_pos} anomalous). Fix: keep some normal images in validation (lower "
                f"splits.train_fraction), or set threshold.on_degenerate: fallback to use the min "
                f"anomalous validation score."
            )
        thr = float(sc.min())
        fb = FALLBACK_NO_NORMALS
    return _result(lab, sc, thr, mode, n_candidates=0, fallback=fb)


def _result(lab: np.ndarray, sc: np.ndarray, thr: float, mode: str, n_candidates: int,
            fallback: str | None) -> ThresholdResult:
    """ThresholdResult with the validation F1, precision and recall measured at ``thr``."""
    rates = rates_from_counts(**confusion_at(lab, sc, thr))
    n_pos = int(lab.sum())
    return ThresholdResult(
        threshold=float(thr),
        f1=rates["f1"],
        precision=rates["precision"],
        recall=rates["recall"],
        mode=mode,
        n_candidates=int(n_candidates),
        fallback=fallback,
        n_anomalous=n_pos,
        n_normal=int(lab.size - n_pos),
    )


def calibrate_threshold(
    labels,
    scores,
    mode: str = "exact",
    grid_size: int = 1000,
    on_degenerate: str = "error",
    advice: str | None = None,
) -> ThresholdResult:
    """F1-maximising threshold on validation ``(labels, scores)``; see the module docstring.

    ``grid_size`` is used by ``mode="study"`` only. ``advice``: the fix to give when the
    validation split has no anomalous image (the caller knows the class's counts; see
    :func:`adloc.data.splits.val_anomaly_advice`), instead of the generic one. Raises ``ValueError`` for bad arguments
    and :class:`~adloc.errors.CalibrationError` for a degenerate split with
    ``on_degenerate="error"``.
    """
    if mode not in MODES:
        raise ValueError(f"threshold mode must be one of {MODES}, got {mode!r}")
    if on_degenerate not in ON_DEGENERATE:
        raise ValueError(f"on_degenerate must be one of {ON_DEGENERATE}, got {on_degenerate!r}")
    if mode == "study" and int(grid_size) < 2:
        raise ValueError(f"grid_size must be >= 2, got {grid_size!r}")
    lab, sc = check_labels_scores(labels, scores)
    fb = _degenerate(lab, sc, mode, on_degenerate, advice)
    if fb is not None:
        return fb
    if mode == "exact":
        thr, f1 = exact_f1_candidates(lab, sc)  # descending thresholds
        best = int(np.argmax(f1))  # first max = largest threshold among ties
    else:
        thr, f1 = study_f1_grid(lab, sc, grid_size)  # ascending thresholds
        best = int(np.argmax(f1))  # first max = lowest threshold among ties (0 if all F1 == 0)
    result = _result(lab, sc, float(thr[best]), mode, n_candidates=thr.size, fallback=None)
    if mode == "exact":
        assert math.isclose(result.f1, float(f1[best]), rel_tol=0, abs_tol=1e-12)
    return result
