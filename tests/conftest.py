"""Test-session settings shared by every test folder, and the shared reference run.

Shared run (CI time, issue 23): ``tiny_run`` runs the real workflow ONCE per pytest session on
the tiny default config (``workflow_utils.TINY``: two classes, both methods, one repeat
``s42-m0``) and every workflow test that only needs *a* finished run reads it instead of running
its own DAG. Tests that change the run folder must put back what they change (config.yaml, data
files) before they return, and may add outputs under other run names (``results/<other>``) only.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

#: Every snakemake start imports snakemake-executor-plugin-slurm, which runs ``scontrol show
#: config`` (10 s timeout) when Slurm's client is installed: against a stopped controller
#: (after the Slurm tests, or on a machine with a Slurm client but no cluster) each start waited
#: ~9-10 s. The tests that are not about Slurm point SLURM_CONF at ``not_a_slurm.conf``, a file
#: with no ClusterName, so scontrol stops at once. (A *missing* file does not: Slurm 22.05
#: retries for 60 s, so every snakemake start still waited the plugin's 10 s.)
#: tests/test_slurm.py removes every SLURM_* variable (``_clean_env``) and so talks to its real
#: local cluster.
SLURM_CONF_FOR_TESTS = TESTS / "not_a_slurm.conf"
os.environ.setdefault("SLURM_CONF", str(SLURM_CONF_FOR_TESTS))


#: Session fixtures that run a workflow once and are read (and briefly changed, then put back)
#: by tests in several files: under pytest-xdist every test that uses one runs on the same
#: worker, one after the other (its xdist group), so the run is made once and never changed by
#: two tests at the same time.
SHARED_RUNS = {"tiny_run": "tiny_run", "reference_run": "reference_run", "resumed_run": "reference_run"}


def xdist_group_of(item) -> str:
    """The pytest-xdist group (``--dist loadgroup``) of a test: the Slurm tests together; the
    users of one shared run together; otherwise the test's file, so that a module-scoped
    fixture (a module's own workflow run) is made once, on one worker. A test that requests a
    shared run at run time (``request.getfixturevalue``) says so with
    ``@pytest.mark.shared_run("<fixture>")``."""
    if item.get_closest_marker("slurm") is not None:
        return "slurm"
    wanted = [m.args[0] for m in item.iter_markers("shared_run")] + list(item.fixturenames)
    for fixture in wanted:
        if fixture in SHARED_RUNS:
            return SHARED_RUNS[fixture]
    return item.nodeid.split("::", 1)[0]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Group the tests for pytest-xdist and order them, longest first so that the workers
    finish together: the Slurm tests (mostly waiting for sbatch and polling, so they overlap
    well with the CPU-bound tests of the other worker), then the workflow groups, then the unit
    tests. Without xdist the order is the same; the groups are unused."""
    group_of = {}
    heavy = set()
    for item in items:
        group = group_of[item.nodeid] = xdist_group_of(item)
        item.add_marker(pytest.mark.xdist_group(group))
        if item.get_closest_marker("workflow") or item.get_closest_marker("slow"):
            heavy.add(group)
    rank = {g: 0 if g == "slurm" else 1 if g in heavy else 2 for g in group_of.values()}
    items.sort(key=lambda item: rank[group_of[item.nodeid]])


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids):
    """With ``--dist loadgroup``: stop if the groups did not reach the node ids (pytest-xdist's
    side channel; pytest 9.2 broke it silently, pytest-xdist#1386). Without them a shared run
    would be made on both workers and changed by two tests at once."""
    if node.config.getvalue("dist") != "loadgroup":
        return
    ungrouped = [i for i in ids if "@" not in i.rsplit("]", 1)[-1]]
    if ungrouped:
        pytest.exit(
            f"pytest-xdist --dist loadgroup is not grouping ({len(ungrouped)} of {len(ids)} tests "
            f"without a group, e.g. {ungrouped[0]}): pytest {pytest.__version__} and this "
            "pytest-xdist do not work together (pytest-xdist#1386); install requirements.txt's "
            "pins (pytest<9.2) or run without -n",
            returncode=4,
        )


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
