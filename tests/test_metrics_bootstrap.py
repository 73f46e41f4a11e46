"""Seeded image bootstrap: intervals, pairing, skipped replicates, the vectorised AUROC path."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from adloc.metrics import auprc, auroc, bootstrap_ci, paired_gap_ci, rank_auroc, resample_indices


def _data(n, seed=0, shift=1.0):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.5).astype(int)
    labels[:2] = [0, 1]
    scores = rng.normal(size=n) + shift * labels
    return labels, scores


@pytest.mark.parametrize("metric", [auroc, auprc, "auroc", "auprc"])
def test_interval_contains_estimate(metric):
    labels, scores = _data(100)
    ci = bootstrap_ci(labels, scores, metric=metric, n_boot=500, seed=0)
    assert ci["low"] <= ci["estimate"] <= ci["high"]
    assert ci["n_boot"] == 500 and ci["n_valid"] == 500 and ci["alpha"] == 0.05
    ref = roc_auc_score if metric in (auroc, "auroc") else average_precision_score
    assert ci["estimate"] == pytest.approx(ref(labels, scores), abs=1e-12)


def test_interval_narrows_as_n_grows():
    widths = []
    for n in (40, 160, 640):
        labels, scores = _data(n, seed=n)
        ci = bootstrap_ci(labels, scores, n_boot=400, seed=1)
        widths.append(ci["high"] - ci["low"])
    assert widths[0] > widths[1] > widths[2]


def test_same_seed_same_interval_other_seed_differs():
    labels, scores = _data(80)
    a = bootstrap_ci(labels, scores, n_boot=300, seed=7)
    assert bootstrap_ci(labels, scores, n_boot=300, seed=7) == a
    assert bootstrap_ci(labels, scores, n_boot=300, seed=8) != a
    assert np.array_equal(resample_indices(labels, 5, seed=3), resample_indices(labels, 5, seed=3))


@pytest.mark.parametrize("metric", [auroc, auprc])
def test_fast_paths_equal_generic_loop_with_sklearn(metric):
    # the vectorised AUROC and the unchecked AP must agree with plain sklearn calls per replicate
    labels, scores = _data(50, seed=3)
    scores = np.round(scores, 1)  # ties, also duplicated by resampling
    slow = roc_auc_score if metric is auroc else average_precision_score
    fast_ci = bootstrap_ci(labels, scores, metric=metric, n_boot=200, seed=5)
    slow_ci = bootstrap_ci(labels, scores, metric=lambda y, s: slow(y, s), n_boot=200, seed=5)
    for k in ("estimate", "low", "high", "n_valid"):
        assert fast_ci[k] == pytest.approx(slow_ci[k], abs=1e-12)


def test_paired_gap_of_identical_scores_is_exactly_zero():
    labels, scores = _data(60)
    for metric in (auroc, auprc):
        gap = paired_gap_ci(labels, scores, scores.copy(), metric=metric, n_boot=300, seed=0)
        assert gap["estimate"] == 0.0 and gap["low"] == 0.0 and gap["high"] == 0.0
        assert gap["n_valid"] == 300


def test_paired_gap_uses_same_indices_for_both():
    labels, a = _data(100, seed=1, shift=2.0)
    b = a + np.random.default_rng(9).normal(scale=1.5, size=a.size)  # a noisier copy of a
    gap = paired_gap_ci(labels, a, b, n_boot=500, seed=2)
    assert gap["estimate"] == pytest.approx(roc_auc_score(labels, a) - roc_auc_score(labels, b))
    assert gap["estimate_a"] - gap["estimate_b"] == pytest.approx(gap["estimate"])
    assert gap["low"] <= gap["estimate"] <= gap["high"]
    # paired: the gap's replicates are differences on the same resample, so its interval is
    # narrower than what independent resampling of the two AUROCs would give
    ia = bootstrap_ci(labels, a, n_boot=500, seed=2)
    ib = bootstrap_ci(labels, b, n_boot=500, seed=3)
    unpaired_width = np.hypot(ia["high"] - ia["low"], ib["high"] - ib["low"])
    assert gap["high"] - gap["low"] < unpaired_width
    # and it equals the generic (loop) computation with the same indices
    loop = paired_gap_ci(labels, a, b, metric=lambda y, s: roc_auc_score(y, s), n_boot=500, seed=2)
    assert loop["low"] == pytest.approx(gap["low"], abs=1e-12)
    assert loop["high"] == pytest.approx(gap["high"], abs=1e-12)


def test_replicates_lacking_a_class_are_skipped_and_counted():
    labels = np.array([1, 0, 0, 0, 0, 0])  # one anomaly: many replicates miss it
    scores = np.array([0.9, 0.1, 0.2, 0.3, 0.4, 0.95])
    idx = resample_indices(labels, 400, seed=0)
    n_both = int(sum(0 < labels[i].sum() < labels.size for i in idx))
    ci = bootstrap_ci(labels, scores, n_boot=400, seed=0)
    assert 0 < ci["n_valid"] == n_both < 400
    generic = bootstrap_ci(labels, scores, metric=lambda y, s: roc_auc_score(y, s), n_boot=400, seed=0)
    assert generic["n_valid"] == n_both
    strat = bootstrap_ci(labels, scores, n_boot=400, seed=0, stratify=True)
    assert strat["n_valid"] == 400


def test_no_valid_replicates_gives_nan_interval():
    ci = bootstrap_ci([0, 0, 0], [0.1, 0.2, 0.3], n_boot=50)
    assert np.isnan(ci["estimate"]) and np.isnan(ci["low"]) and np.isnan(ci["high"]) and ci["n_valid"] == 0
    ci = bootstrap_ci([0, 1], [0.1, 0.2], n_boot=0)
    assert ci["estimate"] == 1.0 and np.isnan(ci["low"]) and ci["n_valid"] == 0


def test_auroc_replicates_are_one_vectorised_pass(monkeypatch):
    """AUROC intervals take one pass over all replicates (no per-replicate AUROC call); the
    time this saves is measured by benchmarks/bench_metrics.py --bootstrap, not asserted here."""
    import adloc.metrics.bootstrap as B

    calls = {"vectorised": 0, "per_replicate": 0}
    vec, per = B._auroc_replicates, B.rank_auroc_unchecked

    def count_vec(*a):
        calls["vectorised"] += 1
        return vec(*a)

    def count_per(*a):
        calls["per_replicate"] += 1
        return per(*a)

    monkeypatch.setattr(B, "_auroc_replicates", count_vec)
    monkeypatch.setattr(B, "rank_auroc_unchecked", count_per)
    labels, scores = _data(100)
    ci = bootstrap_ci(labels, scores, metric=auroc, n_boot=1000, seed=0)
    gap = paired_gap_ci(labels, scores, scores[::-1].copy(), metric=auroc, n_boot=1000, seed=0)
    assert calls == {"vectorised": 3, "per_replicate": 0}
    assert ci["n_valid"] == 1000 and gap["n_valid"] == 1000
    # the vectorised replicates equal the per-replicate definition
    idx = resample_indices(labels, 50, seed=3)
    lab = np.asarray(labels).astype(bool)
    want = [roc_auc_score(lab[ii], scores[ii]) for ii in idx]
    got = vec(lab, scores, B._multiplicities(idx, lab.size))
    assert np.allclose(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kw", [{"n_boot": -1}, {"alpha": 0.0}, {"alpha": 1.0}, {"metric": "f1"}])
def test_bad_arguments(kw):
    labels, scores = _data(10)
    with pytest.raises(ValueError):
        bootstrap_ci(labels, scores, **kw)
