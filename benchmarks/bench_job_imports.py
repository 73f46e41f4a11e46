"""Per-rule fixed cost of the workflow's jobs: how much of each job is importing (issue 23 §1).

Runs the workflow once in a fresh folder with ``PYTHONPROFILEIMPORTTIME=1`` and a
``sitecustomize`` that sends each Python process's import-time report to its own file and
records its command line and lifetime. Prints, per rule: jobs, summed process lifetime, summed
import time (every top-level import, lazy ones included) and how many of its jobs loaded each
heavy library. A job whose lifetime is mostly import time is fixed cost: the target of
lazy imports and of batching.

    python benchmarks/bench_job_imports.py                 # the embedded default run (config.yaml)
    python benchmarks/bench_job_imports.py --tiny          # tests' tiny config: 2 classes, 64 px

Figures depend on the machine's load: the script prints ``uptime`` before and after.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "timm", "faiss", "sklearn", "scipy", "matplotlib", "pandas")

SITECUSTOMIZE = '''
import atexit, os, sys, time
_d = os.environ.get("ADLOC_IMPORT_DIR")
if _d and os.environ.get("PYTHONPROFILEIMPORTTIME"):
    _f = open(os.path.join(_d, f"{os.getpid()}.txt"), "w")
    os.dup2(_f.fileno(), 2)
    _t0 = time.time()

    def _end():
        with open(os.path.join(_d, f"{os.getpid()}.argv"), "w") as g:
            g.write(" ".join(sys.argv)[:400] + f"\\n{time.time() - _t0:.3f}\\n")

    atexit.register(_end)
'''

_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( +)(\S+)")
_SCRIPT = re.compile(r"tmp\w+\.(\w+)\.py")


def parse_process(report: Path) -> tuple[float, set[str]]:
    """(seconds spent in top-level imports, heavy libraries loaded) of one process."""
    total, heavy = 0, set()
    for line in report.read_text(errors="replace").splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        name = m.group(4)
        if len(m.group(3)) == 1:  # top level: one space after the bar
            total += int(m.group(2))
        if name in HEAVY:
            heavy.add(name)
    return total / 1e6, heavy


def summarise(folder: Path) -> list[tuple[str, int, float, float, collections.Counter]]:
    rules: dict[str, list] = {}
    for argv_file in sorted(folder.glob("*.argv")):
        argv, life = argv_file.read_text().splitlines()[:2]
        m = _SCRIPT.search(argv)
        rule = m.group(1) if m else "snakemake" if "snakemake" in argv else Path(argv.split()[0]).name
        imports, heavy = parse_process(argv_file.with_suffix(".txt"))
        row = rules.setdefault(rule, [0, 0.0, 0.0, collections.Counter()])
        row[0] += 1
        row[1] += float(life)
        row[2] += imports
        row[3].update(heavy)
    return sorted(((k, *v) for k, v in rules.items()), key=lambda r: -r[2])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "job_imports")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--tiny", action="store_true", help="the tests' tiny config instead of config.yaml")
    args = ap.parse_args(argv)

    shutil.rmtree(args.work, ignore_errors=True)
    site, reports, wd = args.work / "site", args.work / "imports", args.work / "run"
    for d in (site, reports, wd):
        d.mkdir(parents=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    config = ROOT / "config.yaml"
    if args.tiny:
        sys.path.insert(0, str(ROOT / "tests"))
        from workflow_utils import TINY, make_dataset, write_config

        make_dataset(wd / "data", TINY["classes"])
        config = write_config(wd)
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1", "ADLOC_IMPORT_DIR": str(reports),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(site), str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    cmd = [str(Path(sys.executable).with_name("snakemake")), "--snakefile", str(ROOT / "Snakefile"),
           "--directory", str(wd), "--configfile", str(config), "--cores", str(args.cores)]
    print("load before:", os.getloadavg())
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    print("load after: ", os.getloadavg())
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:])
        return proc.returncode
    rows = summarise(reports)
    print(f"\nrun: {wall:.1f} s wall, {sum(r[1] for r in rows if r[0] != 'snakemake')} jobs\n")
    print("| rule | jobs | lifetime (s) | imports (s) | share | jobs loading " + ", ".join(HEAVY) + " |")
    print("|---|---|---|---|---|---|")
    for rule, n, life, imports, heavy in rows:
        loads = " ".join(str(heavy.get(h, 0)) for h in HEAVY)
        print(f"| {rule} | {n} | {life:.1f} | {imports:.1f} | {imports / max(life, 1e-9):.0%} | {loads} |")
    jobs = [r for r in rows if r[0] != "snakemake"]
    life, imports = sum(r[2] for r in jobs), sum(r[3] for r in jobs)
    print(f"| all jobs | {sum(r[1] for r in jobs)} | {life:.1f} | {imports:.1f} | {imports / max(life, 1e-9):.0%} | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
