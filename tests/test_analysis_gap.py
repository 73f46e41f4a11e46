"""adloc.analysis.gap: per-class minus global with paired bootstrap intervals."""

import math

import numpy as np
import pytest

from adloc.analysis.figures import savefig
from adloc.analysis.gap import COLUMNS, gap_table, significant_gaps, wide_gap_table
from adloc.analysis.gap_panels import plot_gap
from adloc.errors import AdlocError
from adloc.metrics import auprc, auroc, image_metrics


def _model(method, scope, cls, labels, scores, pixel):
    im = image_metrics(labels, scores, 0.5)
    return {
        "method": method, "scope": scope, "class": cls,
        "threshold": {"threshold": 0.5, "mode": "exact", "fallback": None},
        "test": {k: im[k] for k in ("auroc", "auprc", "f1", "accuracy")},
        "pixel": {"pixel_auroc": pixel, "au_pro": None if pixel is None else pixel - 0.2},
    }


def _pair(method, cls, seed, shift_pc=1.5, shift_gl=0.5, pixel=(0.95, 0.9), n=60):
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 3 == 0).astype(np.int8)
    base = rng.normal(0, 1, n)
    s_pc = (base + shift_pc * labels).astype(np.float32)
    s_gl = (base + rng.normal(0, 0.3, n) + shift_gl * labels).astype(np.float32)
    paths = np.array([f"{cls}/test/{i:03d}.png" for i in range(n)])
    pc = {"test_scores": s_pc, "test_labels": labels, "test_paths": paths}
    gl = {"test_scores": s_gl, "test_labels": labels, "test_paths": paths.copy()}
    return {
        "per_class_metrics": _model(method, "per_class", cls, labels, s_pc, pixel[0]),
        "global_metrics": _model(method, "global", cls, labels, s_gl, pixel[1]),
        "per_class_scores": pc, "global_scores": gl,
    }


def test_values_and_intervals():
    pairs = [_pair("padim", "b", 1), _pair("patchcore", "a", 2),
             _pair("patchcore", "b", 3, pixel=(None, None))]
    df = gap_table(pairs, n_boot=300, seed=0)
    assert list(df.columns) == COLUMNS
    assert list(df["method"].unique()) == ["patchcore", "padim"]
    idx = df.set_index(["method", "class", "metric"])
    p = pairs[1]
    lab = p["per_class_scores"]["test_labels"]
    sa, sb = p["per_class_scores"]["test_scores"], p["global_scores"]["test_scores"]
    r = idx.loc[("patchcore", "a", "auroc")]
    assert r["gap"] == pytest.approx(auroc(lab, sa) - auroc(lab, sb))
    assert r["gap_low"] <= r["gap"] <= r["gap_high"]
    assert r["n_boot"] == 300 and r["n_valid"] == 300 and r["n_test"] == 60
    r = idx.loc[("patchcore", "a", "auprc")]
    assert r["gap"] == pytest.approx(auprc(lab, sa) - auprc(lab, sb))
    assert r["gap_low"] <= r["gap"] <= r["gap_high"]
    assert idx.loc[("patchcore", "a", "pixel_auroc"), "gap"] == pytest.approx(0.05)
    assert idx.loc[("patchcore", "a", "au_pro"), "gap"] == pytest.approx(0.05)
    # no CI for threshold-dependent and pixel metrics
    assert math.isnan(idx.loc[("patchcore", "a", "f1"), "gap_low"])
    # N/A pixel metrics stay NaN
    assert math.isnan(idx.loc[("patchcore", "b", "au_pro"), "gap"])
    # strong separation difference: interval excludes 0
    for metric in ("auroc", "auprc"):
        r = idx.loc[("patchcore", "a", metric)]
        assert bool(r["ci_excludes_zero"]) == bool(r["gap_low"] > 0 or r["gap_high"] < 0)
    # macro row: mean of the class gaps, NaN-aware
    m = idx.loc[("patchcore", "macro", "auroc"), "gap"]
    assert m == pytest.approx((idx.loc[("patchcore", "a", "auroc"), "gap"]
                               + idx.loc[("patchcore", "b", "auroc"), "gap"]) / 2)
    assert idx.loc[("patchcore", "macro", "pixel_auroc"), "gap"] == pytest.approx(0.05)
    # deterministic
    df2 = gap_table(pairs, n_boot=300, seed=0)
    assert df.equals(df2)


def test_identical_models_give_zero_gap():
    p = _pair("patchcore", "a", 5)
    p["global_scores"] = dict(p["per_class_scores"])
    p["global_metrics"] = dict(p["per_class_metrics"], scope="global")
    df = gap_table([p], n_boot=200, seed=1, macro=False).set_index("metric")
    for m in ("auroc", "auprc"):
        assert df.loc[m, "gap"] == 0 and df.loc[m, "gap_low"] == 0 and df.loc[m, "gap_high"] == 0
        assert not bool(df.loc[m, "ci_excludes_zero"])
    assert significant_gaps(df.reset_index()).empty


def test_no_bootstrap():
    df = gap_table([_pair("padim", "a", 0)], n_boot=0)
    assert df["gap_low"].isna().all() and (df["n_boot"] == 0).all()


def test_mismatched_test_images_raise():
    p = _pair("patchcore", "a", 0)
    p["global_scores"]["test_paths"] = p["global_scores"]["test_paths"][::-1].copy()
    with pytest.raises(AdlocError, match="same images in a different order"):
        gap_table([p], n_boot=10)
    p = _pair("patchcore", "a", 0)
    for k in ("test_paths", "test_scores", "test_labels"):
        p["global_scores"][k] = p["global_scores"][k][:-1]
    with pytest.raises(AdlocError, match="different test sets"):
        gap_table([p], n_boot=10)
    p = _pair("patchcore", "a", 0)
    p["global_scores"]["test_paths"] = np.array([s.replace("a/", "z/") for s in
                                                 p["global_scores"]["test_paths"]])
    with pytest.raises(AdlocError, match="position 0"):
        gap_table([p], n_boot=10)
    p = _pair("patchcore", "a", 0)
    p["global_metrics"]["class"] = "b"
    with pytest.raises(AdlocError, match="global metrics are for"):
        gap_table([p], n_boot=10)
    with pytest.raises(AdlocError, match="twice"):
        gap_table([_pair("patchcore", "a", 0), _pair("patchcore", "a", 1)], n_boot=0)


def test_stale_metrics_detected():
    p = _pair("patchcore", "a", 0)
    p["global_metrics"]["test"]["auroc"] -= 0.01
    with pytest.raises(AdlocError, match="stale"):
        gap_table([p], n_boot=10)


def test_tuple_pairs_and_injected_ci():
    p = _pair("patchcore", "a", 0)
    calls = []

    def fake_ci(labels, a, b, metric, n_boot, seed, alpha):
        calls.append((metric, n_boot, seed, alpha))
        return {"estimate": 0.0, "low": -1.0, "high": 1.0, "n_boot": n_boot, "n_valid": n_boot}

    tup = (p["per_class_metrics"], p["global_metrics"], p["per_class_scores"], p["global_scores"])
    df = gap_table([tup], n_boot=7, seed=3, ci_fn=fake_ci)
    assert [c[1:] for c in calls] == [(7, 3, 0.05)] * 2
    sel = (df["metric"] == "auroc") & (df["class"] == "a")
    assert (df.loc[sel, "gap_low"] == -1.0).all()


def test_plot_and_wide(tmp_path):
    df = gap_table([_pair("patchcore", "a", 0), _pair("patchcore", "b", 1, pixel=(None, None)),
                    _pair("padim", "a", 2)], n_boot=50)
    w = wide_gap_table(df)
    assert list(w.columns)[:3] == ["method", "class", "AUROC"]
    assert w.set_index(["method", "class"]).loc[("PatchCore", "b"), "AU-PRO"] == "N/A"
    fig = plot_gap(df)
    assert fig._suptitle.get_text().startswith("Per-class minus global")
    out = savefig(fig, tmp_path / "gap.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_load_pairs_from_result_paths(tmp_path):
    """The gap rule's inputs, laid out as results/<run>/{metrics,scores}/{method}/{scope}/{class}:
    one pair per method and class, in (method, class) order; a missing partner names the file."""
    from adloc.analysis.gap import load_pairs, result_key
    from adloc.io import save_npz, write_json

    metrics, scores = [], []
    for method in ("patchcore", "padim"):
        for cls in ("b_cls", "a_cls"):
            p = _pair(method, cls, seed=len(metrics))
            for scope, m, s in ((cls, p["per_class_metrics"], p["per_class_scores"]),
                                ("global", p["global_metrics"], p["global_scores"])):
                metrics.append(tmp_path / "metrics" / method / scope / f"{cls}.json")
                scores.append(tmp_path / "scores" / method / scope / f"{cls}.npz")
                write_json(metrics[-1], m)
                save_npz(scores[-1], **s)
    assert result_key(scores[0]) == ("patchcore", "b_cls", "b_cls")
    pairs = load_pairs(metrics, scores)
    got = [(p["per_class_metrics"]["method"], p["per_class_metrics"]["class"],
            p["global_metrics"]["scope"]) for p in pairs]
    assert got == [("padim", "a_cls", "global"), ("padim", "b_cls", "global"),
                   ("patchcore", "a_cls", "global"), ("patchcore", "b_cls", "global")]
    np.testing.assert_array_equal(pairs[0]["global_scores"]["test_labels"],
                                  pairs[0]["per_class_scores"]["test_labels"])
    assert set(gap_table(pairs, n_boot=0)["method"]) == {"patchcore", "padim"}
    without = [f for f in metrics if f != tmp_path / "metrics" / "padim" / "global" / "a_cls.json"]
    with pytest.raises(AdlocError, match="no metrics file for padim/global/a_cls"):
        load_pairs(without, scores)


def test_absolute_unified_gap_differs_only_in_threshold_metrics(tmp_path):
    pairs = []
    for cls, seed in (("a", 0), ("b", 1)):
        p = _pair("patchcore", cls, seed)
        ab = dict(p["global_metrics"], scope="unified_abs")
        ab["test"] = dict(ab["test"], f1=ab["test"]["f1"] - 0.1, accuracy=ab["test"]["accuracy"] - 0.05)
        p["unified_abs_metrics"] = ab
        pairs.append(p)
    df = gap_table(pairs, n_boot=20).set_index(["class", "metric"])
    f1 = df.loc[("a", "f1")]
    assert f1["unified_abs"] == pytest.approx(f1["global"] - 0.1)
    assert f1["gap_abs"] == pytest.approx(f1["gap"] + 0.1)
    auroc_row = df.loc[("a", "auroc")]  # same scores: threshold-free metrics coincide
    assert auroc_row["unified_abs"] == auroc_row["global"] and auroc_row["gap_abs"] == auroc_row["gap"]
    assert df.loc[("macro", "accuracy"), "gap_abs"] == pytest.approx(df.loc[("macro", "accuracy"), "gap"] + 0.05)
    w = wide_gap_table(df.reset_index())
    assert "F1 vs one threshold" in w.columns
    savefig(plot_gap(df.reset_index()), tmp_path / "gap_abs.png")
    # an absolute-unified dict of another class is refused
    bad = _pair("patchcore", "c", 2)
    bad["unified_abs_metrics"] = dict(pairs[0]["unified_abs_metrics"])
    with pytest.raises(AdlocError, match="absolute-unified metrics are for"):
        gap_table([bad], n_boot=0)


def test_macro_rows_say_how_many_classes_they_cover():
    """A macro gap over fewer than all classes (a metric N/A for some) says so (issue 13 §5)."""
    pairs = [_pair("patchcore", "a", 2), _pair("patchcore", "b", 3, pixel=(None, None))]
    df = gap_table(pairs, n_boot=0)
    macro = df[df["class"] == "macro"].set_index("metric")
    assert macro.at["auroc", "n_classes"] == 2
    assert macro.at["pixel_auroc", "n_classes"] == 1
    per = df[(df["class"] == "b")].set_index("metric")
    assert per.at["pixel_auroc", "n_classes"] == 0 and per.at["auroc", "n_classes"] == 1
    assert macro.at["pixel_auroc", "gap"] == pytest.approx(df[(df["class"] == "a") & (
        df["metric"] == "pixel_auroc")]["gap"].item())
    wide = wide_gap_table(df).set_index("class")
    assert wide.at["macro", "pixel AUROC"].endswith("(1/2 classes)")
    assert "classes" not in wide.at["macro", "AUROC"]
