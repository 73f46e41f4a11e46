"""Command line: ``python -m adloc.data.synthetic --root DIR ...``."""

from __future__ import annotations

import argparse
import sys
import time

from ...errors import DatasetError
from .counts import DEFAULT_COUNTS, EMBEDDED_CLASSES, STUDY_CLASSES, mvtec_counts
from .writer import generate_class


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m adloc.data.synthetic",
        description="Write the embedded synthetic dataset in MVTec AD layout.",
    )
    ap.add_argument("--root", required=True, help="output dataset root")
    ap.add_argument(
        "--classes",
        nargs="+",
        default=list(STUDY_CLASSES),
        help=f"classes (default: {' '.join(STUDY_CLASSES)}; all: {' '.join(EMBEDDED_CLASSES)})",
    )
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--mvtec-counts",
        action="store_true",
        help="use MVTec AD's per-class counts instead of the small defaults",
    )
    ap.add_argument("--train-good", type=int, default=None)
    ap.add_argument("--test-good", type=int, default=None)
    ap.add_argument("--anomalies", type=int, default=None)
    ap.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes rendering images in parallel (0: one per CPU); output is identical",
    )
    args = ap.parse_args(argv)
    try:
        for cls in args.classes:
            cnt = mvtec_counts(cls) if args.mvtec_counts else dict(DEFAULT_COUNTS)
            for key in ("train_good", "test_good", "anomalies"):
                if getattr(args, key) is not None:
                    cnt[key] = getattr(args, key)
            t = time.perf_counter()
            path = generate_class(
                args.root,
                cls,
                cnt,
                image_size=args.image_size,
                seed=args.seed,
                workers=args.workers,
            )
            n = sum(cnt.values())
            print(
                f"{cls}: {n} images at {args.image_size}px in {time.perf_counter() - t:.2f} s -> {path}"
            )
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
