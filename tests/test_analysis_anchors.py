"""Published anchors (issue 22 §3): shown beside runs on MVTec AD, never beside synthetic ones,
each with setting, citation and URL; the summary's per-class vs global gap sentence."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from adloc.analysis import anchors as an
from adloc.analysis.compare import compare_runs
from adloc.analysis.study_reference import ANCHOR_GAP_PAIRS, published_anchors
from adloc.analysis.tables import COLUMNS
from adloc.workflow import run_configs

MVTEC = {"dataset": {"generate": False, "source": "mvtec_ad", "root": "data/mvtec"},
         "classes": ["carpet", "hazelnut"], "methods": ["patchcore", "padim"],
         "preprocess": {"resize": 256, "crop": 224},
         "patchcore": {"coreset_ratio": 0.1, "num_neighbors": 9, "target_embed_dim": None,
                       "scoring": "paper", "blur_sigma": 4.0},
         "padim": {"n_features": 100, "covariance_eps": 0.01, "blur_sigma": 4.0}}
EMBEDDED = {**MVTEC, "dataset": {"generate": True, "source": "folder", "root": "results/data/embedded"},
            "classes": ["synth_carpet", "synth_nut"]}


def _table(classes, per_class=0.99, global_=0.95):
    rows = []
    for method in ("patchcore", "padim"):
        for scope, v in (("per_class", per_class), ("global", global_)):
            for c in list(classes) + ["macro"]:
                r = {k: np.nan for k in COLUMNS}
                r.update(method=method, scope=scope, **{"class": c}, auroc=v, pixel_auroc=v - 0.01,
                         au_pro=v - 0.05)
                rows.append(r)
    return pd.DataFrame(rows, columns=COLUMNS)


def test_every_anchor_has_a_setting_a_citation_and_a_source_url():
    a = published_anchors()
    assert len(a) >= 40 and set(a["dataset"]) <= set(an.DATASETS)
    for col in ("setting", "citation", "url"):
        assert a[col].notna().all() and (a[col].str.len() > 10).all(), col
    assert a["url"].str.match(r"https://(arxiv\.org|github\.com)/").all()
    vals = a[list(an.ANCHOR_METRICS)].to_numpy(float)
    assert np.nanmin(vals) > 0.5 and np.nanmax(vals) <= 1.0  # fractions, not percent
    assert set(a["scope"]) == {"per_class", "global"}
    # the gap pairs name a per-class and a one-model 15-class mean that exist
    for (ds, m), (pc, gl) in ANCHOR_GAP_PAIRS.items():
        for src, scope in ((pc, "per_class"), (gl, "global")):
            assert len(a[(a.dataset == ds) & (a.method == m) & (a.source == src) & (a.scope == scope)
                         & a["class"].str.startswith("mean (")]) == 1


def test_anchors_apply_to_mvtec_and_visa_sources_only():
    assert an.anchor_dataset(MVTEC) == ("mvtec_ad", "")
    assert an.anchor_dataset({**MVTEC, "dataset": {"generate": False, "source": "visa"}})[0] == "visa"
    for cfg, why in ((EMBEDDED, "synthetic"), ({"dataset": {"generate": False, "source": "folder"}}, "folder"),
                     ({"dataset": {"generate": False, "source": "btad"}}, "btad"), (None, "config.json")):
        ds, reason = an.anchor_dataset(cfg)
        assert ds is None and why in reason
    assert an.common_dataset({"a": MVTEC, "b": MVTEC}) == ("mvtec_ad", "")
    ds, why = an.common_dataset({"a": MVTEC, "b": EMBEDDED})
    assert ds is None and why.startswith("run b: synthetic")


def test_compare_table_shows_anchors_for_mvtec_runs_and_none_for_embedded():
    classes = ["carpet", "hazelnut"]
    long = an.anchors_for("mvtec_ad", classes)
    t = compare_runs({"a": _table(classes), "b": _table(classes, 0.9)}, study=False, anchors=long)
    cols = [c for c in t.columns if c.startswith(an.PREFIX)]
    assert {"published: anomalib", "published: PatchCore paper", "published: PaDiM paper"} <= set(cols)
    row = t[(t.method == "patchcore") & (t.scope == "per_class") & (t["class"] == "carpet") & (t.metric == "auroc")]
    assert row["published: anomalib"].item() == 0.984 and row["published: PatchCore paper"].item() == 0.987
    # a subset of the 15 classes: the published 15-class means stay off our macro rows
    assert t.loc[t["class"] == "macro", cols].isna().all().all()
    # all 15 classes: the means sit beside the macro rows, ADer's beside the one-model row
    full = list(an.MVTEC_AD_CLASSES)
    t15 = compare_runs({"a": _table(full), "b": _table(full)}, anchors=an.anchors_for("mvtec_ad", full))
    m = t15[(t15.method == "patchcore") & (t15["class"] == "macro") & (t15.metric == "auroc")].set_index("scope")
    assert m.loc["per_class", "published: patchcore-inspection"] == 0.992
    assert m.loc["global", "published: ADer"] == 0.988 and np.isnan(m.loc["per_class", "published: ADer"])
    mad = t15[(t15.scope == "global") & (t15["class"] == "macro") & (t15.metric == "mad") & (t15.method == "patchcore")]
    assert mad["published: ADer"].item() == 0.886
    # embedded runs: no anchor dataset, so no published column at all
    ds, _ = an.common_dataset({"a": EMBEDDED, "b": EMBEDDED})
    assert ds is None
    t_emb = compare_runs({"a": _table(["synth_carpet"]), "b": _table(["synth_carpet"])})
    assert not [c for c in t_emb.columns if c.startswith(an.PREFIX)]
    src = an.anchor_sources(long)
    assert list(src.columns) == an.SOURCE_COLUMNS and src["citation"].notna().all()


def test_summary_section_for_mvtec_and_not_for_embedded():
    lines = "\n".join(an.anchor_lines(MVTEC, _table(MVTEC["classes"])))
    assert "### Published reference numbers (MVTec AD)" in lines
    assert "0.9900 / 0.984" in lines  # ours / anomalib's PatchCore carpet image AUROC
    assert "https://github.com/openvinotoolkit/anomalib/" in lines and "https://arxiv.org/abs/2106.08265" in lines
    assert "Per-class vs global, against the published gap" in lines
    # the gap's sources are cited though their 15-class means are not in a 2-class table
    assert "- patchcore-inspection (PatchCore, per-class)" in lines and "- ADer (PatchCore, global)" in lines
    assert "zhangzjn/ADer" in lines
    emb = "\n".join(an.anchor_lines(EMBEDDED, _table(EMBEDDED["classes"])))
    assert "Not shown: synthetic data" in emb and "0.984" not in emb and "https://" not in emb
    visa = {**MVTEC, "dataset": {"generate": False, "source": "visa"}, "classes": ["candle"]}
    assert "No published number sourced here" in "\n".join(an.anchor_lines(visa, _table(["candle"])))


def test_gap_sentence_compares_our_gap_with_the_published_one():
    s = an.gap_sentence(MVTEC, _table(MVTEC["classes"], 0.99, 0.95), "mvtec_ad", "patchcore")
    assert s.endswith(".") and not re.search(r"\. [A-Z]", s)  # one sentence
    assert "+0.0400" in s and "+0.004" in s and "is larger in size" in s
    assert "patchcore-inspection per-class 0.992 vs ADer one-model 0.988" in s
    assert "macro over 2 of 15 classes" in s
    for caveat in ("resize 256 → crop 224", "coreset ratio 0.1", "256x256", "1 repeat(s)", "one seed"):
        assert caveat in s, caveat
    same = an.gap_sentence(MVTEC, _table(MVTEC["classes"], 0.99, 0.987), "mvtec_ad", "patchcore")
    assert "about the same" in same
    flip = an.gap_sentence(MVTEC, _table(MVTEC["classes"], 0.95, 0.99), "mvtec_ad", "patchcore")
    assert "opposite sign" in flip and "-0.0400" in flip
    none = an.gap_sentence(MVTEC, _table(MVTEC["classes"]), "mvtec_ad", "padim")
    assert "no published one-model" in none


def test_run_configs_names_missing_configs_none(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results" / "a").mkdir(parents=True)
    (tmp_path / "results" / "a" / "config.json").write_text("{}\n")
    assert run_configs(["a", "b", "cur"], "cur") == ["results/a/config.json", None, "results/cur/config.json"]
