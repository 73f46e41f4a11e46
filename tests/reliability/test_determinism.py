"""Determinism: two runs of the tiny default config in two folders give identical bytes.

The second run is the crash-safety run (conftest ``resumed_run``): it was computed from scratch
in another folder, killed during a fit and resumed, so identical bytes show both that a run is
reproducible and that resuming changes nothing. (Two workflow runs is what the test budget
allows on a 2-core machine; a third, uninterrupted one would add no coverage of the code.)
"""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

#: wall-clock timings and time stamps by design (index/stat: each data file's stat, issue 24)
SKIP = ("logs", "benchmarks", "stat")


def _files(wd):
    r = wd / "results" / "tiny"
    return {
        str(p.relative_to(r)): p
        for p in sorted(r.rglob("*"))
        if p.is_file() and not set(p.relative_to(r).parts) & set(SKIP)
    }


def test_tables_summary_and_metrics_are_bit_identical(reference_run, resumed_run):
    a, b = _files(reference_run[0]), _files(resumed_run["workdir"])
    assert sorted(a) == sorted(b)
    rep = "s42-m0/"  # the one repeat of the default config
    must = [k for k in a if k.startswith(("tables/", rep + "tables/", rep + "metrics/", rep + "thresholds/"))
            or k == "summary.md"]
    assert len([k for k in must if k.startswith("tables/")]) >= 5
    assert len([k for k in must if k.startswith(rep + "metrics/")]) == 8  # 2 methods x 4 scopes (per-class, global, unified_abs, routed)
    differ = [k for k in must if a[k].read_bytes() != b[k].read_bytes()]
    assert differ == [], f"differ between two runs: {differ}"


def test_every_other_result_file_is_bit_identical(reference_run, resumed_run):
    """splits, features, models, scores and figures too (torch files included: io.save_torch
    writes through a file object so the archive's inner folder name does not vary)."""
    a, b = _files(reference_run[0]), _files(resumed_run["workdir"])
    differ = [k for k in a if a[k].read_bytes() != b[k].read_bytes()]
    assert differ == [], f"differ between two runs: {differ}"


def test_metrics_json_is_key_sorted_and_free_of_run_specific_values(reference_run):
    r = reference_run[0] / "results" / "tiny"
    for f in (r / "s42-m0" / "metrics").rglob("*.json"):
        text = f.read_text()
        obj = json.loads(text)
        assert text == json.dumps(obj, indent=2, sort_keys=True) + "\n"
        assert str(reference_run[0]) not in text  # no absolute path of the run folder
