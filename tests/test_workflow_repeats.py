"""The repeats preset at small size: 2 split seeds x 2 model seeds on tiny data.

Features are keyed by image: every repeat reads the one feature file per class, so extraction
runs once per class whatever the number of repeats; the tables carry a row per repeat and the
across-repeat mean, sd, t-interval and paired test; the summary names the test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from workflow_utils import ROOT, TINY, make_dataset, planned_jobs, snakemake, write_config

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

CLASSES = TINY["classes"]
SPLIT_SEEDS, MODEL_SEEDS = [1, 2], [0, 1]
REPEATS = [f"s{s}-m{m}" for s in SPLIT_SEEDS for m in MODEL_SEEDS]
METHODS = ["patchcore"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    wd = tmp_path_factory.mktemp("wf_repeats")
    make_dataset(wd / "data", CLASSES)
    # one method keeps the 4 repeats' job count near one default run's
    write_config(wd, methods=METHODS, repeats={"split_seeds": SPLIT_SEEDS, "model_seeds": MODEL_SEEDS})
    jobs = planned_jobs(wd)
    proc = snakemake(wd, "--cores", "2", timeout=2700)
    return wd, proc, jobs


def test_preset_runs_five_split_seeds_by_three_model_seeds():
    preset = yaml.safe_load((ROOT / "presets" / "repeats.yaml").read_text())
    assert len(preset["repeats"]["split_seeds"]) == 5 and len(preset["repeats"]["model_seeds"]) == 3


def test_features_are_extracted_once_per_class_whatever_the_repeats(run):
    _, _, jobs = run
    count = lambda rule: sum(1 for r, _ in jobs if r == rule)  # noqa: E731
    assert count("preprocess_images") == len(CLASSES)
    assert count("extract_features") == len(CLASSES)  # one feature set (both methods read it)
    assert count("fit_class") == len(METHODS) * len(CLASSES) * len(REPEATS)
    assert count("fit_global") == len(METHODS) * len(REPEATS)
    assert count("splits") == len(CLASSES) * len(REPEATS)


def test_repeats_differ_and_tables_have_a_row_per_repeat(run):
    wd, _, _ = run
    r = wd / "results" / "tiny"
    for rep in REPEATS:
        assert (r / rep / "tables" / "metrics.csv").is_file()
    # another split seed gives another split; another model seed the same split
    s1 = (r / "s1-m0" / "splits" / "synth_nut.json").read_text()
    assert s1 == (r / "s1-m1" / "splits" / "synth_nut.json").read_text()
    assert s1 != (r / "s2-m0" / "splits" / "synth_nut.json").read_text()
    df = pd.read_csv(r / "tables" / "metrics.csv")
    per = df[df["class"] != "macro"]
    assert sorted(per["repeat"].unique()) == REPEATS
    assert len(per) == len(REPEATS) * len(METHODS) * 4 * len(CLASSES)
    across = pd.read_csv(r / "tables" / "metrics_across_repeats.csv")
    au = across[(across["metric"] == "auroc") & (across["class"] != "macro")]
    assert (au["n_repeats"] == len(REPEATS)).all()
    for _, row in au.iterrows():  # the mean is the mean of the per-repeat rows
        vals = per[(per["method"] == row["method"]) & (per["scope"] == row["scope"])
                   & (per["class"] == row["class"])]["auroc"]
        assert row["mean"] == pytest.approx(vals.mean())
        assert row["ci_low"] <= row["mean"] <= row["ci_high"]
    gap = pd.read_csv(r / "tables" / "gap_across_repeats.csv")
    assert set(gap["versus"]) == {"global", "unified_abs", "routed"}
    assert gap.loc[gap["versus"] != "global", "metric"].isin(["f1", "accuracy"]).all()
    assert np.isfinite(gap.loc[gap["metric"] == "auroc", "sd"]).any()


def test_summary_reports_intervals_and_the_paired_test(run):
    wd, _, _ = run
    r = wd / "results" / "tiny"
    text = (r / "summary.md").read_text()
    assert "### Across repeats" in text and "4 repeats (s1-m0, s1-m1, s2-m0, s2-m1" in text
    assert "Paired t-test across repeats (scipy.stats.ttest_rel)" in text
    assert "What class identity at inference buys" in text
    assert (r / "figures" / "gap.png").stat().st_size > 10_000


def test_nothing_to_do_after_a_complete_run(run):
    wd, _, _ = run
    assert planned_jobs(wd) == []
