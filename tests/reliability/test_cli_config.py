"""``--config`` overrides on the command line (issue 24), through the real workflow.

Snakemake reads a nested ``--config`` value with YAML's base loader, so every scalar inside
arrives as a string; adloc types them by the schema (adloc.config.coerce_cli_config; the unit
tests are in tests/test_config.py). Each form here is one cheap dry run (the DAG is built, the
configuration validated, nothing computed).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from workflow_utils import ROOT, make_dataset, snakemake, write_config

from .conftest import CLASS, adloc_lines

#: (form, text its dry run must print); the first is the nested form README.md gives
FORMS = [
    ("dataset={root: ~/mine, generate: false}", "{home}/mine/" + CLASS + "/train/good/000.png"),
    ("offline=true", "This was a dry-run"),
    ("patchcore={coreset_ratio: 0.2}", "This was a dry-run"),
    ("splits={seed: 7}", "results/tiny/s7-m0/splits/" + CLASS + ".json"),
]


def test_the_readme_gives_the_nested_form_tested_here():
    readme = re.sub(r"\s+", " ", (ROOT / "README.md").read_text())
    assert f"--config '{FORMS[0][0]}'" in readme


@pytest.mark.workflow
@pytest.mark.slow
def test_config_forms_dry_run(tmp_path):
    home = tmp_path / "home"
    make_dataset(home / "mine", [CLASS])
    wd = tmp_path / "wd"
    wd.mkdir()
    write_config(wd, classes=[CLASS], dataset={"root": str(home / "mine"), "generate": False})
    env = {"HOME": str(home)}
    for form, expect in FORMS:
        proc = snakemake(wd, "-n", "--cores", "1", "--config", form, check=False, env=env)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"--config {form}:\n{out[-3000:]}"
        assert expect.format(home=home) in out, f"--config {form}: {expect} not in the plan"
    # a nested key given flat: one adloc line pointing to the form that works
    proc = snakemake(wd, "-n", "--cores", "1", "--config", "dataset_root=/x", check=False, env=env)
    out = proc.stdout + proc.stderr  # a dry run logs to stdout
    lines = adloc_lines(out)
    assert proc.returncode != 0 and len(lines) == 1, out[-3000:]
    assert "Did you mean dataset.root?" in lines[0] and "--config 'dataset={root: VALUE}'" in lines[0]
    assert "Traceback" not in out
    assert not (wd / "results").exists()
