"""Run the real workflow on a tiny generated dataset; check targets, values and incremental reruns."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from adloc.scopes import scope_fields

from workflow_utils import TINY, make_dataset, planned_jobs, snakemake, write_config

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

CLASSES = TINY["classes"]
REP = "s42-m0"  # the default config's one repeat: split seed 42, model seed 0


@pytest.fixture(scope="module")
def run(tiny_run):
    """The session's shared tiny run (tests/conftest.py); tests here put back what they change."""
    return tiny_run


def test_every_target_exists_and_parses(run):
    wd, proc, _ = run
    r = wd / "results" / "tiny"
    assert "results/tiny/summary.md" in proc.stdout + proc.stderr
    for cls in CLASSES:
        s = json.loads((r / REP / "splits" / f"{cls}.json").read_text())
        assert s["class"] == cls
        assert (r / "figures" / f"examples_{cls}.png").stat().st_size > 10_000
    for m in ("patchcore", "padim"):
        assert (r / REP / "figures" / f"confusion_{m}.png").stat().st_size > 10_000
        conf = pd.read_csv(r / REP / "tables" / f"confusion_{m}.csv")
        assert len(conf) > 0
        for cls in CLASSES:
            for scope in (cls, "global"):
                sc = np.load(r / REP / "scores" / m / scope / f"{cls}.npz")
                assert np.isfinite(sc["test_scores"]).all()
                assert sc["test_maps"].shape[1:] == (64, 64)
    for f in ("gap.png", "tsne.png"):
        assert (r / "figures" / f).stat().st_size > 10_000
    assert len(pd.read_csv(r / "tables" / "gap.csv")) > 0
    comp = pd.read_csv(r / "tables" / "memory_bank_composition.csv")
    assert set(comp["class"]) >= set(CLASSES)
    text = (r / "summary.md").read_text()
    assert "efficientnet_lite0" in text
    notes = json.loads((r / "tables" / "tsne_notes.json").read_text())
    assert [v["drawn"] for v in notes["views"]] == [True, True] and notes["warnings"] == []
    # no temporary files left behind by the atomic writers
    assert not [p for p in r.rglob("*.tmp*")]


def test_every_json_of_the_run_is_strict_json(run):
    """NaN and inf are written as null (issue 24 §3): strict parsers read every JSON file."""
    wd, _, _ = run

    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    files = sorted((wd / "results" / "tiny").rglob("*.json"))
    assert len(files) >= 20  # splits, indexes, thresholds, metrics of every method and scope
    for f in files:
        json.loads(f.read_text(), parse_constant=refuse)
    for f in (wd / "results" / "tiny" / REP / "scores").rglob("*.npz"):
        json.loads(str(np.load(f)["provenance"]), parse_constant=refuse)


def test_metrics_table_values_are_sane(run):
    wd, _, _ = run
    r = wd / "results" / "tiny"
    df = pd.read_csv(r / "tables" / "metrics.csv")
    per = df[df["class"] != "macro"]
    assert len(per) == 2 * 4 * len(CLASSES)  # methods x scopes x classes
    assert set(per["scope"]) == {"per_class", "global", "unified_abs", "routed"}
    assert (per["repeat"] == REP).all()
    assert per["auroc"].between(0, 1).all()
    assert per["pixel_auroc"].between(0, 1).all()
    assert per["au_pro"].between(0, 1).all()
    # issue 22's benchmark metrics, defined for every class of the tiny data (masks, both labels)
    for col in ("f1_max", "pixel_ap", "pixel_f1_max", "au_pro_strict", "mad"):
        assert per[col].between(0, 1).all(), col
    assert (per["f1_max"] >= per["f1"] - 1e-12).all()  # the calibrated F1 is one of the F1s
    mean7 = per[["auroc", "auprc", "f1_max", "pixel_auroc", "pixel_ap", "pixel_f1_max", "au_pro"]].mean(axis=1)
    assert np.allclose(per["mad"], mean7, atol=1e-12)
    assert (per["auroc_low"] <= per["auroc"] + 1e-12).all()
    assert (per["auroc_high"] >= per["auroc"] - 1e-12).all()
    for cls in CLASSES:
        s = json.loads((r / REP / "splits" / f"{cls}.json").read_text())
        rows = per[per["class"] == cls]
        assert (rows["n_test"] == s["counts"]["test"]["total"]).all()
        assert (rows["n_test_anomalous"] == s["counts"]["test"]["anomalous"]).all()
        assert (rows["n_val"] == s["counts"]["val"]["total"]).all()


def test_thresholds_come_from_the_calibrate_rule(run):
    """evaluate reads the threshold files; the absolute-unified scope shares ONE pooled threshold
    (F1-max on the pooled validation split), the global model's scores and its pixel metrics."""
    wd, _, _ = run
    r = wd / "results" / "tiny" / REP
    for m in ("patchcore", "padim"):
        pooled = json.loads((r / "thresholds" / m / "pooled.json").read_text())
        assert pooled["classes"] == sorted(CLASSES) or set(pooled["classes"]) == set(CLASSES)
        assert pooled["scope"] == "unified_abs"
        # which model and which threshold, said explicitly beside the scope (issue 20 §4)
        assert (pooled["model_type"], pooled["threshold_type"], pooled["model"]) == ("global", "pooled", "global")
        for f in sorted((r / "metrics" / m).rglob("*.json")) + sorted((r / "thresholds" / m).rglob("*.json")):
            d = json.loads(f.read_text())
            assert {k: d[k] for k in ("model_type", "threshold_type")} == scope_fields(d["scope"]), f
            assert d["model"] == ("global" if d["model_type"] == "global" else f.stem), f
        for cls in CLASSES:
            for scope, thr_file in ((cls, r / "thresholds" / m / cls / f"{cls}.json"),
                                    ("global", r / "thresholds" / m / "global" / f"{cls}.json"),
                                    ("unified_abs", r / "thresholds" / m / "pooled.json")):
                metrics = json.loads((r / "metrics" / m / scope / f"{cls}.json").read_text())
                assert metrics["threshold"] == json.loads(thr_file.read_text())["threshold"]
            gl = json.loads((r / "metrics" / m / "global" / f"{cls}.json").read_text())
            ab = json.loads((r / "metrics" / m / "unified_abs" / f"{cls}.json").read_text())
            assert ab["pixel"] == gl["pixel"] and ab["test"]["auroc"] == gl["test"]["auroc"]
        conf = pd.read_csv(r / "tables" / f"confusion_{m}.csv")
        assert (conf["threshold_class"] == "one pooled threshold").sum() == len(CLASSES)
    gap = pd.read_csv(r.parent / "tables" / "gap.csv")
    assert gap.loc[gap["metric"] == "f1", "gap_abs"].notna().all()
    assert "What class identity at inference buys" in (r.parent / "summary.md").read_text()


def test_routed_scope_routes_by_image_and_applies_the_predicted_threshold(run):
    """Issue 20 §3: one routing job per repeat and feature set; routed metrics per true class,
    each test image at its predicted class's global threshold; threshold-free metrics and pixel
    metrics equal the global scope's; routed rows in metrics.csv, gap.csv and the summary."""
    wd, _, _ = run
    r = wd / "results" / "tiny" / REP
    routing_files = sorted((r / "routing").glob("*.json"))
    assert [f.stem for f in routing_files] == ["efficientnet_lite0-imagenet"]  # both methods' set
    routing = json.loads(routing_files[0].read_text())
    assert routing["classes"] == CLASSES and routing["k"] == 5
    acc = pd.read_csv(r / "tables" / "routing_accuracy_efficientnet_lite0-imagenet.csv").set_index("class")
    conf = pd.read_csv(r / "tables" / "routing_efficientnet_lite0-imagenet.csv")
    assert (r / "figures" / "routing_efficientnet_lite0-imagenet.png").stat().st_size > 10_000
    for cls in CLASSES:
        split = json.loads((r / "splits" / f"{cls}.json").read_text())
        test_paths = [e["path"] for e in split["splits"]["test"]]
        entry = routing["test"][cls]
        assert entry["paths"] == test_paths and set(entry["predicted"]) <= set(CLASSES)
        hits = sum(p == cls for p in entry["predicted"])
        assert acc.at[cls, "n_correct"] == hits and acc.at[cls, "accuracy"] == pytest.approx(hits / len(test_paths))
        c = conf[conf["true_class"] == cls]
        assert c["n"].sum() == len(test_paths) and c["percent"].sum() == pytest.approx(100.0)
        for m in ("patchcore", "padim"):
            rt = json.loads((r / "metrics" / m / "routed" / f"{cls}.json").read_text())
            gl = json.loads((r / "metrics" / m / "global" / f"{cls}.json").read_text())
            assert rt["scope"] == "routed" and rt["class"] == cls and rt["threshold"]["threshold"] is None
            assert rt["pixel"] == gl["pixel"] and rt["mad"] == gl["mad"]
            for key in ("auroc", "auprc", "f1_max", "auroc_ci", "n", "n_anomalous"):
                assert rt["test"][key] == gl["test"][key], key
            sc = np.load(r / "scores" / m / "global" / f"{cls}.npz")
            pred = dict(zip(entry["paths"], entry["predicted"]))
            thr = {c2: json.loads((r / "thresholds" / m / "global" / f"{c2}.json").read_text())["threshold"]["threshold"]
                   for c2 in CLASSES}
            used = np.array([thr[pred[str(p)]] for p in sc["test_paths"]])
            flagged = sc["test_scores"].astype(np.float64) >= used
            lab = sc["test_labels"].astype(bool)
            assert rt["test"]["tp"] == int((flagged & lab).sum()) and rt["test"]["fp"] == int((flagged & ~lab).sum())
    mt = pd.read_csv(r.parent / "tables" / "metrics.csv")
    routed = mt[mt["scope"] == "routed"]
    assert set(routed["class"]) == {*CLASSES, "macro"} and routed["threshold"].isna().all()
    gap = pd.read_csv(r.parent / "tables" / "gap.csv")
    f1 = gap[(gap["metric"] == "f1") & (gap["class"] != "macro")]
    assert f1["gap_routed"].notna().all()
    assert (f1["gap_routed_low"] <= f1["gap_routed"] + 1e-12).all()
    au = gap[gap["metric"] == "auroc"]
    assert np.allclose(au["gap_routed"], au["gap"])
    across = pd.read_csv(r.parent / "tables" / "gap_across_repeats.csv")
    assert set(across.loc[across["versus"] == "routed", "metric"]) == {"f1", "accuracy"}
    text = (r.parent / "summary.md").read_text()
    assert "vs routed" in text and "5-NN vote" in text and "routed to their own class" in text
    assert f"{int(acc.at['all', 'n_correct'])} of {int(acc.at['all', 'n_test'])} test images" in text


def test_one_repeat_reports_across_repeat_statistics_as_na(run):
    wd, _, _ = run
    r = wd / "results" / "tiny"
    across = pd.read_csv(r / "tables" / "metrics_across_repeats.csv")
    auroc = across[across["metric"] == "auroc"]
    assert (auroc["n_repeats"] == 1).all() and auroc["sd"].isna().all() and auroc["ci_low"].isna().all()
    gap = pd.read_csv(r / "tables" / "gap_across_repeats.csv")
    assert gap["p_value"].isna().all() and gap["holds"].isna().all()
    assert "One repeat (s42-m0): no across-repeat spread, interval or paired test" in (r / "summary.md").read_text()


def test_changed_threshold_mode_reruns_calibration_and_evaluation_only(run):
    wd, _, _ = run
    write_config(wd, threshold={"mode": "study"})
    try:
        jobs = planned_jobs(wd)
    finally:
        write_config(wd)
    rules = {r for r, _ in jobs}
    assert {"calibrate", "calibrate_global", "evaluate", "evaluate_global"} <= rules
    upstream = {"splits", "preprocess_images", "extract_features", "fit_class", "fit_global",
                "score", "score_global", "tsne", "route"}  # routing reads no threshold
    assert not rules & upstream


def test_changed_routing_k_reruns_routing_and_the_global_evaluation_only(run):
    wd, _, _ = run
    write_config(wd, routing={"k": 3})
    try:
        jobs = planned_jobs(wd)
    finally:
        write_config(wd)
    rules = {r for r, _ in jobs}
    assert [w for r, w in jobs if r == "route"] == [
        {"repeat": REP, "ph": "", "fset": "efficientnet_lite0-imagenet"}]  # one per repeat and feature set
    assert {"evaluate_global", "metrics_table", "gap", "summary"} <= rules
    assert not rules & {"extract_features", "fit_class", "fit_global", "score", "score_global",
                        "calibrate", "calibrate_global", "evaluate", "tsne"}


def test_nothing_to_do_after_a_complete_run(run):
    wd, _, _ = run
    assert planned_jobs(wd) == []


def test_deleted_intermediate_is_rebuilt_when_named_as_a_target(run):
    """docs/troubleshooting.md "Deleting a corrupt file": a deleted intermediate of a finished
    run is not rebuilt by a plain rerun ("Nothing to be done"), but naming it beside ``all`` is,
    with what depends on it, in one run; the same for a features file (dry run)."""
    wd, _, _ = run
    rel = f"results/tiny/{REP}/scores/padim/synth_nut/synth_nut.npz"
    f = wd / rel
    original = f.read_bytes()
    f.unlink()
    try:
        assert planned_jobs(wd) == []  # what the user saw: Nothing to be done
        proc = snakemake(wd, "--cores", "2", rel, "all")
    finally:
        if not f.exists():
            f.write_bytes(original)
    log = proc.stdout + proc.stderr
    assert f.read_bytes() == original  # recreated, deterministic
    for rule in ("score", "evaluate", "metrics_table", "gap", "summary"):
        assert f"rule {rule}:" in log, (rule, log[-3000:])
    assert "rule fit_class:" not in log and "rule extract_features:" not in log
    assert planned_jobs(wd) == []
    feats = sorted((wd / "results" / "tiny" / "features").rglob("synth_nut.pt"))[0]
    kept, st = feats.read_bytes(), feats.stat()
    feats.unlink()
    try:
        jobs = planned_jobs(wd, str(feats.relative_to(wd)), "all")
    finally:
        feats.write_bytes(kept)
        os.utime(feats, ns=(st.st_atime_ns, st.st_mtime_ns))
    # (dom: the data-domain path word, empty on the clean chain; rules/shift_paths.smk)
    assert ("extract_features", {"dom": "", "fset": feats.parent.name, "cls": "synth_nut"}) in jobs
    assert {"fit_class", "score", "evaluate", "summary"} <= {r for r, _ in jobs}


def test_changed_image_reruns_only_that_class(run):
    wd, _, _ = run
    img = sorted((wd / "data" / "synth_carpet" / "train" / "good").iterdir())[0]
    original = img.read_bytes()
    before = img.stat()
    # Snakemake 9 checks content, not just mtime: really change one pixel.
    pixels = np.array(Image.open(img))
    pixels[0, 0] = 255 - pixels[0, 0]
    Image.fromarray(pixels).save(img)
    later = time.time() + 5
    os.utime(img, (later, later))
    try:
        jobs = planned_jobs(wd)
    finally:
        img.write_bytes(original)
        os.utime(img, ns=(before.st_atime_ns, before.st_mtime_ns))
    fits = {(w.get("method"), w.get("cls")) for r, w in jobs if r == "fit_class"}
    assert fits == {("patchcore", "synth_carpet"), ("padim", "synth_carpet")}
    assert {r for r, _ in jobs} >= {"splits", "preprocess_images", "extract_features", "fit_global", "summary"}
    touched = {w.get("cls") for r, w in jobs if r in ("splits", "preprocess_images", "extract_features")}
    assert touched == {"synth_carpet"}
    # the class's images are decoded once, for every feature set
    assert [w for r, w in jobs if r == "preprocess_images"] == [{"cls": "synth_carpet"}]
    # per-class scores are recomputed for the changed class only (rule score's wildcards are
    # method and cls); the global model, refitted, rescores every class in one job per method
    scored = {(w.get("method"), w.get("cls")) for r, w in jobs if r == "score"}
    assert scored == {("patchcore", "synth_carpet"), ("padim", "synth_carpet")}
    assert sorted(w.get("method") for r, w in jobs if r == "score_global") == ["padim", "patchcore"]


def test_per_class_parameter_reruns_only_that_class(run):
    wd, _, _ = run
    write_config(wd, class_overrides={"synth_nut": {"patchcore": {"coreset_ratio": 0.2}}})
    try:
        jobs = planned_jobs(wd)
    finally:
        write_config(wd)
    fits = {(w.get("method"), w.get("cls")) for r, w in jobs if r == "fit_class"}
    assert fits == {("patchcore", "synth_nut")}
    rules = {r for r, _ in jobs}
    assert "fit_global" not in rules and "extract_features" not in rules
    assert "preprocess_images" not in rules and "splits" not in rules
    assert "summary" in rules


def test_changed_backbone_reextracts_without_decoding(run):
    """A new feature set reads the cached images: extraction reruns, decoding does not."""
    wd, _, _ = run
    other = {"backbone": "resnet18", "weights": "random"}
    write_config(wd, patchcore=other, padim=other)
    try:
        jobs = planned_jobs(wd)
    finally:
        write_config(wd)
    rules = {r for r, _ in jobs}
    assert "preprocess_images" not in rules and "splits" not in rules
    extracted = {(w.get("fset"), w.get("cls")) for r, w in jobs if r == "extract_features"}
    assert extracted == {("resnet18-random", c) for c in CLASSES}


def test_changed_preprocess_redecodes_every_class(run):
    wd, _, _ = run
    write_config(wd, preprocess={"resize": 72, "crop": 64})
    try:
        jobs = planned_jobs(wd)
    finally:
        write_config(wd)
    assert {w.get("cls") for r, w in jobs if r == "preprocess_images"} == set(CLASSES)
    assert {w.get("cls") for r, w in jobs if r == "extract_features"} == set(CLASSES)
    assert "splits" not in {r for r, _ in jobs}


def test_adding_a_class_leaves_other_models_untouched(run):
    wd, _, _ = run
    make_dataset(wd / "data", ["synth_zipper"])
    write_config(wd, classes=CLASSES + ["synth_zipper"])
    try:
        jobs = planned_jobs(wd)
    finally:
        write_config(wd)
    fits = {w.get("cls") for r, w in jobs if r == "fit_class"}
    assert fits == {"synth_zipper"}
    assert "fit_global" in {r for r, _ in jobs}


def test_html_report_builds(run):
    wd, _, _ = run
    snakemake(wd, "--report", "results/tiny/report.html")
    html = (wd / "results" / "tiny" / "report.html").read_text(errors="replace")
    assert len(html) > 100_000
    for name in ("gap.png", "tsne.png", "metrics.csv", "summary.md"):
        assert name in html
