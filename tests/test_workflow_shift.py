"""Workflow test of rule shift_images on tiny data: the shifted copy in MVTec layout with its
parameter table, and a changed shift parameter reruns the shift job only."""

from __future__ import annotations

import csv

import numpy as np
import yaml
from PIL import Image

from workflow_utils import make_dataset, planned_jobs, snakemake, write_config

CLS = "synth_nut"
SHIFT = "results/tiny/shift/paper-s0"
TARGETS = (f"{SHIFT}/{CLS}", f"{SHIFT}/{CLS}_params.csv")


def test_shift_rule_writes_mvtec_layout_and_reruns_alone(tmp_path):
    make_dataset(tmp_path / "data", [CLS])
    write_config(tmp_path, classes=[CLS], shift={"enabled": True})
    snakemake(tmp_path, "--cores", "1", *TARGETS)
    out = tmp_path / SHIFT / CLS
    with open(tmp_path / TARGETS[1], newline="") as fh:
        rows = list(csv.DictReader(fh))
    data = tmp_path / "data" / CLS
    originals = sorted(p.relative_to(data) for p in data.glob("t*/*/*.png"))
    assert sorted(r["shifted"] for r in rows) == sorted(str(p) for p in originals)
    assert [int(r["seed"]) for r in rows] == list(range(len(rows)))  # seed 0 + index
    masks = [r for r in rows if r["shifted_mask"]]
    assert masks and len(masks) == sum(1 for r in rows if "/good/" not in r["shifted"])
    for r in rows:
        with Image.open(out / r["shifted"]) as im:
            assert im.size == (64, 64) and im.mode == "RGB"  # shift.crop = the clean input (64)
        if r["shifted_mask"]:
            with Image.open(out / r["shifted_mask"]) as m:
                arr = np.asarray(m)
            assert arr.shape == (64, 64) and set(np.unique(arr)) <= {0, 255}
    assert (tmp_path / "results/tiny/logs/shift_images/paper-s0" / f"{CLS}.log").exists()
    assert planned_jobs(tmp_path, *TARGETS) == []  # up to date

    cfg_path = tmp_path / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["shift"]["rotation"] = [-5, 5]
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    jobs = planned_jobs(tmp_path, *TARGETS)
    assert jobs == [("shift_images", {"cls": CLS})]
    # the default target includes the shifted copy; the clean chain never reads it
    full = {name for name, _ in planned_jobs(tmp_path)}
    assert "shift_images" in full and "all" in full
