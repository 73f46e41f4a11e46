"""Pixel AP, pixel / image F1-max and mAD against scikit-learn and brute force (issue 22 §2)."""

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_recall_curve

from adloc.metrics import ap_f1max_sorted, au_pro, pixel_auroc, pixel_metrics
from adloc.pipeline import mad


def _brute_f1_max(lab, sc):
    best = 0.0
    for t in np.unique(sc):
        pred = sc >= t
        tp = np.sum(pred & lab)
        fp = np.sum(pred & ~lab)
        fn = np.sum(~pred & lab)
        best = max(best, 2 * tp / (2 * tp + fp + fn))
    return best


def _split(lab, sc):
    return np.sort(sc[~lab]), np.sort(sc[lab])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("levels", [None, 7])  # continuous scores, heavy ties
def test_ap_and_f1_max_equal_sklearn_and_brute_force(seed, levels):
    rng = np.random.default_rng(seed)
    n = 300
    lab = rng.random(n) < 0.3
    sc = rng.normal(size=n) + lab
    if levels:
        sc = np.round(sc * levels / 4) / levels
    ap, f1 = ap_f1max_sorted(*_split(lab, sc))
    assert ap == pytest.approx(average_precision_score(lab, sc), rel=1e-12, abs=1e-12)
    p, r, _ = precision_recall_curve(lab, sc)
    sk_f1 = np.max(np.where(p + r > 0, 2 * p * r / np.where(p + r > 0, p + r, 1), 0))
    assert f1 == pytest.approx(sk_f1, rel=1e-12)
    assert f1 == pytest.approx(_brute_f1_max(lab, sc), rel=1e-12)


def test_ap_f1_max_undefined_with_one_class():
    assert all(math.isnan(v) for v in ap_f1max_sorted(np.array([0.1, 0.2]), np.array([])))
    assert all(math.isnan(v) for v in ap_f1max_sorted(np.array([]), np.array([0.3])))


def test_ap_f1_max_chunks_agree(monkeypatch):
    import adloc.metrics.pixel as P

    rng = np.random.default_rng(3)
    lab = rng.random(5000) < 0.2
    sc = np.round(rng.normal(size=5000) + lab, 2)
    whole = P.ap_f1max_sorted(*_split(lab, sc))
    monkeypatch.setattr(P, "_CHUNK", 17)
    chunked = P.ap_f1max_sorted(*_split(lab, sc))
    assert chunked[1] == whole[1]
    assert chunked[0] == pytest.approx(whole[0], rel=1e-12)


def test_pixel_metrics_one_pass_equals_sklearn_on_flattened_pixels():
    rng = np.random.default_rng(0)
    masks = np.zeros((5, 24, 24), dtype=bool)
    masks[1, 3:9, 4:12] = True
    masks[2, 10:20, 10:14] = True
    masks[2, 0:2, 0:2] = True
    maps = (rng.random((5, 24, 24)) + 0.7 * masks).astype(np.float32)
    maps = np.round(maps, 2)  # ties across classes
    px = pixel_metrics(masks, maps, fpr_limit=0.3)
    lab, sc = masks.ravel(), maps.ravel().astype(np.float64)
    assert px["pixel_ap"] == pytest.approx(average_precision_score(lab, sc), rel=1e-12)
    assert px["pixel_f1_max"] == pytest.approx(_brute_f1_max(lab, sc), rel=1e-12)
    # the shared pass leaves the existing metrics exactly as the separate functions give them
    assert px["pixel_auroc"] == pixel_auroc(masks, maps)
    assert px["au_pro"] == au_pro(masks, maps, fpr_limit=0.3)


def test_pixel_ap_f1_undefined_without_anomalous_pixels():
    px = pixel_metrics(np.zeros((2, 8, 8), bool), np.random.default_rng(0).random((2, 8, 8)))
    assert math.isnan(px["pixel_ap"]) and math.isnan(px["pixel_f1_max"])


def _result(**over):
    r = {"test": {"auroc": 0.9, "auprc": 0.8, "f1_max": 0.7},
         "pixel": {"pixel_auroc": 0.95, "pixel_ap": 0.5, "pixel_f1_max": 0.55, "au_pro": 0.85,
                   "pro_mode": "reference", "fpr_limit": 0.3}}
    for k, v in over.items():
        r["pixel" if k in r["pixel"] else "test"][k] = v
    return r


def test_mad_is_the_mean_of_seven_and_na_when_one_is_undefined():
    assert mad(_result()) == pytest.approx((0.9 + 0.8 + 0.7 + 0.95 + 0.5 + 0.55 + 0.85) / 7)
    assert mad(_result(pixel_ap=None)) is None
    assert mad(_result(f1_max=None)) is None
    assert mad(_result(fpr_limit=0.05)) is None  # mAD is defined with AU-PRO@0.3
    assert mad(_result(pro_mode="study")) is None


def _maps_and_masks(seed):
    rng = np.random.default_rng(seed)
    masks = np.zeros((5, 24, 24), bool)
    masks[1, 3:9, 4:12] = True
    masks[2, 10:20, 10:14] = True
    masks[2, 1:3, 1:3] = True
    maps = rng.random((5, 24, 24)).astype(np.float32) + 0.6 * masks
    return masks, maps


@pytest.mark.parametrize("seed", range(3))
def test_au_pro_strict_limit_equals_au_pro_at_that_limit(seed):
    from adloc.metrics import au_pro_at

    masks, maps = _maps_and_masks(seed)
    px = pixel_metrics(masks, maps, fpr_limit=0.3, strict_limit=0.05)
    assert px["au_pro"] == au_pro(masks, maps, fpr_limit=0.3)
    assert px["au_pro_strict"] == au_pro(masks, maps, fpr_limit=0.05)
    assert au_pro_at(masks, maps, [0.3, 0.05]) == [px["au_pro"], px["au_pro_strict"]]
    # a stricter limit averages the PRO curve over its steepest part: not the same figure
    assert px["au_pro_strict"] != px["au_pro"]
    assert math.isnan(pixel_metrics(masks, maps)["au_pro_strict"])  # not asked for


def test_pipeline_reports_au_pro_strict_in_every_mode(tmp_path):
    """evaluation.pro_fpr_limit_strict reaches the metrics JSON for each pro_mode / image set."""
    from adloc import pipeline as P

    masks, maps = _maps_and_masks(7)
    labels = masks.reshape(5, -1).any(1)
    for mode, images in (("reference", "all"), ("reference", "anomalous"), ("study", "all")):
        cfg = {"pro_mode": mode, "pixel_auroc_images": images, "pro_fpr_limit": 0.3,
               "pro_fpr_limit_strict": 0.05}
        out = P.pixel_metrics_from_arrays(masks, maps, labels, cfg)
        assert out["fpr_limit_strict"] == 0.05
        if mode == "reference":
            assert out["au_pro_strict"] == pytest.approx(au_pro(masks, maps, fpr_limit=0.05))
        else:
            from adloc.metrics import au_pro_study

            assert out["au_pro_strict"] == pytest.approx(au_pro_study(masks[labels], maps[labels], fpr_limit=0.05))
        cfg["pro_fpr_limit_strict"] = None
        assert P.pixel_metrics_from_arrays(masks, maps, labels, cfg)["au_pro_strict"] is None
