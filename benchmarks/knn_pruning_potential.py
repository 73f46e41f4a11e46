"""How much an exact k-NN could skip by a low-dimensional lower bound (issue 23 §3's next step).

Not a timing and not an implementation: a measurement on a finished run (a ``bench_study.py``
work folder or any folder with ``results/``), to decide whether an exact PatchCore search that
prunes bank rows by a projection bound would pay off on that run's features. For the run's
global PatchCore bank (or ``--model``), centred on its mean, with ``P`` the top ``d`` principal
directions and ``R`` the rest:

    ||q - b||^2 = ||P(q - b)||^2 + ||R(q - b)||^2 >= ||Pq - Pb||^2 + (|Rq| - |Rb|)^2 = LB

so every bank row with ``LB > d*`` (``d*`` the query's exact nearest squared distance) could be
skipped without changing the result. Printed per class: the share of the bank's variance in the
top ``d`` directions, and the number of rows with ``LB <= d*`` (mean, median, max over
``--queries`` sampled val/test patches), computed in float64: what an ideal pruned search would
still have to check exactly. A real implementation needs ``d*`` bounded from above first (the
exact distance of the rows with the smallest ``LB``) and rounding slack as in
``adloc.models.knn_bf16``; both only add candidates.

    python benchmarks/knn_pruning_potential.py --run benchmarks/out/study-mvtec --dims 64 128 256
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_knn_bf16 import embedded_rows, features_file, run_dirs  # noqa: E402  (sibling benchmark script)

from adloc.models import load_model  # noqa: E402


def principal(bank_c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (descending) and eigenvectors (columns) of the bank's covariance, float64."""
    b = bank_c.double()
    ev, vec = torch.linalg.eigh(b.T @ b / b.shape[0])
    return ev.flip(0), vec.flip(1)


def candidates(q_c: torch.Tensor, bank_c: torch.Tensor, vec: torch.Tensor, d: int) -> torch.Tensor:
    """Per query: the bank rows with ``LB <= d*`` (float64), for the top ``d`` directions."""
    q, b = q_c.double(), bank_c.double()
    qn, bn = q.pow(2).sum(1), b.pow(2).sum(1)
    best = (qn[:, None] + bn[None] - 2 * q @ b.T).clamp_min(0).min(1).values
    p = vec[:, :d]
    qp, bp = q @ p, b @ p
    rq = (qn - qp.pow(2).sum(1)).clamp_min(0).sqrt()
    rb = (bn - bp.pow(2).sum(1)).clamp_min(0).sqrt()
    lb = (qp.pow(2).sum(1)[:, None] + bp.pow(2).sum(1)[None] - 2 * qp @ bp.T).clamp_min(0)
    lb += (rq[:, None] - rb[None]) ** 2
    return (lb <= best[:, None]).sum(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="work folder of a finished run")
    ap.add_argument("--model", default="global", help="PatchCore model of the run (default: global)")
    ap.add_argument("--dims", type=int, nargs="+", default=[32, 64, 128, 256])
    ap.add_argument("--queries", type=int, default=400, help="sampled val/test patches per class")
    ap.add_argument("--every", type=int, default=40, help="every N-th val/test image embedded")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    run, rep = run_dirs(args.run.resolve())
    model = load_model("patchcore", rep / "models" / "patchcore" / f"{args.model}.pt")
    bank = model.bank.float()
    mu = bank.mean(0)
    bank_c = bank - mu
    ev, vec = principal(bank_c)
    share = ", ".join(f"{d}: {float(ev[:d].sum() / ev.sum()):.4f}" for d in args.dims)
    print(f"bank {args.model}: {bank.shape[0]} x {bank.shape[1]}; variance in the top d directions: {share}; "
          f"load {os.getloadavg()[0]:.2f}")
    print("| class | patches sampled | " + " | ".join(f"rows with LB <= d*, d = {d} (mean / median / max)" for d in args.dims) + " |")
    print("|---|---|" + "---|" * len(args.dims))
    classes = list(model.source_names or [args.model])
    for cls in classes:
        rows, _ = embedded_rows(model, features_file(run, str(model.provenance["backbone"]), cls),
                                rep / "splits" / f"{cls}.json", args.every)
        pick = torch.randperm(rows.shape[0], generator=torch.Generator().manual_seed(0))[: args.queries]
        cells = []
        for d in args.dims:
            c = candidates(rows[pick] - mu, bank_c, vec, d).double()
            cells.append(f"{float(c.mean()):.1f} / {float(c.median()):.0f} / {float(c.max()):.0f}")
        print(f"| {cls} | {len(pick)} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
