"""adloc used as a Snakemake module from another folder (issue 22 §4).

A project folder holds only its own Snakefile (``module adloc: snakefile: <checkout>/Snakefile,
config: config``, ``use rule * from adloc as adloc_*`` and a ``rule all`` on
``rules.adloc_all.input``, the README's form), a config that sets only what it changes, and its
data (one class, PaDiM only: the whole DAG, 21 jobs, in about 2.5 minutes on 2 cores). Snakemake runs there; the outputs land under that folder, the workflow's
scripts, envs, report captions, src/ and config.yaml defaults are read from the checkout, and
nothing is written into the checkout.
"""

from __future__ import annotations

import json
import os
import subprocess

import pandas as pd
import pytest
import yaml

from workflow_utils import ROOT, SNAKEMAKE, TINY, make_dataset

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

USER_SNAKEFILE = """\
configfile: "config.yaml"


module adloc:
    snakefile:
        "{snakefile}"
    config:
        config


use rule * from adloc as adloc_*


rule all:
    default_target: True
    input:
        rules.adloc_all.input,
"""
SKIP = {".git", ".venv", "__pycache__", ".pytest_cache"}


def _snapshot(root):
    """Every file under the checkout (bytecode caches, .git and a venv aside): path -> (size,
    mtime), so a new, removed or rewritten file shows."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIP]
        for f in filenames:
            p = os.path.join(dirpath, f)
            st = os.stat(p)
            out[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns)
    return out


def test_adloc_as_a_module_from_another_folder(tmp_path):
    proj = tmp_path / "project"
    proj.mkdir()
    make_dataset(proj / "data", ["synth_nut"])
    # only what this project changes: everything else comes from the module's config.yaml
    cfg = {**TINY, "classes": ["synth_nut"], "methods": ["padim"]}
    (proj / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (proj / "Snakefile").write_text(USER_SNAKEFILE.format(snakefile=ROOT / "Snakefile"))
    before = _snapshot(ROOT)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    # the user's own Snakefile, found in the working directory: no --snakefile, no --directory
    proc = subprocess.run([SNAKEMAKE, "--cores", "2"], cwd=proj, capture_output=True, text=True,
                          timeout=2400, env=env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-6000:]
    assert "adloc_metrics_table" in proc.stdout + proc.stderr  # the module's rules, prefixed
    run = proj / "results" / "tiny"
    metrics = pd.read_csv(run / "tables" / "metrics.csv")
    assert set(metrics["method"]) == {"padim"} and "synth_nut" in set(metrics["class"])
    assert metrics["auroc"].notna().all()
    assert (run / "s42-m0" / "models" / "padim" / "synth_nut.pt").is_file()
    assert (run / "summary.md").is_file() and (run / "figures" / "gap.png").is_file()
    assert (proj / ".snakemake").is_dir() and (run / "logs").is_dir()
    # the report reads its captions from the module's report/ folder
    rep = subprocess.run([SNAKEMAKE, "--report", "report.html"], cwd=proj, capture_output=True,
                         text=True, timeout=600, env=env)
    assert rep.returncode == 0, rep.stderr[-4000:]
    assert "the per-class model is better" in (proj / "report.html").read_text()  # report/gap.rst
    # defaults the project did not set came from the module's config.yaml
    used = json.loads((run / "config.json").read_text())
    defaults = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert used["splits"] == defaults["splits"] and used["classes"] == ["synth_nut"]
    assert used["dataset"]["root"] == "data"  # the user's data, relative to the user's folder
    # nothing was written into the checkout (outputs, logs, .snakemake, script copies)
    after = _snapshot(ROOT)
    added = sorted(set(after) - set(before))
    changed = sorted(k for k in before if k in after and before[k] != after[k])
    assert not added and not changed, f"written into the checkout: {added[:10]} {changed[:10]}"
    # a second run has nothing to do
    again = subprocess.run([SNAKEMAKE, "--cores", "1", "-n"], cwd=proj, capture_output=True,
                           text=True, timeout=600, env=env)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
