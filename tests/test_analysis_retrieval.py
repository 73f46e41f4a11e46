"""adloc.analysis.retrieval: the summary's sentence on a method that retrieves whole training
images (registry capability), from a hand-made gap table."""

import numpy as np
import pandas as pd

from adloc.analysis.retrieval import retrieval_sentences
from adloc.analysis.summary import render_summary
from adloc.models.registry import RETRIEVES_IMAGES, methods_with

from test_analysis_summary import _ctx

#: method -> class -> metric -> per-class minus global gap
GAPS = {
    "patchcore": {"a": {"auroc": 0.10, "f1": 0.05, "pixel_auroc": 0.02, "au_pro": 0.03},
                  "b": {"auroc": 0.02, "f1": 0.01, "pixel_auroc": 0.00, "au_pro": 0.01}},
    "padim": {"a": {"auroc": -0.04, "f1": 0.02, "pixel_auroc": 0.01, "au_pro": np.nan},
              "b": {"auroc": 0.06, "f1": 0.03, "pixel_auroc": 0.01, "au_pro": np.nan}},
    "spade": {"a": {"auroc": 0.01, "f1": -0.01, "pixel_auroc": 0.03, "au_pro": 0.00},
              "b": {"auroc": 0.05, "f1": 0.00, "pixel_auroc": 0.02, "au_pro": 0.02}},
}


def _gap_rows(gaps=GAPS) -> pd.DataFrame:
    rows = []
    for method, per in gaps.items():
        for cls, metrics in per.items():
            rows += [{"method": method, "class": cls, "metric": k, "gap": v} for k, v in metrics.items()]
        for k in next(iter(per.values())):
            vals = [per[c][k] for c in per if not np.isnan(per[c][k])]
            rows.append({"method": method, "class": "macro", "metric": k,
                         "gap": float(np.mean(vals)) if vals else np.nan})
    return pd.DataFrame(rows)


def test_the_capability_comes_from_the_registry():
    assert methods_with(RETRIEVES_IMAGES, ["patchcore", "padim", "spade"]) == ["spade"]


def test_sentence_from_a_hand_made_gap_table():
    (line,) = retrieval_sentences(_gap_rows())
    assert line.startswith("- SPADE retrieves each test image's nearest whole training images")
    # macro gaps: SPADE auroc 0.03, PatchCore 0.06, PaDiM 0.01
    assert "AUROC +0.0300 vs PatchCore +0.0600, PaDiM +0.0100 (not the smallest)" in line
    # F1: SPADE -0.005 (|.| smallest), PatchCore 0.03, PaDiM 0.025
    assert "F1 -0.0050 vs PatchCore +0.0300, PaDiM +0.0250 (smallest)" in line
    assert "pixel AUROC +0.0250 vs PatchCore +0.0100, PaDiM +0.0100 (not the smallest)" in line
    # PaDiM has no AU-PRO: compared with PatchCore's only
    assert "AU-PRO +0.0100 vs PatchCore +0.0200, PaDiM N/A (smallest)" in line
    # class a: |0.01| < 0.10, 0.04; class b: 0.05 > 0.02
    assert line.endswith("in 1 of 2 classes (a).")


def test_no_sentence_without_a_retrieving_method_or_without_others():
    assert retrieval_sentences(_gap_rows({k: GAPS[k] for k in ("patchcore", "padim")})) == []
    assert retrieval_sentences(_gap_rows({"spade": GAPS["spade"]})) == []
    assert retrieval_sentences(None) == [] and retrieval_sentences(pd.DataFrame()) == []


def test_summary_gap_section_has_the_sentence_only_when_the_method_ran():
    ctx = _ctx()
    before = render_summary(ctx)
    assert "whole training images" not in before
    gap = ctx["gap_table"]
    extra = gap[gap["method"] == "padim"].copy()
    extra["method"] = "spade"
    extra["gap"] = extra["gap"] / 2
    ctx["gap_table"] = pd.concat([gap, extra], ignore_index=True)
    text = render_summary(ctx)
    section = text.split("### Gap: per-class minus global")[1].split("### ")[0]
    (line,) = [s for s in section.splitlines() if "whole training images" in s]
    assert line == retrieval_sentences(ctx["gap_table"])[0]
    assert "vs PatchCore" in line and "PaDiM" in line
