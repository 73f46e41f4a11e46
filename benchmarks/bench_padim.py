"""Time PaDiM's fit (mean + covariance, inverse) and scoring (Mahalanobis, maps) on random features.

Features are random (|N(0,1)|, like post-ReLU maps) with WRN50-2's layer1 / layer2 / layer3 shapes
at a 224 input (256 x 56^2, 512 x 28^2, 1024 x 14^2), stored float16 as the study's
``--storage-dtype float16`` run keeps them; 550 channels as the paper. ``--legacy`` also times
the implementation before 2026-11-30 (two passes over 32-image chunks, a permuted
(positions, images, D) view fed to ``baddbmm_``; the inverse chunk after chunk with MKL's
threads inside each matrix, timed on the first 256 positions and scaled to the grid; the
Mahalanobis product on a whole-grid copy), re-stated here, and prints how far its results are
from the current ones. Prints CPU
seconds (``time.process_time``, steadier than wall time on a shared machine), wall seconds and
GFLOP per CPU second per part, with the 1-minute load average; asserts nothing.

    python benchmarks/bench_padim.py                                  # 200 images, 56 x 56, 550-d
    python benchmarks/bench_padim.py --images 64 --legacy             # before / after
    python benchmarks/bench_padim.py --images 20 --grid 16 --dims 100 --legacy   # small, seconds

FLOP counts: covariance 2 N P D^2 (the full product), inverse P (D^3 / 3 Cholesky + D^3
triangular solve + 2 D^3 product), Mahalanobis 2 N P D^2.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from adloc.models import Padim, PadimConfig
from adloc.models.common import chunks
from adloc.models.padim import padim_embedding
from adloc.models.padim_stats import invert_in_place, padim_statistics

CHANNELS = {"layer1": 256, "layer2": 512, "layer3": 1024}
LAYERS = tuple(CHANNELS)


def synthetic(n: int, grid: int, dtype: torch.dtype, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        layer: torch.randn(n, c, grid >> k, grid >> k, generator=g).abs_().to(dtype)
        for k, (layer, c) in enumerate(CHANNELS.items())
    }


def legacy_statistics(feats, idx, n: int, d: int, p: int, batch: int = 32):
    """The fit's statistics as they were before 2026-11-30 (reference for the timing)."""
    def embed(s, e):
        return padim_embedding({k: v[s:e].float() for k, v in feats.items()}, list(LAYERS), idx)

    mean = torch.zeros((d, p), dtype=torch.float64)
    for s, e in chunks(n, batch):
        mean += embed(s, e).reshape(e - s, d, p).double().sum(0)
    mean = (mean / n).float()
    cov = torch.zeros((p, d, d), dtype=torch.float32)
    for s, e in chunks(n, batch):
        xc = (embed(s, e).reshape(e - s, d, p) - mean).permute(2, 0, 1)
        cov.baddbmm_(xc.transpose(1, 2), xc)
        del xc
    return mean, cov


def legacy_inverse(cov: torch.Tensor, chunk: int) -> None:
    """The in-place inverse before 2026-11-30: chunk after chunk in the calling thread, MKL
    using torch's threads inside each factorisation (the positive-definite branch only)."""
    for s, e in chunks(cov.shape[0], chunk):
        lower = torch.linalg.cholesky_ex(cov[s:e])[0]
        eye = torch.eye(lower.shape[-1]).expand_as(lower)
        inv_lower = torch.linalg.solve_triangular(lower, eye, upper=False)
        torch.bmm(inv_lower.transpose(1, 2), inv_lower, out=cov[s:e])


def legacy_distances(model: Padim, feats, batch: int) -> torch.Tensor:
    """``Padim.distances`` before 2026-11-30 (whole-grid permuted copy per batch, no row padding)."""
    n = int(next(iter(feats.values())).shape[0])
    out = []
    for s, e in chunks(n, batch):
        emb = padim_embedding({k: v[s:e].float() for k, v in feats.items()}, list(LAYERS), model.idx)
        b, d, h, w = emb.shape
        delta = (emb.reshape(b, d, h * w) - model.mean).permute(2, 0, 1).contiguous()
        d2 = torch.empty((h * w, b))
        for ps, pe in chunks(h * w, model.position_chunk):
            t = torch.bmm(delta[ps:pe], model.inv_covariance[ps:pe])
            d2[ps:pe] = (t * delta[ps:pe]).sum(-1)
        out.append(d2.clamp_min_(0).sqrt_().t().reshape(b, h, w))
    return torch.cat(out)


def timed(fn):
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    return time.process_time() - c0, time.perf_counter() - w0, out


def row(part: str, cpu: float, wall: float, flop: float | None) -> None:
    rate = f"{flop / cpu / 1e9:8.1f}" if flop and cpu > 0 else "       -"
    print(f"| {part:<44} | {cpu:8.2f} | {wall:8.2f} | {rate} | {os.getloadavg()[0]:5.2f} |", flush=True)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative Frobenius difference, 64 rows at a time in float64 (no whole-size copy)."""
    num = den = 0.0
    for s, e in chunks(a.shape[0], 64):
        num += float((a[s:e].double() - b[s:e].double()).square().sum())
        den += float(b[s:e].double().square().sum())
    return (num / den) ** 0.5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=200, help="training images")
    ap.add_argument("--test-images", type=int, default=64)
    ap.add_argument("--grid", type=int, default=56, help="layer1 grid side (positions = grid^2; 56 at a 224 input)")
    ap.add_argument("--dims", type=int, default=550, help="PaDiM n_features")
    ap.add_argument("--dtype", default="float16", choices=["float16", "float32"], help="stored feature dtype")
    ap.add_argument("--batches", type=int, nargs="+", default=[16, 64], help="scoring batch sizes")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--legacy", action="store_true", help="also time the implementation before 2026-11-30")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    n, d, p = args.images, args.dims, args.grid * args.grid
    train = synthetic(n, args.grid, getattr(torch, args.dtype), 0)
    test = synthetic(args.test_images, args.grid, getattr(torch, args.dtype), 1)
    model = Padim(PadimConfig(layers=LAYERS, n_features=d, image_size=4 * args.grid))
    model.idx = torch.randperm(sum(CHANNELS.values()), generator=torch.Generator().manual_seed(0))[:d].sort().values
    print(f"PaDiM: {n} train / {args.test_images} test images, {p} positions ({args.grid}^2), D = {d}, "
          f"{args.dtype} features, {torch.get_num_threads()} threads, load {os.getloadavg()}")
    print("| part | CPU s | wall s | GFLOP per CPU s | load |\n|---|---|---|---|---|")
    cov_flop, inv_flop, maha_flop = 2 * n * p * d * d, p * (1 / 3 + 3) * d**3, 2 * args.test_images * p * d * d
    with torch.inference_mode():
        if args.legacy:
            c, w, (mean0, cov0) = timed(lambda: legacy_statistics(train, model.idx, n, d, p))
            row("mean + covariance, before (2 passes)", c, w, cov_flop)
        c, w, (mean, cov) = timed(lambda: padim_statistics(train, list(LAYERS), model.idx, (args.grid, args.grid),
                                                           "cpu", model.stat_chunk_bytes))
        row("mean + covariance (position chunks)", c, w, cov_flop)
        if args.legacy:
            print(f"before vs now: mean rel. diff {rel(mean, mean0):.1e}, scatter rel. diff {rel(cov, cov0):.1e}")
            del mean0, cov0
        cov.div_(n - 1)
        cov.diagonal(dim1=1, dim2=2).add_(0.01)
        if args.legacy:
            cov0 = cov[: model.position_chunk].clone()
            c, w, _ = timed(lambda: legacy_inverse(cov0, model.position_chunk))
            row(f"inverse, before, first {len(cov0)} positions x {p / len(cov0):.2f}", c * p / len(cov0),
                w * p / len(cov0), inv_flop)
        c, w, _ = timed(lambda: invert_in_place(cov, model.position_chunk))
        row("inverse (Cholesky, solve, product)", c, w, inv_flop)
        if args.legacy:
            print(f"before vs now, inverse of the first {len(cov0)} positions: rel. diff "
                  f"{rel(cov0, cov[: len(cov0)]):.1e}")
            del cov0
        model.mean, model.inv_covariance, model.grid = mean, cov, (args.grid, args.grid)
        dist = {}
        for b in args.batches:
            c, w, dist[b] = timed(lambda: model.distances(test, batch_size=b))
            row(f"Mahalanobis, batch {b}", c, w, maha_flop)
            if args.legacy:
                c, w, old = timed(lambda: legacy_distances(model, test, b))
                row(f"Mahalanobis, batch {b}, before", c, w, maha_flop)
                print(f"before vs now, batch {b}: max abs diff {(old - dist[b]).abs().max().item():.1e}")
        ref = dist[args.batches[0]]
        same = all(torch.equal(v, ref) for v in dist.values())
        print(f"distances bit-identical across batch sizes {args.batches}: {same}")
        c, w, _ = timed(lambda: model.predict(test, batch_size=args.batches[-1]))
        row(f"predict (distances + maps), batch {args.batches[-1]}", c, w, maha_flop)


if __name__ == "__main__":
    main()
