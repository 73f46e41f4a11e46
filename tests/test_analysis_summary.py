"""adloc.analysis.summary: every section present, deterministic bytes, protocol notes."""

import copy
import re

import numpy as np

from adloc.analysis.confusion import confusion_matrix
from adloc.analysis.gap import gap_table
from adloc.analysis.study_reference import side_by_side
from adloc.analysis.summary import config_hash, derive_protocol, render_summary, write_summary
from adloc.analysis.tables import metrics_table
from adloc.analysis.tsne import memory_bank_composition
from adloc.metrics import image_metrics

CLASSES = ["carpet", "hazelnut"]


def _config(**over):
    cfg = {
        "run_name": "unit", "dataset": {"root": "results/data/embedded", "generate": True},
        "classes": CLASSES, "methods": ["patchcore", "padim"],
        "preprocess": {"resize": 256, "crop": 224},
        "patchcore": {"backbone": "efficientnet_lite0", "coreset_ratio": 0.1,
                      "scoring": "paper", "blur_sigma": 4.0, "target_embed_dim": None},
        "padim": {"backbone": "efficientnet_lite0", "blur_sigma": 4.0},
        "threshold": {"mode": "exact", "grid_size": 1000},
        "evaluation": {"pixel_auroc_images": "all", "pro_mode": "reference",
                       "pro_fpr_limit": 0.3, "bootstrap": {"n": 100, "seed": 0}},
        "analysis": {"confusion_normals": "heldout"}, "study_reference": False,
    }
    for k, v in over.items():
        cfg[k] = v
    return cfg


def _ctx(weights="imagenet", cfg=None):
    rng = np.random.default_rng(0)
    dicts, pairs = [], []
    for method in ("patchcore", "padim"):
        for cls in CLASSES:
            labels = (np.arange(30) % 2).astype(np.int8)
            paths = np.array([f"{cls}/{i}.png" for i in range(30)])
            per = {}
            for scope, shift in (("per_class", 2.0), ("global", 1.0)):
                s = (rng.normal(0, 1, 30) + shift * labels).astype(np.float32)
                im = image_metrics(labels, s, 0.5)
                d = {"method": method, "scope": scope, "class": cls,
                     "threshold": {"threshold": 0.5, "mode": "exact", "fallback": None},
                     "test": {**{k: im[k] for k in ("auroc", "auprc", "f1", "accuracy",
                                                     "precision", "recall", "specificity",
                                                     "tp", "tn", "fp", "fn", "n")},
                              "n_anomalous": 15, "n_normal": 15, "auroc_ci": None},
                     "pixel": {"pixel_auroc": 0.9, "pixel_auroc_images": "all", "au_pro": 0.7,
                               "pro_mode": "reference"},
                     "provenance": {"backbone": "efficientnet_lite0", "weights": weights,
                                    "sha256": "0123456789abcdef" * 4},
                     "val": {"n": 20, "n_anomalous": 6, "n_normal": 14}}
                dicts.append(d)
                per[scope] = (d, {"test_scores": s, "test_labels": labels, "test_paths": paths})
            pairs.append((per["per_class"][0], per["global"][0], per["per_class"][1],
                          per["global"][1]))
    mt = metrics_table(dicts)
    conf = {m: confusion_matrix({"carpet": 1.0, "hazelnut": 2.0},
                                {"carpet": np.array([0.1, 1.5, 0.2]),
                                 "hazelnut": np.array([0.0, 1.2])}) for m in ("padim", "patchcore")}
    return {
        "config": cfg or _config(), "metrics_table": mt,
        "gap_table": gap_table(pairs, n_boot=100, seed=0), "confusion": conf,
        "bank_composition": memory_bank_composition(np.array(["carpet"] * 5 + ["hazelnut"] * 3),
                                                    {"carpet": 100, "hazelnut": 60}),
        "splits": {c: {"train": 40, "val_normal": 14, "val_anomalous": 6, "test_normal": 15,
                       "test_anomalous": 15} for c in CLASSES},
        "figures": [("Per-class minus global", "figures/gap.png"),
                    ("t-SNE views", "figures/tsne.png")],
        "side_by_side": side_by_side(mt),
    }


def test_sections_and_determinism(tmp_path):
    ctx = _ctx()
    text = render_summary(ctx)
    for needle in ["# adloc results", "**Setup.**", "SYNTHETIC", "## Results",
                   "### Per-class vs global models", "### Gap: per-class minus global",
                   "### Cross-class thresholds on the global model",
                   "### Global PatchCore memory bank", "### Figures",
                   "![Per-class minus global](figures/gap.png)",
                   "## Protocol differences from the study", "config hash `"]:
        assert needle in text, needle
    assert "Protocol **paper**" in text and "sha256 0123456789ab" in text
    assert "| carpet   | 40      | 14" in text  # split sizes table
    assert "PatchCore: " in text and "PaDiM: " in text  # one confusion sentence per method
    assert "held-out normals (val+test good)" in text
    items = re.findall(r"^(\d)\. ", text.split("## Protocol differences")[1], flags=re.M)
    assert items == [str(i) for i in range(1, 10)]  # PatchCore: distances and maps; 7 of the run
    assert "Side by side" not in text  # study_reference off
    assert "Threshold fallbacks" not in text
    assert re.search(r"\d{4}-\d{2}-\d{2}", text) is None  # no dates
    # identical bytes: same ctx twice, and a freshly rebuilt ctx
    assert render_summary(ctx) == text
    assert render_summary(_ctx()) == text
    out = tmp_path / "summary.md"
    write_summary(out, ctx)
    assert out.read_bytes() == text.encode("utf-8")
    assert config_hash(ctx["config"]) in text


def test_study_protocol_reference_and_random_weights():
    cfg = _config(study_reference=True)
    cfg["patchcore"] = dict(cfg["patchcore"], scoring="study", blur_sigma=0.0)
    cfg["threshold"] = {"mode": "study", "grid_size": 1000}
    cfg["evaluation"] = dict(cfg["evaluation"], pro_mode="study", bootstrap={"n": 0, "seed": 0})
    cfg["analysis"] = {"confusion_normals": "train"}
    assert derive_protocol(cfg) == "study"
    ctx = _ctx(weights="random", cfg=cfg)
    text = render_summary(ctx)
    assert "Protocol **study**" in text and "RANDOM weights" in text
    diffs = text.split("## Protocol differences")[1]
    assert diffs.count("(kept)") >= 5
    assert "training normals" in text
    assert "### Side by side with the study's published numbers" in text
    assert "0.9728" in text  # PatchCore carpet per-class AUROC as published


def test_significance_sentence_and_custom_protocol():
    ctx = _ctx()
    text = render_summary(ctx)
    gap = ctx["gap_table"]
    n_sig = int(gap["ci_excludes_zero"].fillna(False).astype(bool).sum())
    if n_sig:
        assert f"{n_sig} of " in text and "intervals exclude 0" in text
    else:
        assert "No AUROC or AUPRC gap" in text
    cfg = copy.deepcopy(ctx["config"])
    cfg["threshold"]["mode"] = "study"
    assert derive_protocol(cfg) == "custom"
    ctx2 = dict(ctx, gap_table=None, confusion=None, bank_composition=None, figures=None,
                splits=None)
    text2 = render_summary(ctx2)
    assert text2.count("Not computed.") == 2 and "### Figures" not in text2


def test_summary_from_csv_round_trip_is_identical(tmp_path):
    """The summary rule reads the tables back from CSV: same text as from memory."""
    from adloc.analysis.confusion import read_confusion, write_confusion
    from adloc.analysis.gap import read_gap_table, write_gap_table
    from adloc.analysis.tables import read_metrics_table
    from adloc.analysis.tsne import read_bank_composition, write_bank_composition
    from adloc.io import write_csv

    ctx = _ctx()
    write_csv(tmp_path / "metrics.csv", ctx["metrics_table"])
    write_gap_table(tmp_path / "gap.csv", ctx["gap_table"])
    write_bank_composition(tmp_path / "bank.csv", ctx["bank_composition"])
    for m, df in ctx["confusion"].items():
        write_confusion(tmp_path / f"confusion_{m}.csv", df)
    back = dict(ctx)
    back["metrics_table"] = read_metrics_table(tmp_path / "metrics.csv")
    back["gap_table"] = read_gap_table(tmp_path / "gap.csv")
    back["bank_composition"] = read_bank_composition(tmp_path / "bank.csv")
    back["confusion"] = {m: read_confusion(tmp_path / f"confusion_{m}.csv")
                         for m in ctx["confusion"]}
    assert render_summary(back) == render_summary(ctx)
    import pandas as pd
    pd.testing.assert_frame_equal(back["metrics_table"], ctx["metrics_table"])
    pd.testing.assert_frame_equal(back["gap_table"], ctx["gap_table"])


def test_default_figures():
    from adloc.analysis.summary import default_figures

    figs = default_figures(_config())
    paths = [p for _, p in figs]
    assert paths == ["figures/gap.png", "figures/confusion_patchcore.png",
                     "figures/confusion_padim.png", "figures/tsne.png",
                     "figures/examples_carpet.png", "figures/examples_hazelnut.png"]
    assert "held-out normals" in figs[1][0]


def test_threshold_fallback_is_reported():
    ctx = _ctx()
    mt = ctx["metrics_table"].copy()
    mt.loc[0, "threshold_fallback"] = "no anomalous val image: max normal score"
    text = render_summary(dict(ctx, metrics_table=mt))
    assert "**Threshold fallbacks**" in text and "max normal score" in text


def test_na_legend_explains_missing_normal_and_missing_anomalous_test_images():
    """An empty test/good makes AUROC, AUPRC and specificity N/A: the legend says so, beside
    the no-anomalies case (issue 24 §2)."""
    text = render_summary(_ctx())
    legend = next(line for line in text.splitlines() if line.startswith("N/A: not defined"))
    assert "without anomalous test images no AUROC, AUPRC or F1" in legend
    assert "without normal test images, an empty test/good, no AUROC, AUPRC or specificity" in legend


def test_summary_describes_only_the_methods_that_ran():
    """methods: [padim] says nothing of PatchCore (issue 20: no coreset ratio, no PatchCore
    protocol items, no memory bank), and its protocol is derived without PatchCore's switch."""
    cfg = _config(methods=["padim"])
    ctx = _ctx(cfg=cfg)
    ctx["metrics_table"] = ctx["metrics_table"][ctx["metrics_table"]["method"] == "padim"]
    ctx["gap_table"] = ctx["gap_table"][ctx["gap_table"]["method"] == "padim"]
    ctx["confusion"] = {"padim": ctx["confusion"]["padim"]}
    ctx["bank_composition"] = None
    text = render_summary(ctx)
    assert "PaDiM" in text and "random channels" in text
    assert "PatchCore" not in text and "coreset" not in text and "memory bank" not in text
    assert derive_protocol(cfg) == "paper"
    items = re.findall(r"^(\d)\. ", text.split("## Protocol differences")[1], flags=re.M)
    assert items == [str(i) for i in range(1, 8)]  # the run's 7 items, no PatchCore ones


def test_published_anchors_follow_the_dataset_source():
    """Embedded data: the section says why no published number is shown; MVTec AD: the numbers,
    their sources and the gap sentence (issue 22 §3)."""
    text = render_summary(_ctx())
    assert "Not shown: synthetic data generated by adloc" in text and "openvinotoolkit" not in text
    cfg = _config(dataset={"root": "data/mvtec", "generate": False, "source": "mvtec_ad"})
    text = render_summary(_ctx(cfg=cfg))
    assert "### Published reference numbers (MVTec AD)" in text
    assert "openvinotoolkit/anomalib" in text and "zhangzjn/ADer" in text
    assert "PatchCore: our per-class − global gap in image AUROC" in text
