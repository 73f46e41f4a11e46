"""Time the greedy coreset's CPU loops on real patch embeddings (the global PatchCore fit).

Loads the train rows (per the first repeat's split files) of every class's features from a
finished workflow run (default: the embedded
default run under ``results/embedded/``), builds the PatchCore embeddings exactly as ``PatchCore.fit``
does, and runs the coreset with ``method="dense"`` (one torch matrix-vector product over all
points per iteration: the CUDA path, and adloc's CPU path before the pruned loop), ``"plain"``
(faiss distances over all points) and ``"pruned"`` (the CPU default). Prints times, whether
plain and pruned select the same points, and the covering radii. Asserts nothing.

    python benchmarks/bench_coreset.py                       # results/ of the default run
    python benchmarks/bench_coreset.py --methods pruned --threads 2
    python benchmarks/bench_coreset.py --methods pruned --pruned-threads 1 2 --embed-dim 1024 \
        --features benchmarks/out/quarter/results/bench-mvtec/features/wide_resnet50_2-random
    python benchmarks/bench_coreset.py --features results/embedded/features/efficientnet_lite0-imagenet
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from adloc.data.splits import read_splits
from adloc.features import concat_features, load_features
from adloc.models.coreset import covering_radius, greedy_coreset, random_projection
from adloc.models.patchcore import patch_rows, patchcore_embedding


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", default="results/embedded/features/efficientnet_lite0-imagenet",
                    help="feature-set folder with <class>.pt (every image of the class)")
    ap.add_argument("--splits", default="results/embedded/s42-m0/splits",
                    help="a repeat's split folder with <class>.json: its train rows are used")
    ap.add_argument("--classes", nargs="*", default=None, help="default: every class folder")
    ap.add_argument("--layers", nargs="+", default=["layer2", "layer3"])
    ap.add_argument("--ratio", type=float, default=0.1)
    ap.add_argument("--proj-dim", type=int, default=128)
    ap.add_argument("--methods", nargs="+", default=["dense", "plain", "pruned"],
                    choices=["dense", "plain", "pruned"])
    ap.add_argument("--block-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--pruned-threads", type=int, nargs="+", default=[None],
                    help="run 'pruned' once per value (threads of its loop; default: torch's)")
    ap.add_argument("--embed-dim", type=int, default=None,
                    help="PatchCore pretrain_embed_dim = target_embed_dim (the paper: 1024; default: none, "
                         "the study's embedding)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path(args.features)
    classes = args.classes or sorted(p.stem for p in root.glob("*.pt"))
    splits = Path(args.splits)
    fs = concat_features([
        load_features(root / f"{c}.pt").by_paths(
            [e["path"] for e in read_splits(splits / f"{c}.json")["splits"]["train"]])
        for c in classes
    ])
    emb = torch.cat([
        patch_rows(patchcore_embedding({l: fs.layers[l][s : s + 16] for l in args.layers}, args.layers, 3,
                                       args.embed_dim, args.embed_dim))
        for s in range(0, len(fs), 16)
    ])
    n = int(len(emb) * args.ratio)
    print(f"{len(fs)} images of {classes}: {emb.shape[0]} patches x {emb.shape[1]} -> {n} "
          f"(projection {args.proj_dim}), torch threads {torch.get_num_threads()}")
    z = random_projection(emb, args.proj_dim, 0)
    sels, rows = {}, []
    runs = [(m, None) for m in args.methods if m != "pruned"]
    runs += [("pruned", t) for t in args.pruned_threads] if "pruned" in args.methods else []
    for m, threads in runs:
        t0, c0 = time.perf_counter(), time.process_time()
        sel = greedy_coreset(emb, n, args.proj_dim, seed=0, method=m, block_size=args.block_size, threads=threads)
        label = m if threads is None else f"{m} ({threads} thread{'s' if threads > 1 else ''})"
        if m == "pruned" and m in sels and not torch.equal(sels[m], sel):
            label += " DIFFERENT SELECTION"
        sels.setdefault(m, sel)
        sels[label] = sel
        rows.append((label, time.perf_counter() - t0, time.process_time() - c0))
    print("\n| method | wall (s) | CPU (s) | covering radius (projected) |\n|---|---|---|---|")
    for m, wall, cpu in rows:
        print(f"| {m} | {wall:.2f} | {cpu:.2f} | {covering_radius(z, sels[m]):.4f} |")
    if "plain" in sels and "pruned" in sels:
        print(f"\npruned == plain (same points, same order): {torch.equal(sels['plain'], sels['pruned'])}")
    if "dense" in sels and "pruned" in sels:
        common = len(set(sels["dense"].tolist()) & set(sels["pruned"].tolist()))
        print(f"dense vs pruned: {common}/{n} points in common")


if __name__ == "__main__":
    main()
