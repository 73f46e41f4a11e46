"""adloc.workflow.run_script's thread caps (issue 23 §1): a job caps torch's threads at the rule's
``threads`` when it imports torch, and a job that needs no tensors never imports torch at all
(torch's import is 2-5 s of every job that pays it). Each case runs in a fresh interpreter, as a
Snakemake job does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

JOB = textwrap.dedent('''
    import json, sys, types
    from adloc.workflow import run_script

    def main(smk):
        {body}

    smk = types.SimpleNamespace(log=[sys.argv[1]], threads=2, config={{}}, input=[], output=[])
    run_script(smk, main)
''')


def _job(tmp_path, body: str) -> dict:
    script = tmp_path / "job.py"
    out = tmp_path / "out.json"
    script.write_text(JOB.format(body=body.replace("OUT", repr(str(out)))))
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "job.log")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr + (tmp_path / "job.log").read_text()
    return json.loads(out.read_text())


def test_a_job_without_tensors_never_imports_torch(tmp_path):
    got = _job(tmp_path, "import numpy, os; json.dump({'torch': 'torch' in sys.modules, "
                         "'omp': os.environ['OMP_NUM_THREADS']}, open(OUT, 'w'))")
    assert got == {"torch": False, "omp": "2"}


@pytest.mark.parametrize("first", ["torch", "torch.nn"])
def test_torch_imported_by_the_job_gets_the_rule_threads(tmp_path, first):
    got = _job(tmp_path, f"import {first}; import torch; json.dump({{'n': torch.get_num_threads(), "
                         "'interop': torch.get_num_interop_threads()}, open(OUT, 'w'))")
    assert got == {"n": 2, "interop": 1}


def test_torch_imported_before_the_job_is_capped_at_once(tmp_path):
    import torch

    from adloc.workflow import _configure_threads

    before = torch.get_num_threads()
    try:
        _configure_threads(1)
        assert torch.get_num_threads() == 1
        assert not any(type(f).__name__ == "_ThreadsOnTorchImport" for f in sys.meta_path)
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(shutil.which("scontrol") is None, reason="Slurm's client is not installed")
def test_the_tests_slurm_conf_stops_scontrol_at_once():
    """The non-Slurm tests' SLURM_CONF (tests/conftest.py) makes ``scontrol show config``, which
    every snakemake start runs through the Slurm executor plugin, fail without Slurm's 60-s
    retry loop (which a missing file starts: each start then waited the plugin's 10 s)."""
    from conftest import SLURM_CONF_FOR_TESTS

    assert SLURM_CONF_FOR_TESTS.is_file()
    proc = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "SLURM_CONF": str(SLURM_CONF_FOR_TESTS)})
    assert proc.returncode != 0 and "ClusterName" in proc.stderr
    assert "retrying" not in proc.stderr
