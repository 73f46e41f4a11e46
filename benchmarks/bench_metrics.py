"""Time and memory of the exact pixel metrics at MVTec scale (a benchmark, not a test).

``--combined`` times what the evaluate rule runs: pixel AUROC, pixel AP, pixel F1-max and AU-PRO
at FPR 0.3 and 0.05 from one sorted copy of the pixels (issue 22 §2).

Default: 150 anomaly maps of 1024 x 1024 float32 (157 M pixels), ~40 % of the images
anomalous with 1-4 random elliptic blobs each; scores = noise + a bump on the blobs (so the
AUROC is high but not 1, with plenty of overlap near the FPR limit). Prints, per metric, the
wall time, the extra memory the call allocated (tracemalloc peak: numpy reports its buffers)
and the process's peak RSS so far.

    .venv/bin/python benchmarks/bench_metrics.py            # MVTec scale
    .venv/bin/python benchmarks/bench_metrics.py --n 20 --size 256 --study
    .venv/bin/python benchmarks/bench_metrics.py --n 0 --bootstrap --threshold   # image-level only

``--bootstrap`` times 1000 bootstrap resamples of 100 images (AUROC, rank AUROC, AUPRC; one
interval and one paired gap each); ``--threshold`` times the exact F1 threshold on 200,000
scores. (The unit tests check these are one vectorised pass / one sort; the times are here.)
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc

import numpy as np

from adloc.metrics import (
    au_pro,
    au_pro_study,
    auprc,
    auroc,
    bootstrap_ci,
    calibrate_threshold,
    paired_gap_ci,
    pixel_auroc,
    pixel_metrics,
    rank_auroc,
)


def peak_rss_mb() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024.0 if sys.platform != "darwin" else r / 2**20


def make_data(n: int, size: int, frac: float, seed: int):
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), dtype=bool)
    maps = np.empty((n, size, size), dtype=np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    anomalous = rng.random(n) < frac
    for i in range(n):
        maps[i] = rng.standard_normal((size, size), dtype=np.float32)
        if anomalous[i]:
            for _ in range(rng.integers(1, 5)):
                cy, cx = rng.uniform(0, size, 2)
                ry, rx = rng.uniform(0.02, 0.15, 2) * size
                blob = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
                masks[i] |= blob
            maps[i][masks[i]] += np.float32(rng.uniform(0.5, 3.0))
    return masks, maps, int(anomalous.sum())


def timed(label: str, fn, *args, **kw):
    tracemalloc.start()
    t0 = time.perf_counter()
    val = fn(*args, **kw)
    dt = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"{label:<28s} {dt:8.2f} s   extra peak {peak / 2**20:8.0f} MiB   process peak RSS {peak_rss_mb():8.0f} MiB"
        f"   value {val}",
        flush=True,
    )
    return val


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=150)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--frac", type=float, default=0.4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--study", action="store_true", help="also time au_pro_study (anomalous images only)")
    ap.add_argument("--combined", action="store_true",
                    help="also time pixel_metrics: pixel AUROC, AP, F1-max and AU-PRO at 0.3 and 0.05 in one pass")
    ap.add_argument("--bootstrap", action="store_true", help="time 1000 bootstrap resamples of 100 images")
    ap.add_argument("--threshold", action="store_true", help="time the exact F1 threshold on 200,000 scores")
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    if args.bootstrap:
        labels = (rng.random(100) < 0.5).astype(int)
        scores = rng.normal(size=100) + labels
        for name, metric in (("auroc", auroc), ("rank_auroc", rank_auroc), ("auprc", auprc)):
            timed(f"bootstrap_ci {name} (1000)", lambda m=metric: bootstrap_ci(labels, scores, m, 1000)["low"])
            timed(f"paired_gap_ci {name} (1000)",
                  lambda m=metric: paired_gap_ci(labels, scores, scores[::-1].copy(), m, 1000)["low"])
    if args.threshold:
        labels = (rng.random(200_000) < 0.3).astype(int)
        scores = rng.normal(size=200_000) + labels
        timed("exact threshold (200k)", lambda: calibrate_threshold(labels, scores).threshold)
    if args.n <= 0:
        return

    t0 = time.perf_counter()
    masks, maps, n_anom = make_data(args.n, args.size, args.frac, args.seed)
    n_pix = masks.size
    n_pos = int(masks.sum())
    print(
        f"data: {args.n} maps of {args.size}x{args.size} float32 = {n_pix / 1e6:.1f} M pixels "
        f"({maps.nbytes / 2**20:.0f} MiB maps + {masks.nbytes / 2**20:.0f} MiB masks), "
        f"{n_anom} anomalous images, {n_pos / 1e6:.2f} M anomalous pixels; "
        f"generated in {time.perf_counter() - t0:.1f} s; RSS after generation {peak_rss_mb():.0f} MiB",
        flush=True,
    )
    timed("pixel_auroc (exact)", pixel_auroc, masks, maps)
    timed("au_pro (exact, limit 0.3)", au_pro, masks, maps, fpr_limit=0.3)
    if args.combined:
        timed("pixel_metrics (one pass)", pixel_metrics, masks, maps, strict_limit=0.05)
    if args.study:
        timed("au_pro_study (200 thr.)", au_pro_study, masks, maps)


if __name__ == "__main__":
    main()
