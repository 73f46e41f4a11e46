"""Does the global SPADE model route a test image to its own class? (docs/spade.md)

For a finished run with SPADE (``--configfile presets/spade.yaml``), prints per class: the share
of each test image's k retrieved training images that come from its own class, the share of test
images whose nearest training image is of their own class, and whose majority of the k is.
Prints figures, asserts nothing. From the repository root:

    PYTHONPATH=src .venv/bin/python benchmarks/spade_routing.py results/<run> [s42-m0]
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np

from adloc.config import feature_set_name
from adloc.data.splits import read_splits
from adloc.features import load_features
from adloc.models import load_model


def main(run: str, repeat: str = "s42-m0") -> None:
    rep = Path(run) / repeat
    model = load_model("spade", rep / "models" / "spade" / "global.pt")
    names, origin = model.source_names, model.train_origin.numpy()
    fset = feature_set_name(model.provenance["backbone"], model.provenance["weights"])
    k = min(int(model.config.k), model.n_train_images)
    print(f"global SPADE of {run} ({repeat}): {model.n_train_images} training images of "
          f"{len(names)} classes, k = {k}, pooled {model.config.layers[-1]}")
    print("| class | test images | own-class share of the k | nearest is own-class | majority own-class "
          "| own class ranked first |")
    print("|---|---|---|---|---|---|")
    for cls in names:
        split = read_splits(rep / "splits" / f"{cls}.json")["splits"]["test"]
        fs = load_features(Path(run) / "features" / fset / f"{cls}.pt", paths=[e["path"] for e in split])
        nn = model.neighbours(fs)
        own = origin[nn] == names.index(cls)
        major = np.mean([Counter(origin[r].tolist()).most_common(1)[0][0] == names.index(cls) for r in nn])
        first = own[:, : min(k, int(model.train_sources[cls]))].all(1).mean()  # every own image before any other
        print(f"| {cls} | {len(nn)} | {own.mean():.3f} | {own[:, 0].mean():.3f} | {major:.3f} | {first:.3f} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
