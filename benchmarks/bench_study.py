"""Time the whole study DAG on a generated embedded dataset and print one table.

Generates the embedded dataset (``--scale cpu``: the default counts, 92 images per class at
256 px; ``--scale mvtec``: MVTec AD's per-class counts, 1,289 images at ``--image-size`` 1024),
writes a config into a work folder (the repository's ``config.yaml`` with ``dataset.root``
pointing at the generated data, ``dataset.generate: false`` and the device options), runs

    snakemake --snakefile <repo>/Snakefile --directory WORK --configfile WORK/config.yaml --cores N

from scratch (``WORK/results`` is removed first) and prints per-rule wall time summed over jobs
and their largest max RSS (from ``results/benchmarks/**/*.tsv``), image decoding (from the
preprocess_images logs) and feature-extraction throughput (from the extract_features logs),
coreset and k-NN times (fit / score logs), the peak RSS of any single process, and the
end-to-end wall time. Asserts nothing; not a test.

    python benchmarks/bench_study.py                                   # CPU, default counts
    python benchmarks/bench_study.py --scale mvtec --device cuda --bf16 --channels-last --workers 16
    python benchmarks/bench_study.py --scale cpu --counts 6,2,4 --image-size 64   # smoke run

Rules without a ``benchmark:`` file (splits, metrics_table, confusion, examples, summary) are
counted in the end-to-end time only.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import yaml  # noqa: E402

from adloc.data.synthetic import DEFAULT_COUNTS, generate_class, mvtec_counts  # noqa: E402

RE_EXTRACT = re.compile(r"(?:(\w+): )?(\d+) images decoded in ([\d.]+) s, extracted in ([\d.]+) s")
RE_DECODE = re.compile(r"class (\S+): (\d+) images decoded in ([\d.]+) s \(")  # preprocess_images
RE_CORESET = re.compile(r"coreset \((\w+(?:, \w+)?)\): (\d+) x (\d+) -> (\d+) points in ([\d.]+) s")
RE_FIT = re.compile(r"fit (\w+) on (\d+) images in ([\d.]+) s")
RE_KNN = re.compile(r"predict: (\d+) images in ([\d.]+) s \(kNN ([\d.]+) s, (\w+)")
RE_SCORED = re.compile(r"(\w+): (\d+) images scored in ([\d.]+) s")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", choices=["cpu", "mvtec"], default="cpu")
    ap.add_argument("--image-size", type=int, default=None, help="generated image side (cpu: 256, mvtec: 1024)")
    ap.add_argument("--counts", default=None,
                    help="override counts per class: TRAIN_GOOD,TEST_GOOD,ANOMALIES (smoke runs)")
    ap.add_argument("--classes", nargs="+", default=None,
                    help="embedded classes (default: config.yaml's classes, the three-class study)")
    ap.add_argument("--work", default=None, help="work folder (default benchmarks/out/study-<scale>)")
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--workers", type=int, default=0, help="generation processes (0: one per CPU)")
    ap.add_argument("--reuse-data", action="store_true", help="keep WORK/data if it is already there")
    ap.add_argument("--preset", action="append", default=[], metavar="NAME",
                    help="layer presets/NAME.yaml onto the config (repeatable; e.g. paper: WRN50-2, "
                         "1024-d PatchCore, 550-d PaDiM)")
    ap.add_argument("--weights", default=None,
                    help="backbone weights of both methods: imagenet, random, or a file (e.g. random for "
                         "timing WRN50-2 offline); both methods then share one feature set")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--bf16", action="store_true", help="features.bf16: bf16 autocast in extraction")
    ap.add_argument("--channels-last", action="store_true", help="features.channels_last")
    ap.add_argument("--batch-size", type=int, default=None, help="features.batch_size (default: config's)")
    ap.add_argument("--storage-dtype", choices=["float32", "float16"], default=None,
                    help="features.storage_dtype (default: config's)")
    ap.add_argument("--coreset-dtype", choices=["float32", "float16"], default=None,
                    help="patchcore.coreset_dtype (default: config's)")
    ap.add_argument("--knn-bf16", action="store_true",
                    help="patchcore.knn_bf16: exact CPU k-NN by bf16 candidates + float32 re-rank")
    ap.add_argument("--bootstrap", type=int, default=None, help="evaluation.bootstrap.n (default: config's)")
    ap.add_argument("--gpu-jobs", type=int, default=1,
                    help="GPU rules allowed at once: their threads become cores // K (snakemake "
                         "--set-threads) and --resources gpu=K; 1 keeps the workflow's own settings")
    ap.add_argument("--scheduler", default=None,
                    help="snakemake --scheduler (default: greedy when PuLP is not installed)")
    ap.add_argument("--out", default=None, help="also write the table to this file")
    ap.add_argument("--collect-only", action="store_true",
                    help="only print the table of what WORK already holds (e.g. after a timeout)")
    ap.add_argument("snakemake_args", nargs="*", help="extra snakemake arguments (after --)")
    return ap.parse_args(argv)


def class_counts(args, cls):
    if args.counts:
        tg, sg, an = (int(v) for v in args.counts.split(","))
        return {"train_good": tg, "test_good": sg, "anomalies": an}
    return mvtec_counts(cls) if args.scale == "mvtec" else dict(DEFAULT_COUNTS)


def generate(args, data: Path, size: int) -> tuple[int, float]:
    n_img, t0 = 0, time.perf_counter()
    for cls in args.classes:
        cnt = class_counts(args, cls)
        n_img += sum(cnt.values())
        meta = data / cls / "synthetic.json"
        if args.reuse_data and meta.is_file():
            m = yaml.safe_load(meta.read_text())
            if m.get("counts") == cnt and m.get("image_size") == size:
                continue
        generate_class(data, cls, cnt, image_size=size, seed=0, workers=args.workers)
    return n_img, time.perf_counter() - t0


def layer(base: dict, over: dict) -> dict:
    """``over`` merged into ``base`` key by key (nested mappings merged, other values replaced)."""
    out = dict(base)
    for k, v in over.items():
        out[k] = layer(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def write_config(args, work: Path, data: Path) -> Path:
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    for name in args.preset:
        preset = REPO / "presets" / f"{name}.yaml"
        if not preset.is_file():
            sys.exit(f"--preset {name}: {preset} does not exist; choose one of "
                     f"{sorted(p.stem for p in (REPO / 'presets').glob('*.yaml'))}")
        cfg = layer(cfg, yaml.safe_load(preset.read_text()) or {})
    if args.weights:
        for method in ("patchcore", "padim"):
            cfg[method]["weights"] = args.weights
    cfg["run_name"] = f"bench-{args.scale}"
    cfg["device"] = args.device
    cfg["classes"] = list(args.classes)
    cfg["dataset"]["root"] = str(data)
    cfg["dataset"]["generate"] = False
    feats = cfg.setdefault("features", {})
    feats["bf16"] = bool(args.bf16)
    feats["channels_last"] = bool(args.channels_last)
    if args.batch_size:
        feats["batch_size"] = int(args.batch_size)
    if args.storage_dtype:
        feats["storage_dtype"] = args.storage_dtype
    if args.coreset_dtype:
        cfg["patchcore"]["coreset_dtype"] = args.coreset_dtype
    if args.knn_bf16:
        cfg["patchcore"]["knn_bf16"] = True
    if args.bootstrap is not None:
        cfg["evaluation"]["bootstrap"]["n"] = int(args.bootstrap)
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def run_snakemake(args, work: Path, cfg: Path) -> tuple[float, int, float]:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(work),
           "--configfile", str(cfg), "--cores", str(args.cores), "--quiet", "progress", "rules", "host"]
    scheduler = args.scheduler or ("greedy" if importlib.util.find_spec("pulp") is None else None)
    if scheduler:
        cmd += ["--scheduler", scheduler]
    if args.device.startswith("cuda"):
        cmd += ["--resources", f"gpu={max(1, args.gpu_jobs)}"]
    if args.gpu_jobs > 1:
        declared = set(re.findall(r"^\s*rule (\w+):", "\n".join(p.read_text() for p in (REPO / "rules").glob("*.smk")), re.M))
        heavy = [r for r in ("extract_features", "fit_class", "fit_global", "score", "score_global") if r in declared]
        cmd += ["--set-threads"] + [f"{r}={max(1, args.cores // args.gpu_jobs)}" for r in heavy]
    cmd += list(args.snakemake_args)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src")] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    print("+", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env)
    loads = [os.getloadavg()[0]]
    while True:  # the 1-minute load average every 30 s: the machine may be shared
        try:
            rc = proc.wait(timeout=30)
            break
        except subprocess.TimeoutExpired:
            loads.append(os.getloadavg()[0])
    loads.append(os.getloadavg()[0])
    wall = time.perf_counter() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, rc, peak_kb / 1024.0, loads


def rule_key(rel: Path) -> str:
    parts = rel.with_suffix("").parts
    if parts[0] == "fit":
        return f"fit_{'global' if parts[-1] == 'global' else 'class'} ({parts[1]})"
    if parts[0] in ("score", "evaluate"):
        return f"{parts[0]} ({parts[1]})"
    return parts[0]


def collect(work: Path, run: str) -> dict:
    res = work / "results" / run
    rules = defaultdict(lambda: {"jobs": 0, "s": 0.0, "rss": 0.0, "cpu": 0.0})
    # images and features sit at the run level, the rest in one folder per repeat (s<split>-m<model>)
    tsvs = [(b, t) for b in [res / "benchmarks", *sorted(res.glob("*/benchmarks"))] for t in sorted(b.rglob("*.tsv"))]
    for bdir, tsv in tsvs:
        with open(tsv) as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        if not rows:
            continue
        r = rules[rule_key(tsv.relative_to(bdir))]
        r["jobs"] += 1
        r["s"] += float(rows[-1]["s"])
        try:
            r["rss"] = max(r["rss"], float(rows[-1]["max_rss"]))
            r["cpu"] += float(rows[-1]["cpu_time"])
        except (KeyError, ValueError):
            pass
    out = {"rules": dict(rules), "extract": [0, 0.0, 0.0], "coreset": {}, "fit": {}, "knn": defaultdict(float),
           "predict": defaultdict(float), "scored": defaultdict(lambda: [0, 0.0])}
    for log in (res / "logs" / "extract_features").rglob("*.log"):
        for m in RE_EXTRACT.finditer(log.read_text(errors="replace")):
            out["extract"][0] += int(m.group(2))
            out["extract"][1] += float(m.group(3))
            out["extract"][2] += float(m.group(4))
    out["decode"] = [0, 0.0]
    for log in (res / "logs" / "preprocess_images").rglob("*.log"):
        for m in RE_DECODE.finditer(log.read_text(errors="replace")):
            out["decode"][0] += int(m.group(2))
            out["decode"][1] += float(m.group(3))
    for log in sorted(res.glob("*/logs/fit/**/*.log")):
        text = log.read_text(errors="replace")
        method, scope = log.parent.name, log.stem
        for m in RE_CORESET.finditer(text):
            out["coreset"][(method, scope)] = (m.group(1), int(m.group(2)), int(m.group(4)), float(m.group(5)))
        for m in RE_FIT.finditer(text):
            out["fit"][(method, scope)] = float(m.group(3))
    for log in sorted(res.glob("*/logs/score/**/*.log")):
        text = log.read_text(errors="replace")
        method = log.parent.name if log.parent.name != "score" else log.stem
        for m in RE_KNN.finditer(text):
            out["knn"][method] += float(m.group(3))
            out["predict"][method] += float(m.group(2))
        for m in RE_SCORED.finditer(text):
            out["scored"][method][0] += int(m.group(2))
            out["scored"][method][1] += float(m.group(3))
    return out


def table(args, info: dict, stats: dict) -> str:
    lines = [
        f"adloc study benchmark: scale {args.scale}, {info['n_img']} images at {info['size']} px, "
        f"{len(args.classes)} classes, device {info['device_name']}, cores {args.cores}, bf16 {args.bf16}, "
        f"knn_bf16 {args.knn_bf16}, "
        f"channels_last {args.channels_last}, GPU jobs at once {args.gpu_jobs}, torch {info['torch']}, "
        f"presets {args.preset or 'none'}, weights {args.weights or 'config'}",
        "",
        info["load"],
        "",
        "| step | jobs | time (s) | max RSS (MB) | note |",
        "|---|---|---|---|---|",
    ]
    add = lines.append
    add(f"| generate dataset (outside the DAG) | 1 | {info['gen_s']:.1f} | | {info['workers']} worker(s) |")
    for name, r in sorted(stats["rules"].items(), key=lambda kv: -kv[1]["s"]):
        add(f"| rule {name} | {r['jobs']} | {r['s']:.1f} | {r['rss']:.0f} | summed over jobs |")
    n_dec, s_dec = stats.get("decode", [0, 0.0])
    if n_dec:
        add(f"| image decoding (preprocess_images) | {n_dec} img | {s_dec:.2f} | | {n_dec / max(s_dec, 1e-9):.0f} img/s, once per image |")
    n, dec, ext = stats["extract"]
    if n:
        add(f"| feature extraction | {n} img | {ext:.2f} | | {n / max(ext, 1e-9):.0f} img/s (image cache read {dec:.2f} s) |")
    for (method, scope), (kind, pts, keep, s) in sorted(stats["coreset"].items(), key=lambda kv: kv[0][1] != "global"):
        add(f"| coreset {method} {scope} ({kind}) | 1 | {s:.2f} | | {pts} -> {keep} patches |")
    for method, s in sorted(stats["knn"].items()):
        add(f"| kNN search {method} (all score jobs) | | {s:.2f} | | predict total {stats['predict'][method]:.2f} s |")
    for method, (n_s, s) in sorted(stats["scored"].items()):
        add(f"| predict {method} (all score jobs) | {n_s} img | {s:.2f} | | {n_s / max(s, 1e-9):.0f} img/s |")
    for (method, scope), s in sorted(stats["fit"].items()):
        if scope == "global":
            add(f"| fit {method} global | 1 | {s:.2f} | | model fit only |")
    add(f"| peak RSS, largest single process | | | {info['peak_mb']:.0f} | |")
    add(f"| **end to end (snakemake)** | | **{info['wall']:.1f}** | | exit code {info['rc']} |")
    lines += ["", *profile(stats, info["wall"])]
    return "\n".join(lines)


#: profile parts: (name, rule keys of collect()["rules"])
PARTS = [
    ("image decoding (preprocess_images)", ["preprocess_images"]),
    ("feature extraction (extract_features)", ["extract_features"]),
    ("PatchCore fit, per class + global (coreset inside)", ["fit_class (patchcore)", "fit_global (patchcore)"]),
    ("PatchCore scoring (k-NN inside)", ["score (patchcore)"]),
    ("PaDiM fit, per class + global (covariance, inverse)", ["fit_class (padim)", "fit_global (padim)"]),
    ("PaDiM scoring (Mahalanobis)", ["score (padim)"]),
    ("metrics (evaluate)", ["evaluate (patchcore)", "evaluate (padim)"]),
]


def profile(stats: dict, wall: float) -> list[str]:
    """Where the time goes, per part: wall and CPU time summed over the part's jobs, the share
    of all rules' CPU time (on a shared machine CPU time is the steadier measure), largest RSS."""
    rules = stats["rules"]
    total = sum(r["s"] for r in rules.values()) or float("nan")
    total_cpu = sum(r["cpu"] for r in rules.values()) or float("nan")
    rows, seen = [], set()
    for name, keys in PARTS:
        rs = [rules[k] for k in keys if k in rules]
        seen.update(keys)
        if rs:
            rows.append((name, sum(r["s"] for r in rs), sum(r["cpu"] for r in rs), max(r["rss"] for r in rs)))
    rest = [k for k in rules if k not in seen]
    if rest:
        rows.append(("analysis and the rest (" + ", ".join(sorted(rest)) + ")", sum(rules[k]["s"] for k in rest),
                     sum(rules[k]["cpu"] for k in rest), max(rules[k]["rss"] for k in rest)))
    out = ["| part | wall (s) | CPU (s) | share of CPU time | max RSS (MB) |", "|---|---|---|---|---|"]
    out += [f"| {n} | {t:.1f} | {c:.1f} | {100 * c / total_cpu:.1f} % | {m:.0f} |" for n, t, c, m in rows]
    cs = sum(v[3] for v in stats["coreset"].values())
    if cs:
        out.append(f"| of which coreset (all PatchCore fits, wall) | {cs:.1f} | | | |")
    kn = sum(stats["knn"].values())
    if kn:
        out.append(f"| of which k-NN search (all PatchCore scoring, wall) | {kn:.1f} | | | |")
    out.append(f"| all rules with a benchmark file (summed; jobs may overlap) | {total:.1f} | {total_cpu:.1f} | 100 % | |")
    out.append(f"| end to end wall time | {wall:.1f} | | | |")
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    args.classes = args.classes or list(yaml.safe_load((REPO / "config.yaml").read_text())["classes"])
    size = args.image_size or (1024 if args.scale == "mvtec" else 256)
    work = Path(args.work or REPO / "benchmarks" / "out" / f"study-{args.scale}").resolve()
    data = work / "data"
    work.mkdir(parents=True, exist_ok=True)
    if args.collect_only:
        import torch

        n_img = sum(sum(class_counts(args, c).values()) for c in args.classes)
        info = {"n_img": n_img, "size": size, "gen_s": float("nan"), "wall": float("nan"), "rc": "n/a (collect only)",
                "peak_mb": float("nan"), "device_name": args.device, "torch": torch.__version__, "workers": args.workers,
                "load": f"1-min load average now: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)"}
        text = table(args, info, collect(work, f"bench-{args.scale}"))
        print(text)
        if args.out:
            Path(args.out).write_text(text + "\n")
        return 0
    if not args.reuse_data and data.exists():
        shutil.rmtree(data)
    n_img, gen_s = generate(args, data, size)
    print(f"generated {n_img} images at {size} px in {gen_s:.1f} s", flush=True)
    cfg = write_config(args, work, data)
    for stale in (work / "results", work / ".snakemake"):
        shutil.rmtree(stale, ignore_errors=True)
    wall, rc, peak, loads = run_snakemake(args, work, cfg)
    import torch

    dev_name = "CPU"
    if args.device.startswith("cuda") and torch.cuda.is_available():
        dev_name = torch.cuda.get_device_name(0)
    info = {"n_img": n_img, "size": size, "gen_s": gen_s, "wall": wall, "rc": rc, "peak_mb": peak,
            "device_name": dev_name, "torch": torch.__version__,
            "workers": args.workers or os.cpu_count(),
            "load": f"1-min load average during the run: mean {sum(loads) / len(loads):.1f}, "
                    f"min {min(loads):.1f}, max {max(loads):.1f} ({len(loads)} samples, {os.cpu_count()} CPUs)"}
    text = table(args, info, collect(work, f"bench-{args.scale}"))
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return rc


if __name__ == "__main__":
    sys.exit(main())
