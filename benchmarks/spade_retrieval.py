"""Which classes a finished run's global model retrieves for each test image, for the methods that
retrieve whole training images before comparing patches (registry capability
``retrieves_images``: SPADE). Not a timing; asserts nothing; no test runs it.

For every class and its test split (the first repeat's split file): the share of each image's K
retrieved training images that come from its own class (mean over the images; the best possible
is ``min(K, own training images) / K``, printed beside it), the share of images whose nearest
retrieved image is of its own class, and the share whose majority class among the K is its own
(ties: the class met first, i.e. nearer). Normal and anomalous test images pooled, then each.

    .venv/bin/python benchmarks/spade_retrieval.py results/embedded
    .venv/bin/python benchmarks/spade_retrieval.py results/embedded15 --repeat s42-m0
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np

from adloc.config import feature_set_name
from adloc.data.splits import read_splits
from adloc.features import load_features
from adloc.models import load_model
from adloc.models.registry import RETRIEVES_IMAGES, method_label, methods_with


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a finished run's folder, results/<run>")
    ap.add_argument("--repeat", default=None, help="repeat folder (default: the first s*-m*)")
    return ap.parse_args(argv)


def class_rows(model, run: Path, repeat: str, fset: str, cls: str) -> dict:
    splits = read_splits(run / repeat / "splits" / f"{cls}.json")
    entries = splits["splits"]["test"]
    fs = load_features(run / "features" / fset / f"{cls}.pt", paths=[e["path"] for e in entries])
    labels = np.asarray([int(e["label"]) for e in entries])
    names = np.asarray(model.source_names, dtype=object)[model.train_origin.numpy()[model.neighbours(fs)]]
    own = names == cls
    majority = np.asarray([Counter(row).most_common(1)[0][0] == cls for row in names])
    k, n_own = names.shape[1], int(model.train_sources[cls])
    row = {"class": cls, "n_test": int(labels.size), "K": int(k), "best_own": min(k, n_own) / k}
    for tag, m in (("", slice(None)), ("_normal", labels == 0), ("_anomalous", labels == 1)):
        row[f"own{tag}"] = float(own[m].mean()) if own[m].size else float("nan")
        row[f"nearest{tag}"] = float(own[m][:, 0].mean()) if own[m].size else float("nan")
        row[f"majority{tag}"] = float(majority[m].mean()) if majority[m].size else float("nan")
    return row


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = json.loads((args.run / "config.json").read_text())
    repeat = args.repeat or sorted(p.name for p in args.run.glob("s*-m*") if p.is_dir())[0]
    cols = ["class", "n_test", "K", "best_own", "own", "own_normal", "own_anomalous", "nearest",
            "majority", "majority_normal", "majority_anomalous"]
    for m in methods_with(RETRIEVES_IMAGES, cfg["methods"]):
        fset = feature_set_name(cfg[m]["backbone"], cfg[m]["weights"])
        model = load_model(m, args.run / repeat / "models" / m / "global.pt")
        rows = [class_rows(model, args.run, repeat, fset, cls) for cls in cfg["classes"]]
        print(f"\n{method_label(m)} global model, {args.run} {repeat} (shares of the test images)")
        print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
        # macro: the mean over classes of every share; n_test: every test image
        macro = {"class": "macro", "n_test": sum(x["n_test"] for x in rows), "K": "",
                 **{c: float(np.mean([x[c] for x in rows])) for c in cols[3:]}}
        for r in rows + [macro]:
            print("| " + " | ".join(str(r[c]) if c in ("class", "n_test", "K") else f"{r[c]:.3f}"
                                    for c in cols) + " |")


if __name__ == "__main__":
    main()
