"""A many-class run of the real workflow at tiny size: seven embedded classes (the study's three
plus four more styles), generated inside the DAG, every figure drawn for seven classes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from workflow_utils import TINY_COUNTS, snakemake, write_config

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

CLASSES = ["synth_nut", "synth_carpet", "synth_zipper", "synth_pill", "synth_grid",
           "synth_screw", "synth_wood"]


def test_seven_embedded_classes_run_end_to_end(tmp_path):
    write_config(
        tmp_path,
        classes=CLASSES,
        dataset={"generate": True, "synthetic": {"image_size": 64, "counts": dict(TINY_COUNTS)}},
        methods=["patchcore"],
        patchcore={"embedding_dtype": "float16"},
        features={"storage_dtype": "float16"},
    )
    snakemake(tmp_path, "--cores", "2", timeout=2400)  # 7 classes: allow a loaded machine
    r = tmp_path / "results" / "tiny"
    for cls in CLASSES:
        meta = json.loads((tmp_path / "data" / cls / "synthetic.json").read_text())
        assert meta["class"] == cls and meta["counts"] == TINY_COUNTS
        assert Image.open(r / "figures" / f"examples_{cls}.png").size[0] > 400
    # the global model's bank drew from every class
    comp = pd.read_csv(r / "tables" / "memory_bank_composition.csv")
    assert set(CLASSES) <= set(comp["class"])
    for cls in CLASSES:
        sc = np.load(r / "s42-m0" / "scores" / "patchcore" / "global" / f"{cls}.npz")
        assert np.isfinite(sc["test_scores"]).all()
    conf = pd.read_csv(r / "s42-m0" / "tables" / "confusion_patchcore.csv")
    assert set(conf["normals_class"]) == set(CLASSES) <= set(conf["threshold_class"])
    gap = pd.read_csv(r / "tables" / "gap.csv")
    assert set(CLASSES) <= set(gap["class"])
    # seven classes: the gap figure has one panel per metric (classes along x), so it is taller
    # than wide-grouped; the confusion heat map grows with the class count
    gw, gh = Image.open(r / "figures" / "gap.png").size
    cw, ch = Image.open(r / "s42-m0" / "figures" / "confusion_patchcore.png").size
    assert gh > 700 and cw > 700 and ch > 500
    assert Image.open(r / "figures" / "tsne.png").size[0] > 500
    assert all(c in (r / "summary.md").read_text() for c in CLASSES)
