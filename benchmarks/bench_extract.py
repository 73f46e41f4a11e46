"""Feature-extraction transport: old (float32 in, float32 out, synchronous pageable copies) vs new
(uint8 in, normalised on the device, float16 out, pinned double-buffered copies back).

Prints one line per (precision, batch size): images/s of both and the speed-up, then one line per
precision checking that the new transport gives the old values (float16 rounding aside) and, with
float32 out, exactly the old values. Asserts nothing. Run from the repository root:

    PYTHONPATH=src .venv/bin/python benchmarks/bench_extract.py --device cpu --n 64
    PYTHONPATH=src python3 benchmarks/bench_extract.py --device cuda           # n = 2048

On CUDA two precisions are timed: bf16 autocast + channels_last (the workflow's GPU setting) and
float32 / NCHW; on the CPU float32 / NCHW only. Each timing follows a warm-up batch (which also
allocates the pinned buffers) and is bracketed by ``torch.cuda.synchronize()``.
"""

from __future__ import annotations

import argparse
import time

import torch


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--n", type=int, default=None, help="images (default 2048 on cuda, 128 on cpu)")
    ap.add_argument("--batch-sizes", default="16,64,256")
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--weights", default="imagenet", help="imagenet | random | a state-dict path")
    ap.add_argument("--layers", default="layer1,layer2,layer3")
    ap.add_argument("--size", type=int, default=224, help="input side in pixels")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    return ap.parse_args()


def main() -> None:
    args = parse()
    from adloc.data.transforms import normalize_images
    from adloc.features import FeatureExtractor

    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device == "cuda"
    n = args.n or (2048 if cuda else 128)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    layers = args.layers.split(",")
    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(0)
    u8 = torch.randint(0, 256, (n, 3, args.size, args.size), dtype=torch.uint8, generator=g)
    fl = normalize_images(u8)  # what image_tensor gives for the same pixels
    print(
        f"torch {torch.__version__}, device {torch.cuda.get_device_name(0) if cuda else 'cpu'} "
        f"({torch.get_num_threads()} CPU threads); {args.backbone} weights={args.weights} {','.join(layers)}, "
        f"{n} images of {args.size} px (inputs made in {time.perf_counter() - t0:.1f} s)",
        flush=True,
    )

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    def timed(fn):
        sync()
        t = time.perf_counter()
        out = fn()
        sync()
        return time.perf_counter() - t, out

    def rel(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a.float() - b).norm() / b.norm().clamp_min(1e-30))

    precisions = [(True, True), (False, False)] if cuda else [(False, False)]
    for bf16, cl in precisions:
        name = "bf16+channels_last" if bf16 else "float32/NCHW"
        fx = FeatureExtractor(
            args.backbone, args.weights, layers, device=args.device, dtype="bf16" if bf16 else None, channels_last=cl
        )

        def old(x, bs):  # the transport before: float32 in, float32 out, plain synchronous loop
            fx.pinned = False
            return fx.extract(x, batch_size=bs)

        def new(x, bs, out_dtype=torch.float16):  # uint8 in, float16 out, pinned staging on CUDA
            fx.pinned = True
            return fx.extract(x, batch_size=bs, out_dtype=out_dtype)

        check_bs = 64 if 64 in batch_sizes else batch_sizes[0]
        for bs in batch_sizes:
            # warm-up: a full batch (kernels for this shape; on CUDA also the pinned buffers); the
            # CPU's new path has nothing of its own to warm up, so a few images there
            w = min(bs, n)
            old(fl[:w], bs)
            t_old, a = timed(lambda: old(fl, bs))
            new(u8[: w if cuda else min(w, 4)], bs)
            t_new, b = timed(lambda: new(u8, bs))
            print(
                f"{name:<18} batch {bs:>4}: old {n / t_old:8.0f} img/s ({t_old:.2f} s)  "
                f"new {n / t_new:8.0f} img/s ({t_new:.2f} s)  x{t_old / t_new:.2f}",
                flush=True,
            )
            if bs == check_bs:
                kept = a, b
            del a, b
        a, b = kept
        del kept
        c = new(u8, check_bs, torch.float32)
        diff = max(float((b[k].float() - a[k]).abs().max()) for k in layers)
        err = max(rel(b[k], a[k]) for k in layers)
        exact = all(torch.equal(c[k], a[k]) for k in layers)
        dtypes = ",".join(sorted({str(v.dtype).replace("torch.", "") for v in b.values()}))
        print(
            f"{name:<18} check batch {check_bs}: new ({dtypes} out) vs old: max abs diff {diff:.3e}, "
            f"max rel. error {err:.2e}; new with float32 out == old exactly: {exact}",
            flush=True,
        )
        del fx, a, b, c
        if cuda:
            torch.cuda.empty_cache()
    if cuda:
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    print(f"total {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
