"""Two runs with different run names in one checkout keep separate, complete outputs, and
rule compare puts them side by side in one table and one figure."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workflow_utils import make_dataset, snakemake, write_config  # noqa: E402

pytestmark = [pytest.mark.workflow, pytest.mark.slow]
ONE = {"classes": ["synth_nut"], "methods": ["patchcore"]}


def test_two_named_runs_kept_apart_and_compared(tmp_path):
    make_dataset(tmp_path / "data", ["synth_nut"])
    write_config(tmp_path, run_name="ratio10", **ONE)
    snakemake(tmp_path, "--cores", "2")
    first = (tmp_path / "results" / "ratio10" / "tables" / "metrics.csv").read_bytes()
    write_config(tmp_path, run_name="ratio50", patchcore={"coreset_ratio": 0.5}, **ONE)
    snakemake(tmp_path, "--cores", "2")
    for run in ("ratio10", "ratio50"):
        r = tmp_path / "results" / run
        assert (r / "summary.md").is_file() and (r / "figures" / "gap.png").is_file()
        assert (r / "s42-m0" / "models" / "patchcore" / "global.pt").is_file()
    # the second run did not touch the first
    assert (tmp_path / "results" / "ratio10" / "tables" / "metrics.csv").read_bytes() == first
    out = tmp_path / "results" / "compare" / "ratio10_vs_ratio50"
    snakemake(tmp_path, "--cores", "1", "results/compare/ratio10_vs_ratio50/metrics.csv")
    t = pd.read_csv(out / "metrics.csv")
    assert list(t.columns) == ["method", "scope", "class", "metric", "ratio10", "ratio50"]
    a = pd.read_csv(tmp_path / "results" / "ratio10" / "tables" / "metrics.csv")
    row = t[(t.scope == "per_class") & (t["class"] == "synth_nut") & (t.metric == "auroc")]
    ref = a[(a.scope == "per_class") & (a["class"] == "synth_nut")]["auroc"].item()
    assert row["ratio10"].item() == pytest.approx(ref)
    assert (out / "metrics.png").stat().st_size > 10_000
    # an unfinished run is named, before any job runs
    proc = snakemake(tmp_path, "--cores", "1", "results/compare/ratio10_vs_nope/metrics.csv", check=False)
    assert proc.returncode != 0 and "results/nope/tables/metrics.csv" in proc.stderr
