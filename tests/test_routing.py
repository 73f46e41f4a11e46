"""The routed scope (issue 20 §3): class routing by a k-NN vote, metrics at the predicted
class's threshold, its tables, figure, gap columns and summary lines; and the scope plans that
calibrate.py / evaluate.py follow (issue 20 §4)."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adloc.analysis.figures import savefig
from adloc.analysis.gap import COLUMNS, gap_table, wide_gap_table
from adloc.analysis.gap_panels import plot_gap
from adloc.analysis.routing import plot_routing, routing_sentences, routing_tables
from adloc.errors import AdlocError
from adloc.metrics import image_metrics
from adloc.io import write_json
from adloc.routing import (class_thresholds, evaluate_routed, predicted_for, route,
                           routed_metrics, routing_record)
from adloc.scopes import MODELS, SCOPES, THRESHOLD_TYPES, calibration_plan, evaluation_plan, scope_fields
from adloc.workflow import as_list


def test_route_predicts_the_nearest_class_from_the_features_alone():
    # class a around (0, 0), class b around (10, 0); no test label is passed
    train = np.array([[0, 0], [0, 1], [1, 0], [10, 0], [10, 1], [11, 0]], float)
    labels = ["a", "a", "a", "b", "b", "b"]
    test = np.array([[0.2, 0.2], [9.5, 0.5], [6.5, 0.0], [4.0, 0.0]])
    pred, votes = route(train, labels, test, k=3, classes=["a", "b"])
    assert pred.tolist() == ["a", "b", "b", "a"]
    assert votes.tolist() == [[3, 0], [0, 3], [0, 3], [3, 0]]
    # k above the training set: capped (every image votes), majority still wins
    pred, votes = route(train[:5], labels[:5], test, k=50, classes=["a", "b"])
    assert pred.tolist() == ["a", "a", "a", "a"] and votes.sum(axis=1).tolist() == [5] * 4


def test_route_breaks_ties_by_nearer_voters_then_class_order():
    train = np.array([[0.0], [3.0], [10.0]])
    # k=2: one vote each for a (at 0) and b (at 3); the query at 1.0 is nearer a in sum
    pred, votes = route(train, ["a", "b", "c"], np.array([[1.0], [2.0]]), k=2, classes=["a", "b", "c"])
    assert votes.tolist() == [[1, 1, 0], [1, 1, 0]]
    assert pred.tolist() == ["a", "b"]
    # exactly in between: equal votes and distances -> the class listed first
    pred, _ = route(train, ["a", "b", "c"], np.array([[1.5]]), k=2, classes=["b", "a", "c"])
    assert pred.tolist() == ["b"]
    pred2, _ = route(train, ["a", "b", "c"], np.array([[1.5]]), k=2, classes=["b", "a", "c"])
    assert pred2.tolist() == pred.tolist()  # deterministic


def test_route_refuses_bad_input_in_one_line():
    with pytest.raises(AdlocError, match="routing.k"):
        route(np.zeros((2, 2)), ["a", "a"], np.zeros((1, 2)), k=0, classes=["a"])
    with pytest.raises(AdlocError, match="do not match"):
        route(np.zeros((2, 2)), ["a", "a"], np.zeros((1, 3)), k=1, classes=["a"])
    with pytest.raises(AdlocError, match="not among"):
        route(np.zeros((2, 2)), ["a", "z"], np.zeros((1, 2)), k=1, classes=["a"])


def _global_result(labels, scores, thr):
    im = image_metrics(labels, scores, thr)
    return {"threshold": {"threshold": thr, "mode": "exact", "fallback": None},
            "test": {**im, "f1_max": 0.9, "auroc_ci": {"low": 0.1, "high": 0.9}},
            "pixel": {"pixel_auroc": 0.8, "au_pro": 0.7}, "mad": 0.5, "val": {"n": 4},
            "provenance": {"backbone": "x"}, "method": "m", "scope": "global", "model": "global",
            "class": "a"}


def test_routed_metrics_use_the_predicted_class_threshold():
    # class a's threshold 0.5, class b's 0.9. Image 1 (anomalous, score 0.7) is mis-routed to
    # b: at b's threshold it is missed (fn), at a's it would have been caught.
    labels = np.array([0, 1, 1, 0], np.int8)
    scores = np.array([0.2, 0.7, 0.95, 0.6], np.float32)
    sc = {"test_labels": labels, "test_scores": scores}
    thresholds = {"a": {"threshold": 0.5, "mode": "exact", "fallback": None},
                  "b": {"threshold": 0.9, "mode": "exact", "fallback": None}}
    gl = _global_result(labels, scores, 0.5)
    assert (gl["test"]["tp"], gl["test"]["fn"], gl["test"]["fp"]) == (2, 0, 1)
    right = routed_metrics(gl, sc, ["a", "a", "a", "a"], thresholds, k=5, feature_set="f")
    assert {k: right["test"][k] for k in ("tp", "fn", "fp", "tn", "f1")} == {
        k: gl["test"][k] for k in ("tp", "fn", "fp", "tn", "f1")}
    wrong = routed_metrics(gl, sc, ["a", "b", "a", "b"], thresholds, k=5, feature_set="f")
    t = wrong["test"]
    assert (t["tp"], t["fn"], t["fp"], t["tn"]) == (1, 1, 0, 2)  # image 3 (0.6) now below 0.9
    assert t["f1"] == pytest.approx(2 / 3) and t["accuracy"] == pytest.approx(0.75)
    assert t["threshold"] is None and wrong["threshold"]["threshold"] is None
    assert wrong["threshold"]["routed"] == {"a": 0.5, "b": 0.9}
    assert wrong["routing"]["counts"] == {"a": 2, "b": 2}
    # threshold-free metrics and pixel metrics are the global scope's, not recomputed
    for key in ("auroc", "auprc", "f1_max", "auroc_ci"):
        assert t[key] == gl["test"][key]
    assert wrong["pixel"] == gl["pixel"] and wrong["mad"] == gl["mad"]
    assert gl["test"]["tp"] == 2  # the global result is not changed
    with pytest.raises(AdlocError, match="no global threshold"):
        routed_metrics(gl, sc, ["a", "c", "a", "a"], thresholds, k=5, feature_set="f")


def _record():
    test = {"a": ["a/1.png", "a/2.png", "a/3.png", "a/4.png"], "b": ["b/1.png", "b/2.png"]}
    pred = {"a": ["a", "a", "b", "a"], "b": ["b", "b"]}
    return routing_record(test, pred, ["a", "b"], 3, "bb-imagenet", {"a": 5, "b": 5})


def test_routing_record_tables_and_lookup():
    rec = _record()
    assert rec["n"] == 6 and rec["n_correct"] == 5 and rec["accuracy"] == pytest.approx(5 / 6)
    assert predicted_for(rec, "a", ["a/3.png", "a/1.png"]) == ["b", "a"]
    with pytest.raises(AdlocError, match="stale"):
        predicted_for(rec, "a", ["a/9.png"])
    splits = {"a": {"splits": {"test": [{"path": "a/1.png", "label": 0}, {"path": "a/2.png", "label": 0},
                                         {"path": "a/3.png", "label": 1}, {"path": "a/4.png", "label": 1}]}},
              "b": {"splits": {"test": [{"path": "b/1.png", "label": 0}, {"path": "b/2.png", "label": 1}]}}}
    acc, conf = routing_tables(rec, splits)
    a = acc.set_index("class")
    assert a.at["a", "accuracy"] == pytest.approx(0.75) and a.at["b", "accuracy"] == 1.0
    assert a.at["all", "accuracy"] == pytest.approx(5 / 6) and a.at["macro", "accuracy"] == pytest.approx(0.875)
    assert a.at["a", "accuracy_anomalous"] == pytest.approx(0.5) and a.at["a", "accuracy_normal"] == 1.0
    assert a.at["all", "accuracy_anomalous"] == pytest.approx(2 / 3)
    c = conf.set_index(["true_class", "predicted_class"])
    assert c.at[("a", "b"), "n"] == 1 and c.at[("a", "b"), "percent"] == pytest.approx(25.0)
    assert c.at[("b", "a"), "n"] == 0
    lines = routing_sentences({"bb-imagenet": acc}, 3, {"bb-imagenet": ["patchcore"]})
    assert len(lines) == 1
    assert "5 of 6 test images (83.3%)" in lines[0] and "a 75.0% (3/4)" in lines[0]
    assert "3-NN" in lines[0] and "Least well routed: a" in lines[0]


def _threshold_file(path, classes, value):
    write_json(path, {"threshold": {"threshold": value, "mode": "exact", "fallback": None},
                      "classes": list(classes), "val": {}, "method": "m", "model": "global",
                      "scope": "global"})
    return str(path)


def test_evaluate_routed_reads_the_routing_file_and_each_class_threshold(tmp_path):
    """The routed job of rule evaluate_global (scripts/evaluate.py is glue): the routing file's
    predictions for class a, each image at its predicted class's global threshold."""
    rec = _record()  # a/3.png routed to b
    write_json(tmp_path / "routing.json", rec)
    files = [_threshold_file(tmp_path / "a.json", ["a"], 0.5), _threshold_file(tmp_path / "b.json", ["b"], 0.9)]
    assert class_thresholds(files) == {"a": {"threshold": 0.5, "mode": "exact", "fallback": None},
                                       "b": {"threshold": 0.9, "mode": "exact", "fallback": None}}
    labels = np.array([0, 0, 1, 1], np.int8)
    scores = np.array([0.2, 0.6, 0.7, 0.95], np.float32)
    sc = {"test_labels": labels, "test_scores": scores,
          "test_paths": np.array(["a/1.png", "a/2.png", "a/3.png", "a/4.png"])}
    gl = _global_result(labels, scores, 0.5)
    got = evaluate_routed(gl, sc, "a", tmp_path / "routing.json", files)
    assert got == routed_metrics(gl, sc, ["a", "a", "b", "a"], class_thresholds(files), k=3,
                                 feature_set="bb-imagenet")
    assert (got["test"]["tp"], got["test"]["fn"], got["test"]["fp"]) == (1, 1, 1)
    pooled = _threshold_file(tmp_path / "pooled.json", ["a", "b"], 0.7)
    with pytest.raises(AdlocError, match="not one class's"):
        class_thresholds(files + [pooled])
    with pytest.raises(AdlocError, match="two threshold files for class a"):
        class_thresholds(files + [_threshold_file(tmp_path / "a2.json", ["a"], 0.4)])


@pytest.mark.parametrize("n", [3, 15])
def test_routing_figure_is_drawn_for_3_and_15_classes(tmp_path, n):
    classes = [f"class_{i:02d}" for i in range(n)]
    rng = np.random.default_rng(0)
    test = {c: [f"{c}/{j}.png" for j in range(20)] for c in classes}
    pred = {c: [c if rng.random() < 0.8 else classes[int(rng.integers(n))] for _ in range(20)]
            for c in classes}
    rec = routing_record(test, pred, classes, 5, "wide_resnet50_2-imagenet", {c: 50 for c in classes})
    acc, conf = routing_tables(rec)
    fig = plot_routing(conf, rec["feature_set"], 5, acc)
    out = savefig(fig, tmp_path / f"routing_{n}.png")
    assert out.stat().st_size > 10_000
    assert "routed to their own class" in fig.axes[0].get_title()


def _pair(cls, seed, n=60):
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 3 == 0).astype(np.int8)
    base = rng.normal(0, 1, n)
    s_pc = (base + 1.5 * labels).astype(np.float32)
    s_gl = (base + rng.normal(0, 0.3, n) + 0.8 * labels).astype(np.float32)
    paths = np.array([f"{cls}/test/{i:03d}.png" for i in range(n)])

    def metrics(scope, sc, thr):
        im = image_metrics(labels, sc, thr)
        return {"method": "m", "scope": scope, "class": cls,
                "threshold": {"threshold": thr, "mode": "exact", "fallback": None},
                "test": {k: im[k] for k in ("auroc", "auprc", "f1", "accuracy")},
                "pixel": {"pixel_auroc": 0.9, "au_pro": 0.8}}

    gl = metrics("global", s_gl, 0.5)
    routed_to = np.where(np.arange(n) % 5 == 0, "other", cls)  # every 5th image mis-routed
    thresholds = {cls: {"threshold": 0.5, "mode": "exact", "fallback": None},
                  "other": {"threshold": 2.0, "mode": "exact", "fallback": None}}
    rt = routed_metrics(dict(gl, test=dict(gl["test"], tp=0)), {"test_labels": labels, "test_scores": s_gl},
                        routed_to.tolist(), thresholds, 3, "f")
    rt.update(scope="routed")
    return {"per_class_metrics": metrics("per_class", s_pc, 0.5), "global_metrics": gl,
            "per_class_scores": {"test_scores": s_pc, "test_labels": labels, "test_paths": paths},
            "global_scores": {"test_scores": s_gl, "test_labels": labels, "test_paths": paths.copy()},
            "routed_metrics": rt}


def test_gap_vs_routed_with_paired_bootstrap(tmp_path):
    pairs = [_pair("a", 1), _pair("b", 2)]
    df = gap_table(pairs, n_boot=200, seed=0)
    assert list(df.columns) == COLUMNS
    idx = df.set_index(["class", "metric"])
    for cls, p in zip("ab", pairs):
        f1 = idx.loc[(cls, "f1")]
        assert f1["routed"] == pytest.approx(p["routed_metrics"]["test"]["f1"])
        assert f1["gap_routed"] == pytest.approx(f1["per_class"] - f1["routed"])
        assert f1["gap_routed_low"] <= f1["gap_routed"] <= f1["gap_routed_high"]
        assert f1["routed"] != pytest.approx(f1["global"])  # the mis-routes change the F1
        au = idx.loc[(cls, "auroc")]  # threshold-free: routed = global, same interval
        assert au["routed"] == au["global"] and au["gap_routed"] == au["gap"]
        assert (au["gap_routed_low"], au["gap_routed_high"]) == (au["gap_low"], au["gap_high"])
    macro = idx.loc[("macro", "f1")]
    assert macro["gap_routed"] == pytest.approx((idx.loc[("a", "f1"), "gap_routed"]
                                                 + idx.loc[("b", "f1"), "gap_routed"]) / 2)
    assert math.isnan(macro["gap_routed_low"])
    wide = wide_gap_table(df)
    assert "F1 vs routed" in wide.columns and "accuracy vs routed" in wide.columns
    assert savefig(plot_gap(df), tmp_path / "gap.png").stat().st_size > 10_000
    # without routed metrics the columns are N/A, the rest unchanged
    bare = gap_table([{k: v for k, v in p.items() if k != "routed_metrics"} for p in pairs], n_boot=200, seed=0)
    assert bare["gap_routed"].isna().all()
    pd.testing.assert_frame_equal(bare.drop(columns=["routed", "gap_routed", "gap_routed_low", "gap_routed_high"]),
                                  df.drop(columns=["routed", "gap_routed", "gap_routed_low", "gap_routed_high"]))


def test_calibration_plan_maps_output_keys_to_scopes():
    jobs = calibration_plan("per_class", {"threshold": "t/a/a.json"}, ["a"])
    assert [(j.output, j.scope, j.classes) for j in jobs] == [("t/a/a.json", "per_class", ("a",))]
    jobs = calibration_plan("global", {"per_class": ["t/g/a.json", "t/g/b.json"], "pooled": "t/p.json"}, ["a", "b"])
    assert [(j.output, j.scope, j.classes) for j in jobs] == [
        ("t/g/a.json", "global", ("a",)), ("t/g/b.json", "global", ("b",)),
        ("t/p.json", "unified_abs", ("a", "b"))]
    # one class's file handed over as a plain string or a path (adloc.workflow.as_list)
    jobs = calibration_plan("global", {"per_class": Path("t/g/a.json"), "pooled": "t/p.json"}, ["a"])
    assert [(j.output, j.scope) for j in jobs] == [("t/g/a.json", "global"), ("t/p.json", "unified_abs")]
    assert as_list("a.json") == ["a.json"] and as_list(Path("a")) == [Path("a")]
    assert as_list(("a", "b")) == ["a", "b"] and as_list([]) == []
    with pytest.raises(AdlocError, match="params.model"):
        calibration_plan("pooled", {}, ["a"])
    with pytest.raises(AdlocError, match="'pooled'"):
        calibration_plan("global", {"per_class": ["x"]}, ["a"])


def test_evaluation_plan_maps_file_keys_to_scopes():
    jobs = evaluation_plan("per_class", {"threshold": "t.json"}, {"metrics": "m.json"})
    assert [(j.output, j.scope, j.threshold) for j in jobs] == [("m.json", "per_class", "t.json")]
    ins = {"threshold": "g.json", "pooled": "p.json", "routing": "r.json", "class_thresholds": ["g.json"]}
    outs = {"unified": "mg.json", "pooled": "mp.json", "routed": "mr.json"}
    assert [(j.scope, j.threshold) for j in evaluation_plan("global", ins, outs)] == [
        ("global", "g.json"), ("unified_abs", "p.json"), ("routed", None)]
    no_routed = {k: v for k, v in outs.items() if k != "routed"}
    assert [j.scope for j in evaluation_plan("global", ins, no_routed)] == ["global", "unified_abs"]
    with pytest.raises(AdlocError, match="'routing'"):
        evaluation_plan("global", {"threshold": "g", "pooled": "p"}, outs)


def test_each_scope_names_its_model_and_its_threshold():
    """Issue 20 §4 (vocabulary): the scope names stay (paths, tables); model_type says which
    model, threshold_type which threshold, in every threshold and metrics file."""
    assert {s: tuple(scope_fields(s).values()) for s in SCOPES} == {
        "per_class": ("per_class", "class"), "global": ("global", "class"),
        "unified_abs": ("global", "pooled"), "routed": ("global", "routed")}
    assert {scope_fields(s)["model_type"] for s in SCOPES} == set(MODELS)
    assert {scope_fields(s)["threshold_type"] for s in SCOPES} == set(THRESHOLD_TYPES)
    with pytest.raises(AdlocError, match="unknown scope 'pooled'"):
        scope_fields("pooled")


def test_routing_k_is_a_config_key_with_a_default():
    from adloc.config import validate_config
    from adloc.errors import ConfigError

    assert validate_config({})["routing"] == {"k": 5}
    assert validate_config({"routing": {"k": 9}})["routing"]["k"] == 9
    with pytest.raises(ConfigError, match="routing"):
        validate_config({"routing": {"k": 0}})
