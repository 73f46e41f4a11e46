"""The shift preset's extra cost on the embedded data (issue 21 §3).

Two Snakemake runs in one work folder: the default run (embedded data, both methods, three
classes) from nothing, then the same config with ``presets/shift.yaml`` layered on, which runs
only what shift adds (the clean chain is up to date). Prints each run's wall time and job count,
the 1-minute load average sampled every 30 s, ``uptime`` before and after, and per rule the
jobs, wall seconds and CPU seconds from Snakemake's benchmark files (``benchmarks/**.tsv``),
split into the clean chain and the shifted chain (every file under a ``shift/`` folder, and the
``shift_*`` rules). Rules without a ``benchmark:`` directive (splits, shift_splits, calibrate,
metrics_table, examples, shift_examples, summary, ...) are in the wall times only. Asserts
nothing; no test runs it.

    .venv/bin/python benchmarks/bench_shift.py --cores 2              # both runs, then the table
    .venv/bin/python benchmarks/bench_shift.py --collect-only         # the table of a finished pair
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=REPO / "benchmarks" / "out" / "shift")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--run", default="embedded", help="the run folder name (results/<run>)")
    ap.add_argument("--collect-only", action="store_true", help="only print the table of WORK")
    return ap.parse_args(argv)


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return f"load average {os.getloadavg()}"


def snakemake(work: Path, cores: int, configfiles: list[Path]) -> dict:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(work),
           "--cores", str(cores), "--configfile", *map(str, configfiles)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src")] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    print("+", " ".join(cmd), flush=True)
    before = uptime()
    log = work / f"snakemake-{len(configfiles)}.log"
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT)
        loads = [os.getloadavg()[0]]
        while True:  # the machine may be shared: the 1-minute load every 30 s
            try:
                rc = proc.wait(timeout=30)
                break
            except subprocess.TimeoutExpired:
                loads.append(os.getloadavg()[0])
    wall = time.perf_counter() - t0
    text = log.read_text(errors="replace")
    jobs = text.count("\nrule ") + text.count("\nlocalrule ")
    if rc != 0:
        raise SystemExit(f"snakemake failed ({rc}); see {log}")
    return {"wall": wall, "jobs": jobs, "loads": loads, "before": before, "after": uptime()}


def rule_of(parts: tuple[str, ...]) -> str:
    """The rule a benchmark file belongs to: the folder after ``benchmarks/`` (fit: class or global)."""
    i = parts.index("benchmarks")
    rest = parts[i + 1:]
    if rest[0] == "fit":
        return "fit_global" if Path(rest[-1]).stem == "global" else "fit_class"
    if rest[0] == "score":
        return "score_global" if Path(rest[-1]).stem == "global" else "score"
    if rest[0] == "evaluate":
        return "evaluate_global" if rest[-2] == "global" else "evaluate"
    return Path(rest[0]).stem


def collect(res: Path) -> dict:
    """(chain, rule) -> jobs, wall s, CPU s of every benchmark file under ``res``."""
    out = defaultdict(lambda: [0, 0.0, 0.0])
    for tsv in sorted(res.rglob("*.tsv")):
        parts = tsv.relative_to(res).parts
        if "benchmarks" not in parts:
            continue
        with open(tsv) as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        if not rows:
            continue
        rule = rule_of(parts)
        chain = "shift" if "shift" in parts[: parts.index("benchmarks")] or rule.startswith("shift_") else "clean"
        r = out[(chain, rule)]
        r[0] += 1
        r[1] += float(rows[-1]["s"])
        try:
            r[2] += float(rows[-1]["cpu_time"])
        except (KeyError, ValueError):
            pass
    return dict(out)


def table(stats: dict) -> str:
    lines = ["| chain | rule | jobs | wall s | CPU s |", "|---|---|---:|---:|---:|"]
    tot = defaultdict(lambda: [0, 0.0, 0.0])
    for (chain, rule), (n, s, c) in sorted(stats.items()):
        lines.append(f"| {chain} | {rule} | {n} | {s:.1f} | {c:.1f} |")
        t = tot[chain]
        t[0], t[1], t[2] = t[0] + n, t[1] + s, t[2] + c
    for chain, (n, s, c) in sorted(tot.items()):
        lines.append(f"| **{chain}** | all benchmarked rules | {n} | {s:.1f} | {c:.1f} |")
    if tot.get("clean") and tot.get("shift") and tot["clean"][1] > 0:
        lines.append(f"\nshifted chain / clean chain (benchmarked job seconds): "
                     f"{tot['shift'][1] / tot['clean'][1]:.2f}x wall, "
                     f"{tot['shift'][2] / max(tot['clean'][2], 1e-9):.2f}x CPU")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    work = args.work
    if not args.collect_only:
        shutil.rmtree(work / "results", ignore_errors=True)
        work.mkdir(parents=True, exist_ok=True)
        cfg = REPO / "config.yaml"
        runs = {"default": snakemake(work, args.cores, [cfg]),
                "+ presets/shift.yaml": snakemake(work, args.cores, [cfg, REPO / "presets" / "shift.yaml"])}
        for name, r in runs.items():
            loads = ", ".join(f"{x:.1f}" for x in r["loads"])
            print(f"{name}: {r['wall']:.1f} s wall, {r['jobs']} jobs, --cores {args.cores}; "
                  f"1-min load every 30 s: {loads}\n  before: {r['before']}\n  after:  {r['after']}")
    print(f"{os.cpu_count()} CPUs; now: {uptime()}")
    print(table(collect(work / "results" / args.run)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
