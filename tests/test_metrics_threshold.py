"""Threshold calibration: exact F1 optimum, the study's grid, degenerate splits."""

import dataclasses

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from adloc.errors import CalibrationError
from adloc.metrics import ThresholdResult, calibrate_threshold, confusion_at
from adloc.metrics.threshold import FALLBACK_NO_ANOMALIES, FALLBACK_NO_NORMALS


def _case(seed, n=None):
    rng = np.random.default_rng(seed)
    n = n or int(rng.integers(4, 40))
    labels = (rng.random(n) < rng.uniform(0.2, 0.8)).astype(int)
    labels[0], labels[1] = 0, 1
    scores = rng.normal(size=n) + labels * rng.uniform(-0.5, 2.0)
    if seed % 2:
        scores = np.round(scores, 1)  # many ties, also across classes
    return labels, scores


def _brute_force_best_f1(labels, scores):
    """Every threshold that can change a prediction: each distinct score, each midpoint of two
    consecutive distinct scores, and one below the minimum / above the maximum."""
    u = np.unique(scores)
    cands = np.concatenate([u, (u[1:] + u[:-1]) / 2, [u[0] - 1, u[-1] + 1]])
    return max(f1_score(labels, (scores >= t).astype(int), zero_division=0) for t in cands)


@pytest.mark.parametrize("seed", range(30))
def test_exact_threshold_is_f1_optimal(seed):
    labels, scores = _case(seed)
    res = calibrate_threshold(labels, scores)
    best = _brute_force_best_f1(labels, scores)
    pred = (scores >= res.threshold).astype(int)
    achieved = f1_score(labels, pred, zero_division=0)
    assert achieved == pytest.approx(best, abs=1e-12)  # no candidate beats it
    assert res.f1 == pytest.approx(achieved, abs=1e-12)
    assert res.precision == pytest.approx(precision_score(labels, pred, zero_division=0), abs=1e-12)
    assert res.recall == pytest.approx(recall_score(labels, pred, zero_division=0), abs=1e-12)
    assert res.mode == "exact" and res.fallback is None
    assert res.n_candidates == np.unique(scores).size + 1


def test_exact_is_one_sort_and_one_vectorised_f1_pass(monkeypatch):
    """O(n log n): one sort of the scores and one vectorised F1 pass over all candidates, at
    any n (the time is measured by benchmarks/bench_metrics.py --threshold, not asserted)."""
    import adloc.metrics.threshold as T

    calls = {"unique": 0, "f1": 0}
    unique, f1 = np.unique, T._f1_from_counts

    def count_unique(*a, **k):
        calls["unique"] += 1
        return unique(*a, **k)

    def count_f1(*a, **k):
        calls["f1"] += 1
        return f1(*a, **k)

    monkeypatch.setattr(T.np, "unique", count_unique)
    monkeypatch.setattr(T, "_f1_from_counts", count_f1)
    labels, scores = _case(1, n=200_000)
    res = calibrate_threshold(labels, scores)
    assert calls == {"unique": 1, "f1": 1}
    assert 0 < res.f1 <= 1
    pred = (scores >= res.threshold).astype(int)
    assert res.f1 == pytest.approx(f1_score(labels, pred), abs=1e-12)


def test_exact_tie_rule_largest_threshold():
    # scores (desc) 4:A 3:N 2:N 1:A (A = anomalous)
    #   t in (3, 4]: tp=1 fp=0 fn=1 -> F1 = 2/(2+0+1) = 2/3
    #   t in (2, 3]: tp=1 fp=1 fn=1 -> 2/4 = 1/2
    #   t in (1, 2]: tp=1 fp=2 fn=1 -> 2/5
    #   t <= 1     : tp=2 fp=2 fn=0 -> 4/6 = 2/3   (tie with the first)
    # rule: the largest threshold among ties -> the midpoint of 4 and 3 = 3.5
    res = calibrate_threshold([1, 0, 0, 1], [4.0, 3.0, 2.0, 1.0])
    assert res.threshold == 3.5 and res.f1 == pytest.approx(2 / 3)
    assert (res.precision, res.recall) == (1.0, 0.5)


def test_exact_midpoints_and_extremes():
    # perfectly separated: best is t in (0.3, 0.7], the midpoint 0.5
    assert calibrate_threshold([0, 0, 1, 1], [0.1, 0.3, 0.7, 0.9]).threshold == 0.5
    # inverted: best is everything anomalous, i.e. the minimum score itself
    # (all positive: tp=2 fp=2 -> F1 = 4/6; any higher t loses the anomalies first)
    res = calibrate_threshold([1, 1, 0, 0], [0.1, 0.3, 0.7, 0.9])
    assert res.threshold == 0.1 and res.f1 == pytest.approx(2 / 3)


def test_exact_adjacent_floats():
    a = 1.0
    b = np.nextafter(a, 2.0)  # no float strictly between a and b
    res = calibrate_threshold([0, 1], [a, b])
    assert res.threshold == b and res.f1 == 1.0
    assert confusion_at([0, 1], [a, b], res.threshold) == {"tp": 1, "tn": 1, "fp": 0, "fn": 0}


def test_float32_scores_reproduce_validation_decisions():
    labels, scores = _case(3, n=200)
    s32 = scores.astype(np.float32)
    res = calibrate_threshold(labels, s32)
    # comparing the float32 array with the python float directly (numpy 2 casts the threshold
    # to float32) must give the same predictions as the float64 comparison used internally
    assert np.array_equal(s32 >= res.threshold, s32.astype(np.float64) >= res.threshold)


def _study_reference(labels, scores, n=1000):
    """The study's rule written out: grid over [min - 1% range, max + 1% range], F1 of
    score >= t with all-one-class predictions counted as 0, first strict improvement wins."""
    lo, hi = scores.min(), scores.max()
    margin = (hi - lo) * 0.01
    best_t, best_f1 = None, 0.0
    grid = np.linspace(lo - margin, hi + margin, n)
    for t in grid:
        pred = (scores >= t).astype(int)
        f1 = 0.0 if pred.sum() in (0, pred.size) else f1_score(labels, pred, zero_division=0)
        if f1 > best_f1:
            best_t, best_f1 = t, f1
    return grid[0] if best_t is None else best_t


@pytest.mark.parametrize("seed", range(8))
def test_study_mode_matches_reference(seed):
    labels, scores = _case(seed)
    res = calibrate_threshold(labels, scores, mode="study", grid_size=200)
    assert res.threshold == _study_reference(labels, scores, 200)
    assert res.mode == "study" and res.n_candidates == 200


def test_study_tie_goes_to_lowest_threshold():
    # scores (desc) 5:A 4:N 3:N 2:A 1:N; grid over [1 - 0.04, 5 + 0.04] (range 4, margin 1%)
    #   t in (4, 5]: tp=1 fp=0 fn=1 -> 2/3 ; t in (1, 2]: tp=2 fp=2 fn=0 -> 4/6 = 2/3 (tie)
    # study: the lowest tied candidate = the first grid point above 1; exact: midpoint 4.5
    labels, scores = [1, 0, 0, 1, 0], np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    grid = np.linspace(0.96, 5.04, 1000)
    res = calibrate_threshold(labels, scores, mode="study")
    assert res.threshold == grid[np.flatnonzero(grid > 1.0)[0]]
    assert res.f1 == pytest.approx(2 / 3)
    assert calibrate_threshold(labels, scores, mode="exact").threshold == 4.5


def test_study_margin_is_one_percent_of_range_and_no_f1_means_first_candidate():
    # anomalies score BELOW normals: every candidate predicting a mix has tp = 0 -> F1 = 0,
    # the all-anomalous candidates count as 0 too, so the study keeps the first grid point:
    # min - 0.01 * (max - min) = 1000 - 0.01 * 100 = 999 (1% of the value would give 990)
    res = calibrate_threshold([1, 0], [1000.0, 1100.0], mode="study", grid_size=11)
    assert res.threshold == pytest.approx(999.0)
    # the reported F1 is what that threshold really achieves on val (everything anomalous)
    assert res.f1 == pytest.approx(2 / 3) and res.recall == 1.0


@pytest.mark.parametrize("mode", ["exact", "study"])
def test_no_anomalies_error_message(mode):
    with pytest.raises(CalibrationError) as ei:
        calibrate_threshold([0, 0, 0], [0.1, 0.2, 0.3], mode=mode)
    msg = str(ei.value)
    assert "no anomalous images" in msg and "3 normal, 0 anomalous" in msg
    assert "splits.val_anomaly_fraction" in msg and "on_degenerate" in msg


def test_no_normals_error_message():
    with pytest.raises(CalibrationError, match="no normal images.*0 normal, 2 anomalous"):
        calibrate_threshold([1, 1], [0.1, 0.2])


@pytest.mark.parametrize("on_degenerate", ["error", "fallback"])
def test_empty_validation_always_raises(on_degenerate):
    with pytest.raises(CalibrationError, match="empty"):
        calibrate_threshold([], [], on_degenerate=on_degenerate)


@pytest.mark.parametrize("mode", ["exact", "study"])
def test_fallback_no_anomalies(mode):
    scores = np.array([0.1, 0.25, 0.3], dtype=np.float32)
    res = calibrate_threshold([0, 0, 0], scores, mode=mode, on_degenerate="fallback")
    assert res.fallback == FALLBACK_NO_ANOMALIES == "no_anomalies_in_val: max normal score"
    assert res.threshold > 0.3 and res.threshold - float(scores.max()) < 1e-5
    assert not (scores >= res.threshold).any()  # every val normal predicted normal, also in float32
    assert res.n_candidates == 0 and res.mode == mode and res.to_dict()["fallback"] == res.fallback


def test_fallback_no_normals():
    res = calibrate_threshold([1, 1, 1], [0.4, 0.2, 0.9], on_degenerate="fallback")
    assert res.fallback == FALLBACK_NO_NORMALS and res.threshold == 0.2
    assert (res.recall, res.f1) == (1.0, 1.0)


def test_result_is_frozen_and_serialisable():
    res = calibrate_threshold([0, 1], [0.0, 1.0])
    assert isinstance(res, ThresholdResult)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.threshold = 3.0
    d = res.to_dict()
    for key in ("threshold", "f1", "precision", "recall", "mode", "n_candidates", "fallback"):
        assert key in d


@pytest.mark.parametrize("kw", [{"mode": "grid"}, {"on_degenerate": "ignore"}, {"mode": "study", "grid_size": 1}])
def test_bad_arguments(kw):
    with pytest.raises(ValueError):
        calibrate_threshold([0, 1], [0.0, 1.0], **kw)
