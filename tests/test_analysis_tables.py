"""adloc.analysis.tables: the per-class metrics table and its macro rows."""

import math

import numpy as np
import pandas as pd
import pytest

from adloc.analysis.tables import COLUMNS, display_table, metrics_table, write_metrics_table
from adloc.errors import AdlocError


def _m(method, scope, cls, auroc, pixel=0.9, thr=1.5, tp=5, fp=1, tn=4, fn=2, ci=(0.7, 0.99)):
    return {
        "method": method, "scope": scope, "model": cls if scope == "per_class" else "global",
        "class": cls,
        "threshold": {"threshold": thr, "f1": 0.8, "mode": "exact", "fallback": None},
        "test": {"auroc": auroc, "auprc": auroc - 0.05, "f1": 0.8, "accuracy": 0.75,
                 "precision": 0.83, "recall": 0.71, "specificity": 0.8, "tp": tp, "tn": tn,
                 "fp": fp, "fn": fn, "n": tp + tn + fp + fn, "n_anomalous": tp + fn,
                 "n_normal": tn + fp,
                 "auroc_ci": None if ci is None else {"estimate": auroc, "low": ci[0],
                                                      "high": ci[1], "n_boot": 100}},
        "pixel": {"pixel_auroc": pixel, "pixel_auroc_images": "all",
                  "au_pro": None if pixel is None else pixel - 0.1, "pro_mode": "reference",
                  "fpr_limit": 0.3, "note": None},
        "provenance": {"backbone": "resnet18", "weights": "random", "sha256": None},
        "val": {"n": 10, "n_anomalous": 3, "n_normal": 7},
    }


def _dicts():
    return [
        _m("padim", "global", "b", 0.8),
        _m("patchcore", "global", "a", 0.9, pixel=None),
        _m("patchcore", "per_class", "b", 0.7, tp=3),
        _m("patchcore", "per_class", "a", 0.95, pixel=None, ci=None),
        _m("padim", "per_class", "a", 0.6),
        _m("patchcore", "global", "b", 0.85, pixel=0.8),
    ]


def test_columns_rows_and_order():
    df = metrics_table(_dicts())
    assert list(df.columns) == COLUMNS
    keys = list(zip(df["method"], df["scope"], df["class"]))
    assert keys == [
        ("patchcore", "per_class", "a"), ("patchcore", "per_class", "b"),
        ("patchcore", "per_class", "macro"),
        ("patchcore", "global", "a"), ("patchcore", "global", "b"),
        ("patchcore", "global", "macro"),
        ("padim", "per_class", "a"), ("padim", "per_class", "macro"),
        ("padim", "global", "b"), ("padim", "global", "macro"),
    ]
    # deterministic regardless of input order
    df2 = metrics_table(list(reversed(_dicts())))
    pd.testing.assert_frame_equal(df, df2)


def test_values_and_macro():
    df = metrics_table(_dicts()).set_index(["method", "scope", "class"])
    r = df.loc[("patchcore", "per_class", "b")]
    assert r["auroc"] == 0.7 and r["auroc_low"] == 0.7 and r["auroc_high"] == 0.99
    assert r["threshold"] == 1.5 and r["threshold_mode"] == "exact"
    assert r["tp"] == 3 and r["n_test"] == 3 + 4 + 1 + 2 and r["n_val"] == 10
    assert r["weights"] == "random"
    a = df.loc[("patchcore", "per_class", "a")]
    assert math.isnan(a["auroc_low"]) and math.isnan(a["pixel_auroc"])  # no CI, no masks

    m = df.loc[("patchcore", "per_class", "macro")]
    assert m["auroc"] == pytest.approx((0.95 + 0.7) / 2)
    assert m["auprc"] == pytest.approx((0.90 + 0.65) / 2)
    # NaN-aware: only class b has pixel metrics
    assert m["pixel_auroc"] == pytest.approx(0.9)
    assert m["au_pro"] == pytest.approx(0.8)
    # counts summed, threshold / interval blank, text kept when all agree
    assert m["tp"] == 5 + 3 and m["n_test"] == 12 + 10 and m["n_val"] == 20
    assert math.isnan(m["threshold"]) and math.isnan(m["auroc_low"])
    assert m["pro_mode"] == "reference" and m["backbone"] == "resnet18"
    # a macro over classes without any pixel metric is NaN
    g = metrics_table([_m("x", "global", "a", 0.5, pixel=None)]).set_index("class")
    assert math.isnan(g.loc["macro", "pixel_auroc"])


def test_mixed_text_and_duplicates():
    d = _dicts()
    d[2]["threshold"]["mode"] = "study"
    df = metrics_table(d).set_index(["method", "scope", "class"])
    assert df.loc[("patchcore", "per_class", "macro"), "threshold_mode"] == "mixed"
    with pytest.raises(AdlocError, match="duplicate"):
        metrics_table(d + [d[0]])
    bad = dict(d[0])
    del bad["test"]
    with pytest.raises(AdlocError, match="test"):
        metrics_table([bad])


def test_write_and_display(tmp_path):
    path = tmp_path / "t" / "metrics.csv"
    df = write_metrics_table(path, _dicts())
    back = pd.read_csv(path)
    assert list(back.columns) == COLUMNS and len(back) == len(df)
    disp = display_table(df)
    row = disp[(disp["class"] == "b") & (disp["model"] == "per-class")].iloc[0]
    assert row["AUROC [95% CI]"] == "0.7000 [0.7000, 0.9900]"
    assert row["method"] == "PatchCore" and row["threshold"] == "1.5000"
    assert (disp.loc[disp["class"] == "a", "pixel AUROC"].iloc[0]) == "N/A"
    assert np.all(disp.loc[disp["class"] == "macro", "threshold"] == "")


def test_model_and_threshold_types_beside_the_scope(tmp_path):
    """Issue 20 §4 (vocabulary): metrics.csv says which model and which threshold beside each
    scope, macro rows too; a file or table written before the two fields existed gets them
    from its scope (a finished run compared with newer ones)."""
    from adloc.analysis.tables import read_metrics_table
    from adloc.scopes import scope_fields

    dicts = _dicts()
    dicts[0] = {**dicts[0], **scope_fields("global")}  # newer files carry them, older ones not
    dicts += [_m("padim", "unified_abs", "b", 0.8), _m("padim", "routed", "b", 0.8)]
    df = metrics_table(dicts)
    assert list(df.columns[:5]) == ["method", "scope", "model_type", "threshold_type", "class"]
    for _, r in df.iterrows():
        assert {"model_type": r["model_type"], "threshold_type": r["threshold_type"]} == scope_fields(r["scope"])
    assert set(df.loc[df["class"] == "macro", "scope"]) == {"per_class", "global", "unified_abs", "routed"}
    path = tmp_path / "metrics.csv"
    write_metrics_table(path, dicts)
    back = read_metrics_table(path)
    assert back[["model_type", "threshold_type"]].equals(df[["model_type", "threshold_type"]])
    old = tmp_path / "old.csv"
    pd.read_csv(path).drop(columns=["model_type", "threshold_type"]).to_csv(old, index=False)
    assert read_metrics_table(old)[["scope", "model_type", "threshold_type"]].equals(
        back[["scope", "model_type", "threshold_type"]])
