"""Test-session settings shared by every test folder, and the shared reference run.

Shared run (CI time, issue 23): ``tiny_run`` runs the real workflow ONCE per pytest session on
the tiny default config (``workflow_utils.TINY``: two classes, both methods, one repeat
``s42-m0``) and every workflow test that only needs *a* finished run reads it instead of running
its own DAG. Tests that change the run folder must put back what they change (config.yaml, data
files) before they return, and may add outputs under other run names (``results/<other>``) only.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))


def pytest_collection_modifyitems(config, items):
    """Run the Slurm tests last.

    Once Debian's slurm-client is installed, every snakemake start pays ~9 s while the SLURM
    executor plugin's import-time ``scontrol show config`` times out against a stopped
    controller; running the Slurm tests last keeps that cost away from the other workflow tests.
    """
    items.sort(key=lambda item: item.get_closest_marker("slurm") is not None)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The tiny default run, finished: ``(workdir, CompletedProcess, seconds)``.

    Outputs are under ``workdir / "results" / "tiny"`` (repeat ``s42-m0``); ``workdir /
    "config.yaml"`` is its config and ``workdir / "data"`` its generated dataset.
    """
    from workflow_utils import TINY, make_dataset, snakemake, write_config

    wd = tmp_path_factory.mktemp("tiny_run")
    make_dataset(wd / "data", TINY["classes"])
    write_config(wd)
    t0 = time.perf_counter()
    proc = snakemake(wd, "--cores", "2")
    return wd, proc, time.perf_counter() - t0
