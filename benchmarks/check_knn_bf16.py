"""Check ``patchcore.knn_bf16`` on a finished study run: neighbours, distances, scores, maps.

Two parts, both printed as Markdown tables; asserts nothing (a benchmark check, not a test).

1. ``--run WORK`` (a ``bench_study.py`` work folder, or any folder with ``results/``): for
   every PatchCore model of the run (per-class and global) and every class it scores, embeds
   every ``--every``-th val/test image of the split file exactly as scoring does, searches
   each patch's nearest bank entry with faiss (the default, float32 ``|q|^2 + |b|^2 - 2 q.b``)
   and with the bf16 search (bfloat16 candidates, float32 re-rank), and reports the share of
   patches whose neighbour changed, the largest |distance difference|, the bf16 candidates per
   patch, the share settled by the projected bound and the patches that fell back to the
   float32 level; ``--direct N`` patches per pair
   are also checked bit for bit against the brute-force reference ``direct_knn``, and both
   searches' choices against float64 brute force on those, the ``N`` with the largest distance
   difference and up to ``N`` where the two picked different neighbours.
2. ``--against OTHER`` (a second run of the same config with the other setting): per method,
   scope and class, the largest |difference| of image scores and of test anomaly maps between
   the two runs' scores files, and whether they are bit-identical (PaDiM's must be).
3. ``--embedding``: every image of every class (train, val and test) embedded as PatchCore
   does on the CPU (the pooling without unfold, :mod:`adloc.models.patch_pool`) and by the
   unfold formulation (``F.unfold`` + ``adaptive_avg_pool1d``, the CUDA path and the one before
   it): the largest |difference| and whether the two are bit-identical (they must be: the
   coreset and the memory bank are computed from these rows).

    python benchmarks/check_knn_bf16.py --run benchmarks/out/bf16 --against benchmarks/out/exact
    python benchmarks/check_knn_bf16.py --run benchmarks/out/bf16 --every 1 --direct 64
    python benchmarks/check_knn_bf16.py --run benchmarks/out/bf16 --no-neighbours --embedding
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from adloc.features import load_features
from adloc.models import load_model
from adloc.models.knn import KnnIndex
from adloc.models.knn_bf16 import bf16_supported, direct_knn
from adloc.models.patchcore import patch_rows, patchcore_embedding
from adloc.scores import read_scores


def _one(paths, what: str, where: Path) -> Path:
    if len(paths) != 1:
        sys.exit(f"expected one {what} under {where}, found {len(paths)}: {[str(p) for p in paths][:4]}")
    return paths[0]


def run_dirs(work: Path):
    """``(run folder results/<run>, repeat folder results/<run>/<repeat>)`` of a finished run."""
    run = _one(sorted(p.parent for p in (work / "results").glob("*/config.json")), "run folder", work)
    rep = _one(sorted(p.parent for p in run.glob("*/splits")), "repeat folder", run)
    return run, rep


def features_file(run: Path, backbone: str, cls: str) -> Path:
    """The class's features file of the run's feature set for ``backbone`` (one expected)."""
    found = sorted(p for p in (run / "features").glob(f"{backbone}*/{cls}.*"))
    return _one(found, f"features file of {backbone} for {cls} (results/<run>/features/<set>/{cls}.*)", run)


def embed(model, fs, s: int, e: int, **options) -> torch.Tensor:
    """PatchCore's embedding of images ``s:e`` of the feature set ``fs`` with ``model``'s config
    (``options``: :func:`patchcore_embedding`'s, e.g. ``unfold``)."""
    c = model.config
    part = {ly: fs.layers[ly][s:e].float() for ly in c.layers}
    return patchcore_embedding(part, list(c.layers), int(c.patch_size), c.pretrain_embed_dim,
                               c.target_embed_dim, **options)


def embedded_rows(model, path: Path, split_file: Path, every: int) -> torch.Tensor:
    """Patch rows (float32) of every ``every``-th val and test image, embedded as scoring does."""
    splits = json.loads(split_file.read_text())
    paths = [e["path"] for s in ("val", "test") for e in splits["splits"][s]][::every]
    fs = load_features(path, paths=paths)
    with torch.inference_mode():
        out = [patch_rows(embed(model, fs, s, s + 16)) for s in range(0, len(paths), 16)]
    return torch.cat(out), len(paths)


def _against_float64(rows, bank, sel, d_f, i_f, d_b, i_b, chunk: int = 256):
    """Both searches against float64 brute force on the patches ``sel`` (a sample plus those
    where faiss and bf16 differ most): largest distance errors, and how many picked the
    float64 nearest entry (ties: either index counts)."""
    q = rows[sel].double()
    best = torch.full((len(sel),), float("inf"), dtype=torch.float64)
    for s in range(0, bank.shape[0], chunk):
        b = bank[s : s + chunk].double()
        best = torch.minimum(best, ((q[:, None, :] - b[None]) ** 2).sum(2).min(1).values)
    d64 = best.sqrt()

    def at(i):  # float64 distance of each sampled patch to the entry a search chose
        return ((q - bank[i[sel, 0]].double()) ** 2).sum(1).sqrt()

    tol = 1e-12 * (1 + d64)
    ok_f = int(((at(i_f) - d64).abs() <= tol).sum())
    ok_b = int(((at(i_b) - d64).abs() <= tol).sum())
    e_f = float((d_f[sel, 0].double() - d64).abs().max())
    e_b = float((d_b[sel, 0].double() - d64).abs().max())
    return f"{e_f:.3g}", f"{e_b:.3g}", f"{ok_f}/{len(sel)}", f"{ok_b}/{len(sel)}"


def neighbours(work: Path, every: int, direct: int) -> list[str]:
    run, rep = run_dirs(work)
    cfg = json.loads((run / "config.json").read_text())
    classes = list(cfg["classes"])
    lines = ["| model | class | images | patches | bank | neighbour changed | max abs d diff | "
             "candidates / patch | projected | fell back | == direct_knn | faiss max err vs float64 | bf16 max err vs float64 "
             "| faiss = float64 NN | bf16 = float64 NN | faiss s | bf16 s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for model_file in sorted((rep / "models" / "patchcore").glob("*.pt")):
        model = load_model("patchcore", model_file)
        scored = classes if model_file.stem == "global" else [model_file.stem]
        exact, fast = KnnIndex(model.bank), KnnIndex(model.bank, bf16=True)
        for cls in scored:
            feats = features_file(run, str(model.provenance["backbone"]), cls)
            rows, n_img = embedded_rows(model, feats, rep / "splits" / f"{cls}.json", every)
            t0 = time.perf_counter()
            d_f, i_f = exact.search(rows, 1, squared=False)
            t1 = time.perf_counter()
            before = dict(fast.stats)
            d_b, i_b = fast.search(rows, 1, squared=False)
            t2 = time.perf_counter()
            st = {k: fast.stats[k] - before[k] for k in before}
            same, err = "-", ("-", "-", "-", "-")
            if direct:
                sel = torch.linspace(0, rows.shape[0] - 1, direct).long()
                rd, ri = direct_knn(rows[sel], model.bank, 1)
                same = str(bool(torch.equal(ri, i_b[sel]) and torch.equal(rd.sqrt(), d_b[sel])))
                worst = torch.topk((d_f - d_b).abs()[:, 0], min(direct, rows.shape[0])).indices
                changed = (i_f != i_b)[:, 0].nonzero()[:, 0][:direct]  # where the two disagree
                pick = torch.unique(torch.cat([sel, worst, changed]))
                err = _against_float64(rows, model.bank, pick, d_f, i_f, d_b, i_b)
            lines.append(
                f"| {model_file.stem} | {cls} | {n_img} | {rows.shape[0]} | {model.bank.shape[0]} "
                f"| {100 * float((i_f != i_b).float().mean()):.4f} % | {float((d_f - d_b).abs().max()):.3g} "
                f"| {st['candidates'] / max(1, st['queries']):.2f} "
                f"| {100 * st['projected'] / max(1, st['queries']):.1f} % | {st['fallback']} | {same} "
                f"| {err[0]} | {err[1]} | {err[2]} | {err[3]} | {t1 - t0:.1f} | {t2 - t1:.1f} |")
            print(lines[-1], flush=True)
    return lines


def scores(work: Path, other: Path) -> list[str]:
    _, rep = run_dirs(work)
    _, rep_o = run_dirs(other)
    lines = ["| scores file | max abs image-score diff | max abs map diff | max map | bit-identical |",
             "|---|---|---|---|---|"]
    for f in sorted((rep / "scores").glob("*/*/*.npz")):
        g = rep_o / f.relative_to(rep)
        a, b = read_scores(f), read_scores(g)
        keys = sorted(k for k in a if a[k].dtype.kind == "f")
        img = [k for k in keys if "map" not in k]
        mp = [k for k in keys if "map" in k]
        same = all(np.array_equal(a[k], b[k]) for k in keys) and sorted(a) == sorted(b)
        di = max((float(np.abs(a[k] - b[k]).max()) for k in img if a[k].size), default=float("nan"))
        dm = max((float(np.abs(a[k] - b[k]).max()) for k in mp if a[k].size), default=float("nan"))
        top = max((float(np.abs(a[k]).max()) for k in mp if a[k].size), default=float("nan"))
        lines.append(f"| {f.relative_to(rep / 'scores')} | {di:.3g} | {dm:.3g} | {top:.3g} | {same} |")
    return lines


def embeddings(work: Path, chunk: int = 16) -> list[str]:
    run, rep = run_dirs(work)
    files = sorted((rep / "models" / "patchcore").glob("*.pt"))
    if not files:
        sys.exit(f"no PatchCore model under {rep / 'models' / 'patchcore'}")
    model = load_model("patchcore", files[0])  # its embedding config: every PatchCore model's
    lines = ["| class | images | max abs diff | bit-identical | patch_pool s | unfold s |", "|---|---|---|---|---|---|"]
    for cls in json.loads((run / "config.json").read_text())["classes"]:
        fs = load_features(features_file(run, str(model.provenance["backbone"]), cls))
        n = len(fs.paths)
        diff, same, t_pool, t_unfold = 0.0, True, 0.0, 0.0
        with torch.inference_mode():
            for s in range(0, n, chunk):
                t0 = time.perf_counter()
                a = embed(model, fs, s, s + chunk, unfold=False)
                t1 = time.perf_counter()
                b = embed(model, fs, s, s + chunk, unfold=True)
                t_pool, t_unfold = t_pool + t1 - t0, t_unfold + time.perf_counter() - t1
                same = same and torch.equal(a, b)
                diff = max(diff, float((a - b).abs().max()))
        lines.append(f"| {cls} | {n} | {diff:.3g} | {same} | {t_pool:.1f} | {t_unfold:.1f} |")
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="work folder of a finished run")
    ap.add_argument("--against", type=Path, help="second run of the same config (scores compared)")
    ap.add_argument("--every", type=int, default=1, help="every N-th val/test image (1: all)")
    ap.add_argument("--direct", type=int, default=32, help="patches per (model, class) checked against direct_knn")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-neighbours", action="store_true", help="skip part 1 (the neighbour check)")
    ap.add_argument("--embedding", action="store_true", help="part 3: patch_pool vs unfold on every image")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"bf16 instructions: {bf16_supported()}, threads {args.threads}, load {os.getloadavg()[0]:.2f}")
    if not args.no_neighbours:
        neighbours(args.run.resolve(), max(1, args.every), args.direct)
    if args.against:
        print("\n".join(scores(args.run.resolve(), args.against.resolve())))
    if args.embedding:
        embeddings(args.run.resolve())
    print(f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
