"""The study's published MVTec-Shift numbers beside ours (issue 21 §2, adloc.analysis.study_shift)."""

from __future__ import annotations

import math

import pandas as pd

from adloc.analysis.study_shift import load_study_shift_reference, shift_side_by_side, side_by_side_lines


def test_reference_holds_the_studys_table():
    ref = load_study_shift_reference()
    assert len(ref) == 2 * 3 * 3  # methods x phases x classes
    r = ref.set_index(["method", "phase", "class"])
    assert r.at[("patchcore", "none", "hazelnut"), "auroc"] == 0.9883
    assert r.at[("padim", "full", "zipper"), "au_pro"] == 0.5328
    assert r.at[("patchcore", "threshold", "carpet"), "threshold"] == 326.0456
    assert math.isnan(r.at[("padim", "threshold", "zipper"), "auroc"])  # not published
    # macro AUROC as the study states it: no adaptation 0.8919 / 0.6844, full 0.9605 / 0.8854
    for (m, p), want in {("patchcore", "none"): 0.8919, ("padim", "none"): 0.6844,
                         ("patchcore", "full"): 0.9605, ("padim", "full"): 0.8854}.items():
        got = ref[(ref["method"] == m) & (ref["phase"] == p)]["auroc"].mean()
        assert abs(got - want) < 5e-5, (m, p, got)


def test_side_by_side_matches_per_class_rows_through_the_class_map():
    rows = []
    for phase in ("clean", "none", "threshold", "full"):
        for scope in ("per_class", "global"):
            rows.append({"repeat": "s42-m0", "phase": phase, "method": "padim", "scope": scope,
                         "class": "synth_nut", "auroc": 0.9, "f1": 0.8, "accuracy": 0.7,
                         "specificity": 0.6, "pixel_auroc": 0.95, "au_pro": 0.5, "threshold": 40.0})
    rows.append({**rows[2], "repeat": "s43-m0", "auroc": 0.1})  # a second repeat: not shown
    sbs = shift_side_by_side(pd.DataFrame(rows), class_map={"synth_nut": "hazelnut"})
    assert set(sbs["phase"]) == {"none", "threshold", "full"}  # the study has no clean row here
    none = sbs[(sbs["phase"] == "none")].set_index("metric")
    assert none.at["auroc", "study"] == 0.6046 and abs(none.at["auroc", "difference"] - (0.9 - 0.6046)) < 1e-12
    assert "auroc" not in set(sbs[sbs["phase"] == "threshold"]["metric"])  # unpublished cells dropped
    text = "\n".join(side_by_side_lines(sbs, str.upper))
    assert "PADIM" in text and "0.9000 / 0.6046 (+0.2954)" in text
    assert shift_side_by_side(pd.DataFrame(rows)).empty  # synth_nut is no study class
    assert side_by_side_lines(shift_side_by_side(pd.DataFrame(rows)), str) == []
