"""Helpers for tests that run the real snakemake on tiny generated data in a temporary folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

#: A config small enough that the whole DAG runs in well under a minute on 2 cores.
TINY = {
    "run_name": "tiny",
    "dataset": {
        "root": "data",
        "generate": False,
    },
    "classes": ["synth_nut", "synth_carpet"],
    "preprocess": {"resize": 64, "crop": 64},
    "features": {"batch_size": 32},
    "evaluation": {"bootstrap": {"n": 50, "seed": 0}},
    "analysis": {"tsne": {"max_points_per_class": 60, "perplexity": 5}, "examples_per_class": 2},
}
TINY_COUNTS = {"train_good": 10, "test_good": 4, "anomalies": 8}


def make_dataset(root: Path, classes, counts=TINY_COUNTS, image_size=64, seed=0) -> None:
    from adloc.data.synthetic import generate_class

    for cls in classes:
        generate_class(root, cls, counts=dict(counts), image_size=image_size, seed=seed)


def write_config(workdir: Path, **overrides) -> Path:
    from adloc.config import deep_merge

    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg = deep_merge(deep_merge(base, TINY), overrides)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 2400, env=None):
    """Run snakemake on the repo's Snakefile inside ``workdir``; return the CompletedProcess."""
    cmd = [
        SNAKEMAKE,
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        *args,
    ]
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({proc.returncode}): {' '.join(cmd)}\n"
            f"--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-6000:]}"
        )
    return proc


_JOB_RE = re.compile(r"^(?:local)?rule (\w+):$")


def planned_jobs(workdir: Path, *targets: str) -> list[tuple[str, dict]]:
    """Jobs a dry run would execute: (rule name, wildcards) pairs."""
    proc = snakemake(workdir, "-n", "--cores", "1", *targets)
    text = proc.stdout + proc.stderr
    jobs: list[tuple[str, dict]] = []
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        m = _JOB_RE.match(line)
        if m:
            current = m.group(1)
            jobs.append((current, {}))
            continue
        if current and line.startswith("wildcards:"):
            pairs = line[len("wildcards:") :].split(",")
            jobs[-1] = (current, dict(p.strip().split("=", 1) for p in pairs if "=" in p))
    return jobs
