"""Image-level metrics against scikit-learn."""

import math

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from adloc.metrics import auprc, auroc, confusion_at, image_metrics, rank_auroc
from adloc.metrics.image import ap_unchecked


def _case(seed, n=60, ties=False):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < rng.uniform(0.2, 0.8)).astype(int)
    labels[0], labels[1] = 0, 1  # both classes
    scores = rng.normal(size=n) + labels * rng.uniform(0, 2)
    if ties:
        scores = np.round(scores, 1)
    return labels, scores


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("ties", [False, True])
def test_ranking_metrics_match_sklearn(seed, ties):
    labels, scores = _case(seed, ties=ties)
    assert auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert rank_auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert auprc(labels, scores) == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    assert ap_unchecked(labels.astype(bool), scores) == pytest.approx(
        average_precision_score(labels, scores), abs=1e-12
    )


@pytest.mark.parametrize("seed", range(12))
def test_confusion_metrics_match_sklearn(seed):
    labels, scores = _case(seed, ties=True)
    rng = np.random.default_rng(100 + seed)
    # thresholds: an exact score value (tests >=), a random value, above all, below all
    for thr in (
        float(rng.choice(scores)),
        float(rng.uniform(scores.min(), scores.max())),
        float(scores.max()) + 1,
        float(scores.min()) - 1,
    ):
        pred = (scores >= thr).astype(int)
        m = image_metrics(labels, scores, thr)
        tn, fp, fn, tp = confusion_matrix(labels, pred, labels=[0, 1]).ravel()
        assert (m["tp"], m["tn"], m["fp"], m["fn"]) == (tp, tn, fp, fn)
        assert confusion_at(labels, scores, thr) == {"tp": tp, "tn": tn, "fp": fp, "fn": fn}
        assert m["accuracy"] == pytest.approx(accuracy_score(labels, pred), abs=1e-12)
        assert m["precision"] == pytest.approx(precision_score(labels, pred, zero_division=np.nan), abs=1e-12, nan_ok=True)
        assert m["recall"] == pytest.approx(recall_score(labels, pred, zero_division=np.nan), abs=1e-12, nan_ok=True)
        assert m["f1"] == pytest.approx(f1_score(labels, pred, zero_division=np.nan), abs=1e-12, nan_ok=True)
        assert m["specificity"] == pytest.approx(tn / (tn + fp), abs=1e-12)
        assert m["n"] == labels.size and m["n_anomalous"] == labels.sum()
        assert m["n_normal"] == (labels == 0).sum() and m["note"] is None
        assert m["auroc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
        assert m["auprc"] == pytest.approx(average_precision_score(labels, scores), abs=1e-12)


def test_prediction_is_score_greater_or_equal():
    m = image_metrics([0, 1], [0.5, 0.7], threshold=0.7)
    assert (m["tp"], m["fp"]) == (1, 0)
    m = image_metrics([0, 1], [0.5, 0.7], threshold=0.5)
    assert (m["tp"], m["fp"]) == (1, 1)


def test_zero_over_zero_is_undefined():
    # nothing predicted anomalous: precision 0/0 -> NaN, but f1 0/(0+0+fn) = 0 is measured
    m = image_metrics([0, 1, 1], [0.1, 0.2, 0.3], threshold=5.0)
    assert math.isnan(m["precision"]) and m["recall"] == 0.0 and m["f1"] == 0.0
    assert m["specificity"] == 1.0
    # only normal images: recall and f1 are 0/0 -> NaN (N/A), not a 0 that reads as a failure
    m = image_metrics([0, 0], [0.1, 0.2], threshold=5.0)
    assert math.isnan(m["recall"]) and math.isnan(m["f1"]) and math.isnan(m["precision"])
    assert m["accuracy"] == 1.0
    # ... also with false positives: no anomaly to find, so recall and F1 stay undefined
    m = image_metrics([0, 0], [0.1, 0.2], threshold=0.15)
    assert math.isnan(m["recall"]) and m["precision"] == 0.0 and math.isnan(m["f1"])
    # only anomalous images: specificity 0/0 -> NaN
    m = image_metrics([1, 1], [0.1, 0.2], threshold=0.0)
    assert math.isnan(m["specificity"]) and m["f1"] == 1.0


@pytest.mark.parametrize("labels", [[0, 0, 0], [1, 1], []])
def test_one_class_gives_nan_with_note(labels):
    scores = np.linspace(0, 1, len(labels))
    m = image_metrics(labels, scores, 0.5)
    assert math.isnan(m["auroc"]) and math.isnan(m["auprc"])
    assert isinstance(m["note"], str) and "NaN" in m["note"]
    assert math.isnan(auroc(labels, scores)) and math.isnan(auprc(labels, scores))
    assert math.isnan(rank_auroc(labels, scores))


def test_bool_labels_and_float32_scores():
    labels = np.array([False, True, True, False])
    scores = np.array([0.1, 0.9, 0.4, 0.5], dtype=np.float32)
    assert auroc(labels, scores) == roc_auc_score(labels, scores)
    assert image_metrics(labels, scores, np.float32(0.4))["tp"] == 2


@pytest.mark.parametrize(
    "labels,scores,match",
    [
        ([0, 2], [0.1, 0.2], "0 \\(normal\\) or 1"),
        ([0, 1], [0.1, np.nan], "NaN or infinite"),
        ([0, 1, 1], [0.1, 0.2], "differ in length"),
        ([[0, 1]], [[0.1, 0.2]], "1-D"),
    ],
)
def test_bad_inputs_raise(labels, scores, match):
    with pytest.raises(ValueError, match=match):
        image_metrics(labels, scores, 0.5)


def test_non_finite_threshold_raises():
    with pytest.raises(ValueError, match="threshold"):
        confusion_at([0, 1], [0.1, 0.2], float("nan"))
