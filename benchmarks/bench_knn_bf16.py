"""Time PatchCore's exact CPU k-NN: faiss float32 vs the opt-in bf16 search + float32 re-rank.

Synthetic MVTec-like sizes: ``--images`` x 784 queries (28 x 28 patches) against a bank of
``--bank`` x ``--dim`` rows. The rows are patch-feature-like (post-ReLU images of a
``--latent``-d Gaussian through a random map, plus noise; queries from the same distribution,
``--shift`` of them moved away as "anomalous" patches). Prints wall and CPU seconds of each,
candidates per query, the share settled by the projected bound (``--project``: its widths, 0 =
without it) and the share that fell back to the float32 level, the largest
|distance difference| and the share of changed neighbours vs faiss, and checks the bf16 results
bit for bit against the brute-force reference (``direct_knn``) on ``--check`` queries. Asserts
nothing; prints the load average.

    python benchmarks/bench_knn_bf16.py                                # 4 images, bank 40k x 1024
    python benchmarks/bench_knn_bf16.py --images 8 --bank 60000 --k 1 9 --threads 2
    python benchmarks/bench_knn_bf16.py --images 1 --bank 5000 --dim 256     # smoke
    python benchmarks/bench_knn_bf16.py --images 2 --bank 57075 --k 1 --project 0 32 64 128
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from adloc.models.knn import KnnIndex
from adloc.models.knn_bf16 import Bf16Search, bf16_supported, direct_knn


def _features(n: int, dim: int, latent: int, g: torch.Generator, w: torch.Tensor, shift: float = 0.0):
    z = torch.randn(n, latent, generator=g)
    if shift:
        z[: max(1, n // 20)] += shift  # 5 % "anomalous" patches, off the training manifold
    return (z @ w).relu_() + 0.05 * torch.rand(n, dim, generator=g)


def _timed(fn):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=4, help="query images of 784 patches each")
    ap.add_argument("--bank", type=int, default=40000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--latent", type=int, default=64)
    ap.add_argument("--shift", type=float, default=1.5)
    ap.add_argument("--k", type=int, nargs="+", default=[1, 9])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--check", type=int, default=32, help="queries checked against direct_knn (0: none)")
    ap.add_argument("--project", type=int, nargs="+", default=[64],
                    help="widths of the projected bound to time (0: the bf16 level alone)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(args.seed)
    w = torch.randn(args.latent, args.dim, generator=g) / args.latent ** 0.5
    bank = _features(args.bank, args.dim, args.latent, g, w)
    queries = _features(784 * args.images, args.dim, args.latent, g, w, args.shift)
    print(f"cpu capability {torch.backends.cpu.get_cpu_capability()}, bf16 instructions: {bf16_supported()}, "
          f"threads {args.threads}, load {os.getloadavg()[0]:.2f}")
    print(f"queries {len(queries)} x bank {args.bank} x {args.dim}")
    faiss_index = KnnIndex(bank)
    searches = {}
    for p in args.project:
        searches[p], _, c_build = _timed(lambda: Bf16Search(bank, project=p or None))
        print(f"bf16 search build, project {p}: {c_build:.2f} CPU s")
    print("| k | project | faiss wall s | faiss CPU s | bf16 wall s | bf16 CPU s | candidates/query | projected "
          "| fell back | max abs d2 diff vs faiss | neighbours changed | == direct_knn | load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for k in args.k:
        (fd, fi), fw, fc = _timed(lambda: faiss_index.search(queries, k, squared=True))
        ref = None
        if args.check:
            sel = torch.linspace(0, len(queries) - 1, args.check).long()
            ref = direct_knn(queries[sel], bank, k)
        for p, search in searches.items():
            before = dict(search.stats)
            (bd, bi), bw, bc = _timed(lambda: search.search(queries, k))
            nq = max(1, search.stats["queries"] - before["queries"])
            share = {key: (search.stats[key] - before[key]) / nq for key in ("candidates", "projected", "fallback")}
            same = "-" if ref is None else str(bool(torch.equal(ref[0], bd[sel]) and torch.equal(ref[1], bi[sel])))
            print(f"| {k} | {p} | {fw:.2f} | {fc:.2f} | {bw:.2f} | {bc:.2f} | {share['candidates']:.1f} "
                  f"| {100 * share['projected']:.1f} % | {100 * share['fallback']:.2f} % "
                  f"| {float((fd - bd).abs().max()):.3g} | {100 * float((fi != bi).float().mean()):.3f} % "
                  f"| {same} | {os.getloadavg()[0]:.2f} |")

if __name__ == "__main__":
    main()
