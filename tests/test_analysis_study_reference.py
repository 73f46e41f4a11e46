"""adloc.analysis.study_reference: the study's published numbers, cell by cell."""

import math

import numpy as np
import pandas as pd
import pytest

from adloc.analysis import study_reference as sr
from adloc.analysis.confusion import COLUMNS as CONF_COLUMNS

# Verbatim copy of the study's two published tables (study_reference notes, "Published results").
PER_CLASS = """
| PatchCore | hazelnut | 382.2659 | 1.0000 | 1.0000 | 1.0000 | 1.0000 | 0.9885 | 0.8549 |
| PatchCore | carpet | 176.6249 | 0.9728 | 0.9908 | 0.9508 | 0.9341 | 0.9880 | 0.8362 |
| PatchCore | zipper | 123.7072 | 0.9818 | 0.9935 | 0.9486 | 0.9224 | 0.9859 | 0.8328 |
| PaDiM | hazelnut | 47.4312 | 0.9709 | 0.9746 | 0.8667 | 0.8652 | 0.9633 | 0.7970 |
| PaDiM | carpet | 30.3877 | 0.9586 | 0.9845 | 0.9231 | 0.9011 | 0.9839 | 0.5338 |
| PaDiM | zipper | 24.4476 | 0.8616 | 0.9419 | 0.8953 | 0.8448 | 0.9719 | 0.7975 |
"""
GLOBAL = """
| PatchCore | hazelnut | 400.1890 | 1.0 | 1.0 | 1.0 | 1.0 | 1.0 | 1.0 | 0.9793 | 0.8380 |
| PatchCore | carpet | 186.9184 | 0.9677 | 0.9885 | 0.9508 | 0.9341 | 0.9831 | 0.9206 | 0.9823 | 0.7795 |
| PatchCore | zipper | 151.6650 | 0.9844 | 0.9942 | 0.9595 | 0.9397 | 0.9326 | 0.9881 | 0.9805 | 0.7857 |
| PaDiM | hazelnut | 41.7337 | 0.9745 | 0.9704 | 0.9362 | 0.9326 | 0.9778 | 0.8980 | 0.9524 | 0.6480 |
| PaDiM | carpet | 27.7245 | 0.9439 | 0.9786 | 0.9060 | 0.8791 | 0.9815 | 0.8413 | 0.9734 | 0.7193 |
| PaDiM | zipper | 18.0461 | 0.8824 | 0.9448 | 0.8757 | 0.8190 | 0.8706 | 0.8810 | 0.9268 | 0.6494 |
"""
PC_COLS = ["threshold", "auroc", "auprc", "f1", "accuracy", "pixel_auroc", "au_pro"]
GL_COLS = ["threshold", "auroc", "auprc", "f1", "accuracy", "precision", "recall",
           "pixel_auroc", "au_pro"]


def _parse(text, scope, cols):
    out = {}
    for line in text.strip().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        out[(cells[0].lower(), scope, cells[1])] = dict(zip(cols, map(float, cells[2:])))
    return out


def test_csv_holds_exactly_the_published_tables():
    ref = sr.load_study_reference()
    assert len(ref) == 12
    assert list(ref.columns[:3]) == ["method", "scope", "class"]
    expected = {**_parse(PER_CLASS, "per_class", PC_COLS), **_parse(GLOBAL, "global", GL_COLS)}
    got = ref.set_index(["method", "scope", "class"])
    assert set(got.index) == set(expected)
    for key, vals in expected.items():
        for col in sr.METRICS:
            cell = got.loc[key, col]
            if col in vals:
                assert cell == vals[col], (key, col)
            else:
                assert math.isnan(cell), (key, col)  # not published
    assert set(got.xs("per_class", level="scope")["pixel_auroc_images"]) == {"all"}
    assert set(got.xs("global", level="scope")["pixel_auroc_images"]) == {"anomalous"}


def test_spot_checks():
    got = sr.load_study_reference().set_index(["method", "scope", "class"])
    assert got.loc[("patchcore", "per_class", "carpet"), "threshold"] == 176.6249
    assert got.loc[("padim", "global", "zipper"), "au_pro"] == 0.6494
    assert got.loc[("padim", "per_class", "carpet"), "au_pro"] == 0.5338
    assert got.loc[("patchcore", "global", "zipper"), "recall"] == 0.9881
    assert got.loc[("padim", "global", "hazelnut"), "threshold"] == 41.7337
    assert math.isnan(got.loc[("patchcore", "per_class", "hazelnut"), "precision"])


def test_gap_matches_tables_and_confusion():
    got = sr.load_study_reference().set_index(["method", "scope", "class"])
    for (m, c), g in sr.STUDY_GAP_AUROC.items():
        diff = got.loc[(m, "per_class", c), "auroc"] - got.loc[(m, "global", c), "auroc"]
        assert round(diff, 4) == g
    pad = sr.study_confusion("padim")
    assert list(pad.columns) == CONF_COLUMNS and len(pad) == 9
    cell = pad.set_index(["threshold_class", "normals_class"])
    assert cell.loc[("zipper", "hazelnut"), "label"] == "172/312"
    assert round(cell.loc[("zipper", "hazelnut"), "percent"], 1) == 55.1
    assert round(cell.loc[("zipper", "carpet"), "percent"], 1) == 5.4
    assert cell["n_flagged"].sum() == 172 + 12
    assert sr.study_confusion("patchcore")["n_flagged"].sum() == 0
    assert sum(s["train"] for s in sr.STUDY_SPLITS.values()) == 728
    assert sr.study_gap()["gap"].tolist() == list(sr.STUDY_GAP_AUROC.values())


def test_anchors():
    a = sr.published_anchors().set_index(["source", "method", "class"])
    assert a.loc[("PatchCore paper", "patchcore", "carpet"), "au_pro"] == 0.966
    assert a.loc[("PatchCore paper", "patchcore", "mean (15 classes)"), "auroc"] == 0.990
    assert a.loc[("PaDiM paper", "padim", "zipper"), "pixel_auroc"] == 0.985
    assert math.isnan(a.loc[("PaDiM paper", "padim", "zipper"), "auroc"])
    assert a.loc[("PaDiM paper", "padim", "mean (15 classes)"), "auroc"] == 0.953
    anom = a.xs("anomalib", level="source")
    assert [anom.loc[("padim", c), "auroc"] for c in sr.STUDY_CLASSES] == [0.964, 0.995, 0.882]
    assert [anom.loc[("patchcore", c), "auroc"] for c in sr.STUDY_CLASSES] == [1.0, 0.984, 0.982]
    assert len(anom.xs("patchcore", level="method")) == 16  # 15 classes and their mean
    # the two headline anchors
    pci = a.loc[("patchcore-inspection", "patchcore", "mean (15 classes)")]
    assert (pci["auroc"], pci["pixel_auroc"], pci["au_pro"], pci["scope"]) == (0.992, 0.981, 0.944, "per_class")
    ader = a.loc[("ADer", "patchcore", "mean (15 classes)")]
    assert (ader["auroc"], ader["pixel_auroc"], ader["au_pro"], ader["scope"]) == (0.988, 0.983, 0.942, "global")
    assert ader["mad"] == 0.886 and "256" in ader["setting"]


def test_side_by_side():
    ours = pd.DataFrame([
        {"method": "patchcore", "scope": "per_class", "class": "synth_carpet", "threshold": 170.0,
         "auroc": 0.97, "auprc": 0.99, "f1": 0.9, "accuracy": 0.9, "precision": 0.9,
         "recall": 0.9, "pixel_auroc": np.nan, "au_pro": 0.8, "pixel_auroc_images": "all"},
        {"method": "patchcore", "scope": "per_class", "class": "macro", "threshold": np.nan,
         "auroc": 0.5, "auprc": 0.5, "f1": 0.5, "accuracy": 0.5, "precision": 0.5,
         "recall": 0.5, "pixel_auroc": 0.5, "au_pro": 0.5, "pixel_auroc_images": "all"},
    ])
    assert sr.side_by_side(ours).empty  # no class in common
    s = sr.side_by_side(ours, class_map={"synth_carpet": "carpet"})
    # per-class table publishes no precision/recall
    assert set(s["metric"]) == {"threshold", "auroc", "auprc", "f1", "accuracy", "pixel_auroc",
                                "au_pro"}
    r = s.set_index("metric")
    assert r.loc["auroc", "study"] == 0.9728
    assert r.loc["auroc", "difference"] == pytest.approx(0.97 - 0.9728)
    assert r.loc["threshold", "difference"] == pytest.approx(170.0 - 176.6249)
    assert math.isnan(r.loc["pixel_auroc", "ours"]) and r.loc["pixel_auroc", "study"] == 0.9880
    assert r.loc["pixel_auroc", "study_pixel_images"] == "all"
    w = sr.wide_side_by_side(s)
    assert w.loc[0, "AUROC"] == "0.9700 / 0.9728 (-0.0028)"
    assert w.loc[0, "pixel AUROC"] == "N/A / 0.9880"
    assert w.loc[0, "precision"] == ""  # the study published none for per-class models


def test_embedded_class_map_follows_the_generator():
    from adloc.data.synthetic import EMBEDDED_CLASSES

    m = sr.embedded_class_map()
    study = {c: m[c] for c in m if m[c] in sr.STUDY_CLASSES}
    assert study == {"synth_nut": "hazelnut", "synth_carpet": "carpet", "synth_zipper": "zipper"}
    assert set(m) == set(EMBEDDED_CLASSES) and m["synth_bottle"] == "bottle"
    assert len(set(m.values())) == len(m)  # one MVTec class per embedded class
