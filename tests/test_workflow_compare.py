"""Two runs with different run names in one checkout keep separate, complete outputs, and
rule compare puts them side by side in one table and one figure.

The first run is the session's shared tiny run (tests/conftest.py ``tiny_run``: run name
``tiny``, two classes, both methods); the second, ``ratio50``, runs in the same folder with one
class, PatchCore only and another coreset ratio, and the shared config is put back afterwards.
"""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from workflow_utils import snakemake, write_config

pytestmark = [pytest.mark.workflow, pytest.mark.slow]
ONE = {"classes": ["synth_nut"], "methods": ["patchcore"]}


def _digests(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_two_named_runs_kept_apart_and_compared(tiny_run):
    wd, _, _ = tiny_run
    first = _digests(wd / "results" / "tiny")
    write_config(wd, run_name="ratio50", patchcore={"coreset_ratio": 0.5}, **ONE)
    try:
        snakemake(wd, "--cores", "2")
    finally:
        write_config(wd)  # the shared run's config, as other tests expect it
    for run in ("tiny", "ratio50"):
        r = wd / "results" / run
        assert (r / "summary.md").is_file() and (r / "figures" / "gap.png").is_file()
        assert (r / "s42-m0" / "models" / "patchcore" / "global.pt").is_file()
    # the second run did not touch the first: every file of run tiny is byte-identical
    assert _digests(wd / "results" / "tiny") == first
    out = wd / "results" / "compare" / "tiny_vs_ratio50"
    snakemake(wd, "--cores", "1", "results/compare/tiny_vs_ratio50/metrics.csv")
    t = pd.read_csv(out / "metrics.csv")
    assert list(t.columns) == ["method", "scope", "class", "metric", "tiny", "ratio50"]
    # embedded runs: no published MVTec AD numbers beside them, and no sources listed
    assert (wd / "results" / "tiny" / "config.json").is_file()
    assert pd.read_csv(out / "published.csv").empty
    for run in ("tiny", "ratio50"):
        a = pd.read_csv(wd / "results" / run / "tables" / "metrics.csv")
        row = t[(t.method == "patchcore") & (t.scope == "per_class") & (t["class"] == "synth_nut")
                & (t.metric == "auroc")]
        ref = a[(a.method == "patchcore") & (a.scope == "per_class") & (a["class"] == "synth_nut")]
        assert row[run].item() == pytest.approx(ref["auroc"].item())
    # rows only the first run has (PaDiM, the second class) are N/A for the second
    only_first = t[(t.method == "padim") & (t.metric == "auroc") & (t["class"] == "synth_carpet")]
    assert len(only_first) and only_first["tiny"].notna().all() and only_first["ratio50"].isna().all()
    assert (out / "metrics.png").stat().st_size > 10_000
    # an unfinished run is named, before any job runs
    proc = snakemake(wd, "--cores", "1", "results/compare/tiny_vs_nope/metrics.csv", check=False)
    assert proc.returncode != 0 and "results/nope/tables/metrics.csv" in proc.stderr
