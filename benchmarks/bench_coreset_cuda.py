"""The greedy coreset at MVTec-global size on one device: float32 vs float16 points, eager vs
CUDA-graph launches, ratios 0.05 and 0.1; prints times, covering radii and selection agreement.

    python benchmarks/bench_coreset_cuda.py --device cuda            # ~30 s on an H200
    python benchmarks/bench_coreset_cuda.py --device cpu --n 20000   # smoke test (pruned CPU loop)

The points are |N(0, 1)| in 152 dimensions (the size of the default PatchCore patch embedding),
projected to 128 inside ``greedy_coreset``; they start on the host, as ``PatchCore.fit`` passes
them, so the times include the projection and the host -> device copy. Asserts nothing.
"""

from __future__ import annotations

import argparse
import time

import torch

from adloc.models.coreset import covering_radius, greedy_coreset


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--n", type=int, default=588_000, help="points (MVTec global: ~588k)")
    ap.add_argument("--dim", type=int, default=152)
    args = ap.parse_args(argv)
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize(dev)

    print(f"torch {torch.__version__}" + (f", GPU {torch.cuda.get_device_name(dev)}" if cuda else ", CPU"))
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(args.n, args.dim, generator=g).abs_()
    if cuda:
        runs = [("float32", 0, 0.05), ("float32", 64, 0.05), ("float16", 64, 0.05), ("float16", 256, 0.05),
                ("float32", 64, 0.1), ("float16", 64, 0.1)]
    else:
        runs = [("float32", 0, 0.05), ("float16", 0, 0.05)]
    greedy_coreset(emb[:20000], 200, 128, 0, 10, device=dev)  # warm-up: CUDA context, cuBLAS handles
    sels = {}
    for dtype, chunk, ratio in runs:
        k = int(args.n * ratio)
        sync()
        t = time.perf_counter()
        sel = greedy_coreset(emb, k, 128, 0, 10, device=dev, dtype=dtype, graph_chunk=chunk)
        sync()
        dt = time.perf_counter() - t
        sels[(dtype, chunk, ratio)] = sel
        print(f"coreset {dtype:7s} graph_chunk={chunk:3d}: {args.n} x {args.dim} -> {k} in {dt:6.2f} s "
              f"({1e3 * dt / k:.3f} ms per pick)", flush=True)
    x = emb.to(dev)
    for ratio in sorted({r for _, _, r in runs}):
        keys = [key for key in sels if key[2] == ratio]
        for key in keys:
            r = covering_radius(x, sels[key].to(dev))
            print(f"  ratio {ratio}: {key[0]} graph_chunk={key[1]}: covering radius {r:.4f}")
        for a, b in zip(keys, keys[1:]):
            ov = len(set(sels[a].tolist()) & set(sels[b].tolist())) / len(sels[a])
            print(f"  ratio {ratio}: {a[:2]} vs {b[:2]}: identical={torch.equal(sels[a], sels[b])}, overlap {ov:.4f}")
    if cuda:
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated(dev) / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
