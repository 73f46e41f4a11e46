"""Workflow tests of domain shift on tiny data: rule shift_images (the shifted copy in MVTec
layout with its parameter table; a changed shift parameter reruns the shift job only) and the
three adaptation phases for every scope and method (tables, figure, summary lines)."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from workflow_utils import TINY, make_dataset, planned_jobs, snakemake, write_config

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

CLS = "synth_nut"
SHIFT = "results/tiny/shift/paper-s0"
TARGETS = (f"{SHIFT}/{CLS}", f"{SHIFT}/{CLS}_params.csv")


def test_shift_rule_writes_mvtec_layout_and_reruns_alone(tmp_path):
    make_dataset(tmp_path / "data", [CLS])
    write_config(tmp_path, classes=[CLS], shift={"enabled": True})
    snakemake(tmp_path, "--cores", "1", *TARGETS)
    out = tmp_path / SHIFT / CLS
    with open(tmp_path / TARGETS[1], newline="") as fh:
        rows = list(csv.DictReader(fh))
    data = tmp_path / "data" / CLS
    originals = sorted(p.relative_to(data) for p in data.glob("t*/*/*.png"))
    assert sorted(r["shifted"] for r in rows) == sorted(str(p) for p in originals)
    assert [int(r["seed"]) for r in rows] == list(range(len(rows)))  # seed 0 + index
    masks = [r for r in rows if r["shifted_mask"]]
    assert masks and len(masks) == sum(1 for r in rows if "/good/" not in r["shifted"])
    for r in rows:
        with Image.open(out / r["shifted"]) as im:
            assert im.size == (64, 64) and im.mode == "RGB"  # shift.crop = the clean input (64)
        if r["shifted_mask"]:
            with Image.open(out / r["shifted_mask"]) as m:
                arr = np.asarray(m)
            assert arr.shape == (64, 64) and set(np.unique(arr)) <= {0, 255}
    assert (tmp_path / "results/tiny/logs/shift_images/paper-s0" / f"{CLS}.log").exists()
    assert planned_jobs(tmp_path, *TARGETS) == []  # up to date

    cfg_path = tmp_path / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["shift"]["rotation"] = [-5, 5]
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    jobs = planned_jobs(tmp_path, *TARGETS)
    assert jobs == [("shift_images", {"sname": "paper-s0", "cls": CLS})]
    # the default target includes the shifted copy; the clean chain never reads it
    full = {name for name, _ in planned_jobs(tmp_path)}
    assert "shift_images" in full and "all" in full


# --- the three adaptation phases (issue 21 §2), one tiny run shared by the tests below

PHASES = ("none", "threshold", "full")
SCOPES = ("per_class", "global", "unified_abs", "routed")
RUN = "results/tiny"
PHASE_DIR = f"{RUN}/s42-m0/shift/paper-s0"
TARGETS_PHASES = (f"{RUN}/tables/shift_metrics.csv", f"{RUN}/summary.md",
                  *(f"{RUN}/figures/shift_examples_{c}.png" for c in TINY["classes"]))


@pytest.fixture(scope="module")
def phase_run(tmp_path_factory):
    """Two classes with shift on, run end to end (the default target: every clean output, the
    shift tables, summary.md and the shifted examples figures; --cores 2)."""
    wd = tmp_path_factory.mktemp("shift_phases")
    make_dataset(wd / "data", TINY["classes"], counts={"train_good": 8, "test_good": 4, "anomalies": 6})
    # one method keeps CI time down: the phase chain is method-agnostic (it iterates METHODS)
    # study_reference on: the study's published shift numbers beside ours (synth_nut/synth_carpet
    # mirror hazelnut/carpet)
    write_config(wd, shift={"enabled": True}, methods=["padim"], study_reference=True,
                 evaluation={"bootstrap": {"n": 20, "seed": 0}})
    snakemake(wd, "--cores", "2")
    return wd


def test_every_phase_scope_and_method_in_the_shift_tables(phase_run):
    df = pd.read_csv(phase_run / RUN / "tables/shift_metrics.csv")
    methods = yaml.safe_load((phase_run / "config.yaml").read_text())["methods"]
    want = {(p, m, s, c) for p in ("clean", *PHASES) for m in methods for s in SCOPES
            for c in TINY["classes"]}
    got = {tuple(r) for r in df[["phase", "method", "scope", "class"]].itertuples(index=False)}
    assert want <= got
    assert df[df["class"] != "macro"]["auroc"].between(0, 1).all()
    cost = pd.read_csv(phase_run / RUN / "tables/shift_cost.csv")
    assert set(cost["phase"]) == set(PHASES) and set(cost["scope"]) == set(SCOPES)
    row = cost[(cost["metric"] == "auroc") & (cost["class"] != "macro")].iloc[0]
    assert np.isclose(row["cost"], row["clean"] - row["shifted"])
    auroc = cost[(cost["metric"] == "auroc") & (cost["class"] != "macro")
                 & (cost["scope"] != "unified_abs")]
    assert auroc["cost_low"].notna().all() and (auroc["cost_low"] <= auroc["cost_high"]).all()
    gap = pd.read_csv(phase_run / RUN / "tables/shift_gap.csv")
    assert set(gap["phase"]) == {"clean", *PHASES}
    across = pd.read_csv(phase_run / RUN / "tables/shift_gap_across_repeats.csv")
    assert set(across["phase"]) == {"clean", *PHASES}


def test_phases_reuse_the_clean_models_and_thresholds(phase_run):
    rep = phase_run / PHASE_DIR
    # none and threshold score with the clean models (one scores folder, none's); only full fits
    assert (rep / "none/scores").is_dir() and not (rep / "threshold/scores").exists()
    assert not (rep / "none/models").exists() and (rep / "full/models").is_dir()
    assert not (rep / "none/thresholds").exists() and (rep / "threshold/thresholds").is_dir()
    m = [json.loads((rep / p / "metrics/padim/global/synth_nut.json").read_text()) for p in PHASES]
    clean_thr = json.loads((phase_run / RUN / "s42-m0/thresholds/padim/global/synth_nut.json").read_text())
    assert m[0]["threshold"]["threshold"] == clean_thr["threshold"]["threshold"]
    assert m[0]["test"]["auroc"] == m[1]["test"]["auroc"]  # same scores, other threshold
    # the shifted split holds the clean split's images, shifted, in the same order
    clean = json.loads((phase_run / RUN / "s42-m0/splits/synth_nut.json").read_text())
    shifted = json.loads((rep / "splits/synth_nut.json").read_text())
    for name in ("train", "val", "test"):
        assert [e["shift_of"] for e in shifted["splits"][name]] == [e["path"] for e in clean["splits"][name]]
        assert [e["label"] for e in shifted["splits"][name]] == [e["label"] for e in clean["splits"][name]]


def test_phase_figure_and_summary_lines(phase_run):
    methods = yaml.safe_load((phase_run / "config.yaml").read_text())["methods"]
    for m in methods:
        with Image.open(phase_run / RUN / f"figures/shift_{m}.png") as im:
            assert im.size[0] > 400 and im.size[1] > 200
    # the shifted examples: per image, a per-class and a global row of 3 image + 4 phase panels
    n = yaml.safe_load((phase_run / "config.yaml").read_text())["analysis"]["examples_per_class"]
    for c in TINY["classes"]:
        with Image.open(phase_run / RUN / f"figures/shift_examples_{c}.png") as im:
            assert im.size[0] > (3 + 4 * len(methods)) * 150 and im.size[1] > 2 * n * 150
    assert (phase_run / RUN / "logs/shift_examples/synth_nut.log").exists()
    table = pd.read_csv(phase_run / RUN / "tables/shift_metrics.csv")
    assert list(table.columns[:3]) == ["repeat", "shift_seed", "phase"] and set(table["shift_seed"]) == {0}
    text = (phase_run / RUN / "summary.md").read_text()
    section = text.split("### Domain shift", 1)[1].split("\n## ", 1)[0]
    assert "unification costs" in section and "recovers most" in section
    # the study's MVTec-Shift numbers beside ours, per-class models, each phase it published
    sbs = pd.read_csv(phase_run / RUN / "tables/shift_side_by_side.csv")
    assert set(sbs["phase"]) == {"none", "threshold", "full"} and set(sbs["class"]) == set(TINY["classes"])
    assert (sbs["study"] > 0).all() and "study's published MVTec-Shift numbers" in section
    assert re.search(r"\| PaDiM\s+\| none\s+\| synth_nut\s+\|", section), section
    assert len([x for x in section.splitlines() if x.startswith("- ")]) >= 2 * len(methods)



def test_a_shift_parameter_reruns_only_the_shifted_chain(phase_run):
    cfg_path = phase_run / "config.yaml"
    text = cfg_path.read_text()
    assert planned_jobs(phase_run) == []  # the whole run, shift included, is up to date
    cfg = yaml.safe_load(text)
    cfg["shift"]["rotation"] = [-5, 5]
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    try:
        jobs = planned_jobs(phase_run, *TARGETS_PHASES)
    finally:
        cfg_path.write_text(text)
    rules = {r for r, _ in jobs}
    assert {"shift_images", "shift_cache", "shift_splits", "fit_class", "evaluate", "shift_tables"} <= rules
    clean = [(r, w) for r, w in jobs
             if r not in ("shift_images", "shift_cache", "shift_splits", "shift_tables", "shift_examples", "summary")
             and not (w.get("ph") or w.get("dom"))]
    assert clean == []


def test_repeats_fan_out_over_shift_seeds(phase_run):
    """A second repeat (split seed 43) reads its own shifted copy, seed 0 + 100000: shifted,
    decoded and extracted once; the first repeat (shift seed 0) and its copy rerun nothing."""
    cfg_path = phase_run / "config.yaml"
    text = cfg_path.read_text()
    cfg = yaml.safe_load(text)
    cfg["repeats"] = {"split_seeds": [42, 43]}
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    try:
        jobs = planned_jobs(phase_run, *TARGETS_PHASES)
    finally:
        cfg_path.write_text(text)
    new = "paper-s100000"
    for rule in ("shift_images", "shift_cache"):
        assert sorted(w["cls"] for r, w in jobs if r == rule) == sorted(TINY["classes"])
        assert {w["sname"] for r, w in jobs if r == rule} == {new}
    ext = [w for r, w in jobs if r == "extract_features"]
    assert sorted(w["cls"] for w in ext) == sorted(TINY["classes"])
    assert {w["dom"] for w in ext} == {f"shift/{new}/"}
    assert [j for j in jobs if j[1].get("repeat") == "s42-m0"] == []
    phases = {w["ph"] for r, w in jobs if w.get("repeat") == "s43-m0" and w.get("ph")}
    assert phases == {f"shift/{new}/{p}/" for p in PHASES}
    assert {w["sname"] for r, w in jobs if r == "shift_splits"} == {new}
