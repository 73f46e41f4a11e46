"""Time PatchCore and PaDiM fit/predict, the coreset and the k-NN search on synthetic features.

Features are random (|N(0,1)|, like post-ReLU maps) with the shapes real backbones give at a
224 input, so the figures measure adloc's compute, not a backbone. Prints a table; asserts
nothing.

    python benchmarks/bench_models.py                       # CPU, 200 train images
    python benchmarks/bench_models.py --device cuda --n-train 728
    python benchmarks/bench_models.py --backbones efficientnet_lite0 --n-train 50 --threads 2
"""

from __future__ import annotations

import argparse
import time

import torch

from adloc.backbones import CHANNELS
from adloc.models import Padim, PadimConfig, PatchCore, PatchCoreConfig
from adloc.models.coreset import greedy_coreset
from adloc.models.knn import KnnIndex
from adloc.models.patchcore import patch_rows, patchcore_embedding

GRIDS = {"layer1": 56, "layer2": 28, "layer3": 14, "layer4": 7}

# per backbone: PatchCore embedding dims (paper setting) and PaDiM n_features
SETTINGS = {
    "efficientnet_lite0": {"pretrain": None, "target": None, "padim_d": 100},
    "resnet18": {"pretrain": None, "target": None, "padim_d": 100},
    "resnet50": {"pretrain": None, "target": None, "padim_d": 100},
    "wide_resnet50_2": {"pretrain": 1024, "target": 1024, "padim_d": 550},
}


def synthetic(backbone: str, n: int, layers, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ch = dict(zip(("layer1", "layer2", "layer3", "layer4"), CHANNELS[backbone]))
    return {l: torch.randn(n, ch[l], GRIDS[l], GRIDS[l], generator=g).abs_() for l in layers}


def timed(fn, device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n-train", type=int, default=200)
    ap.add_argument("--n-test", type=int, default=50)
    ap.add_argument("--coreset-ratio", type=float, default=0.1)
    ap.add_argument("--backbones", nargs="+", default=["efficientnet_lite0", "wide_resnet50_2"], choices=sorted(SETTINGS))
    ap.add_argument("--models", nargs="+", default=["patchcore", "padim"], choices=["patchcore", "padim"])
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = args.device
    print(f"device {dev}, torch {torch.__version__}, CPU threads {torch.get_num_threads()}, "
          f"n_train {args.n_train}, n_test {args.n_test}, coreset ratio {args.coreset_ratio}")
    if dev.startswith("cuda"):
        print(f"GPU: {torch.cuda.get_device_name(0)}")
    rows = []
    for bb in args.backbones:
        st = SETTINGS[bb]
        if "patchcore" in args.models:
            layers = ("layer2", "layer3")
            tr, te = synthetic(bb, args.n_train, layers, 0), synthetic(bb, args.n_test, layers, 1)
            cfg = PatchCoreConfig(layers=layers, pretrain_embed_dim=st["pretrain"], target_embed_dim=st["target"],
                                  coreset_ratio=args.coreset_ratio, device=dev)
            # the coreset alone, on the embedded training patches
            emb = torch.cat([patch_rows(patchcore_embedding({l: v[s:s + 16].to(dev) for l, v in tr.items()}, layers, 3,
                                                        st["pretrain"], st["target"])).cpu()
                             for s in range(0, args.n_train, 16)])
            n_keep = int(len(emb) * args.coreset_ratio)
            t_core, sel = timed(lambda: greedy_coreset(emb, n_keep, 128, 0, 10, device=dev), dev)
            rows.append((bb, "coreset", f"{len(emb)}x{emb.shape[1]} -> {n_keep}", t_core, "—"))
            bank = emb[sel].to(dev)
            q = emb[: args.n_test * 784].to(dev)
            index = KnnIndex(bank)
            t_knn, _ = timed(lambda: index.search(q, 9, squared=True), dev)
            rows.append((bb, f"kNN k=9 ({index.backend})", f"{len(q)} queries x {len(bank)}", t_knn, "—"))
            del emb, bank, q, index
            for scoring in ("paper", "study"):
                model = PatchCore(PatchCoreConfig(**{**cfg.to_dict(), "scoring": scoring, "blur_sigma": 4.0 if scoring == "paper" else 0.0}))
                t_fit, _ = timed(lambda: model.fit(tr), dev)
                t_pred, _ = timed(lambda: model.predict(te), dev)
                rows.append((bb, f"PatchCore {scoring}", f"bank {tuple(model.bank.shape)}", t_fit, t_pred))
            del tr, te
        if "padim" in args.models:
            layers = ("layer1", "layer2", "layer3")
            tr, te = synthetic(bb, args.n_train, layers, 0), synthetic(bb, args.n_test, layers, 1)
            model = Padim(PadimConfig(layers=layers, n_features=st["padim_d"], device=dev))
            t_fit, _ = timed(lambda: model.fit(tr), dev)
            t_pred, _ = timed(lambda: model.predict(te), dev)
            rows.append((bb, "PaDiM", f"D={st['padim_d']}, 56x56", t_fit, t_pred))
            del tr, te, model
    print()
    print(f"| backbone | step | size | fit / run (s) | predict {args.n_test} (s) |")
    print("|---|---|---|---|---|")
    for bb, step, size, a, b in rows:
        b_s = b if isinstance(b, str) else f"{b:.2f}"
        print(f"| {bb} | {step} | {size} | {a:.2f} | {b_s} |")


if __name__ == "__main__":
    main()
