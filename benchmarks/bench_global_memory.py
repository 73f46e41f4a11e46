"""Peak memory and time of the global PatchCore fit at MVTec AD's 15-class scale (CPU).

The global model of all 15 MVTec AD classes trains on 3,629 images; with the paper's
configuration (WRN50-2 layers 2+3 at 224 px: 512 x 28 x 28 and 1024 x 14 x 14 stage maps,
pretrain/target embedding 1024, coreset ratio 0.1, projection 128) that is 3,629 x 784 =
2.85 M patches of 1024 values. Running WRN50-2 over 3,629 images takes too long on a 2-core
machine, and the memory of the fit does not depend on what the stage maps show, so this script
synthesises stage maps of exactly those shapes (per class a few random prototype maps plus
noise, non-negative like ReLU outputs) and calls
``PatchCore.fit`` on them as ``scripts/fit.py`` does after ``load_training_set``
(``release_features=True``: the stage maps are freed once embedded).

It prints the resident memory after the features exist, before the coreset and the process's
peak (``ru_maxrss``, which counts torch's allocations, unlike tracemalloc), and the time of the
embedding and of the coreset. Every large buffer (features, patch store, projection) grows
linearly with the number of images, so runs at a fraction of the images give the per-image
cost and the peak at 3,629 images (docs/performance.md). The coreset's iterations scale with
``--coreset-ratio``, its buffers do not (the projection of all patches is allocated in full,
and the 10 % bank is allocated after the projection is freed, smaller than it): a small ratio
measures the same peak in less time. The coreset's TIME on these synthesised maps says little
(its pruning depends on how clustered real features are). Asserts nothing.

    python benchmarks/bench_global_memory.py                            # full scale, float16
    python benchmarks/bench_global_memory.py --images 454 --coreset-ratio 0.002  # 1/8, quick
    python benchmarks/bench_global_memory.py --images 900 --embedding-dtype float32
    python benchmarks/bench_global_memory.py --images 64 --coreset-ratio 0.1   # smoke
"""

from __future__ import annotations

import argparse
import logging
import resource
import time

import psutil
import torch

import adloc.models.patchcore as pc
from adloc.models.patchcore import PatchCore, PatchCoreConfig

MVTEC_TRAIN_IMAGES = 3629  # train/good images of MVTec AD's 15 classes


def _gb(x: float) -> str:
    return f"{x / 1e9:.2f} GB"


def _rss() -> float:
    return float(psutil.Process().memory_info().rss)


def _peak() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0  # KiB on Linux


def synth_features(n: int, classes: int, dtype: torch.dtype, seed: int = 0) -> tuple[dict, list[str]]:
    """WRN50-2-shaped stage maps (layer2 512x28x28, layer3 1024x14x14) of ``n`` images, in
    ``dtype``, written chunk-wise (no full-size float32 temporary)."""
    g = torch.Generator().manual_seed(seed)
    shapes = {"layer2": (512, 28, 28), "layer3": (1024, 14, 14)}
    feats = {k: torch.empty((n, *s), dtype=dtype) for k, s in shapes.items()}
    protos = {k: torch.rand((classes, 4, *s), generator=g) for k, s in shapes.items()}
    sources = [f"class{i * classes // n:02d}" for i in range(n)]
    for s in range(0, n, 64):
        e = min(n, s + 64)
        for k, shape in shapes.items():
            cls = torch.tensor([i * classes // n for i in range(s, e)])
            pick = torch.randint(0, 4, (e - s,), generator=g)
            noise = torch.randn((e - s, *shape), generator=g).mul_(0.05)
            feats[k][s:e] = (protos[k][cls, pick] + noise).clamp_(min=0)
    return feats, sources


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=MVTEC_TRAIN_IMAGES)
    ap.add_argument("--classes", type=int, default=15)
    ap.add_argument("--feature-dtype", choices=["float16", "float32"], default="float16",
                    help="dtype the features are held in (float16: a float16 feature file loaded "
                    "with load_training_set)")
    ap.add_argument("--embedding-dtype", choices=["float16", "float32"], default="float16")
    ap.add_argument("--coreset-ratio", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keep-features", action="store_true",
                    help="keep the stage maps through the coreset (fit.py frees them after the embedding)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    t0 = time.perf_counter()
    base = _rss()
    feats, sources = synth_features(args.images, args.classes, getattr(torch, args.feature_dtype))
    nbytes = sum(v.numel() * v.element_size() for v in feats.values())
    print(f"features: {args.images} images, {_gb(nbytes)} ({args.feature_dtype}), made in "
          f"{time.perf_counter() - t0:.1f} s; RSS {_gb(_rss())} (baseline {_gb(base)}), peak so far {_gb(_peak())}")

    phases: dict[str, float] = {}
    real_coreset = pc.greedy_coreset

    def timed_coreset(*a, **kw):  # the embedding ends where the coreset starts
        phases["embedding"] = time.perf_counter() - t_fit
        phases["rss_before_coreset"] = _rss()
        phases["peak_before_coreset"] = _peak()  # the embedding's peak (its chunk temporaries)
        t = time.perf_counter()
        out = real_coreset(*a, **kw)
        phases["coreset"] = time.perf_counter() - t
        phases["peak_after_coreset"] = _peak()
        return out

    pc.greedy_coreset = timed_coreset
    cfg = PatchCoreConfig(
        layers=("layer2", "layer3"), pretrain_embed_dim=1024, target_embed_dim=1024,
        coreset_ratio=args.coreset_ratio, coreset_projection_dim=128,
        embedding_dtype=args.embedding_dtype, image_size=224,
    )
    model = PatchCore(cfg)
    t_fit = time.perf_counter()
    model.fit(feats, sources=sources, release_features=not args.keep_features)
    fit_s = time.perf_counter() - t_fit
    patches = args.images * 28 * 28
    print(f"patches: {patches:,} x 1024 ({args.embedding_dtype} store: {_gb(patches * 1024 * (2 if args.embedding_dtype == 'float16' else 4))}); "
          f"bank {tuple(model.bank.shape)}")
    print(f"embedding {phases['embedding']:.1f} s, coreset {phases['coreset']:.1f} s, fit total {fit_s:.1f} s")
    print(f"RSS before the coreset {_gb(phases['rss_before_coreset'])} (peak until then "
          f"{_gb(phases['peak_before_coreset'])}); peak after the coreset "
          f"{_gb(phases['peak_after_coreset'])}; peak of the whole process {_gb(_peak())}")


if __name__ == "__main__":
    main()
