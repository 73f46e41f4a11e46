"""Domain-shift analysis (adloc.analysis.shift) and the shifted domain's split files
(adloc.data.shifted) on hand-made inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from adloc.analysis import shift as S
from adloc.data.shifted import path_map, shifted_preprocess, shifted_splits
from adloc.errors import AdlocError, DatasetError
from adloc.io import sha256_file


def _table(values):
    """A metrics table with one method, scopes x classes (+ macro) and the given AUROC / F1."""
    rows = []
    for (scope, cls), (a, f) in values.items():
        rows.append({"method": "m", "scope": scope, "class": cls, "auroc": a, "auprc": a,
                     "f1": f, "accuracy": f, "pixel_auroc": np.nan, "au_pro": np.nan, "n_test": 4})
    return pd.DataFrame(rows)


CLEAN = {("per_class", "a"): (0.9, 0.8), ("global", "a"): (0.8, 0.7), ("unified_abs", "a"): (0.8, 0.6),
         ("per_class", "macro"): (0.9, 0.8), ("global", "macro"): (0.8, 0.7),
         ("unified_abs", "macro"): (0.8, 0.6)}


def _phase(delta_pc, delta_gl):
    return {k: (v[0] - (delta_pc if k[0] == "per_class" else delta_gl),
                v[1] - (delta_pc if k[0] == "per_class" else delta_gl)) for k, v in CLEAN.items()}


def test_shift_cost_is_clean_minus_shifted_with_a_paired_interval():
    shifted = S.stack_phases({"none": _table(_phase(0.1, 0.3)), "full": _table(_phase(0.0, 0.05))})
    labels = np.array([0, 0, 1, 1])
    clean_sc = {"test_scores": np.array([0.1, 0.2, 0.8, 0.9]), "test_labels": labels,
                "test_paths": np.array(["a/x.png", "a/y.png", "a/z.png", "a/w.png"])}
    shift_sc = {"test_scores": np.array([0.1, 0.5, 0.4, 0.9]), "test_labels": labels,
                "test_paths": np.array(["s/x", "s/y", "s/z", "s/w"])}
    pmap = {"a/x.png": "s/x", "a/y.png": "s/y", "a/z.png": "s/z", "a/w.png": "s/w"}
    scores = {("none", "m", "per_class", "a"): (clean_sc, shift_sc)}
    cost = S.shift_cost(_table(CLEAN), shifted, scores, pmap, n_boot=50, seed=0)
    r = cost[(cost["phase"] == "none") & (cost["scope"] == "global") & (cost["class"] == "a")
             & (cost["metric"] == "auroc")].iloc[0]
    assert r["cost"] == pytest.approx(0.3) and r["clean"] == 0.8
    ci = cost[(cost["phase"] == "none") & (cost["scope"] == "per_class") & (cost["class"] == "a")
              & (cost["metric"] == "auroc")].iloc[0]
    assert ci["n_boot"] == 50 and ci["cost_low"] <= ci["cost_high"]
    with pytest.raises(AdlocError, match="not the clean test images shifted"):
        S.shift_cost(_table(CLEAN), shifted, scores, {**pmap, "a/x.png": "s/other"}, n_boot=5)


def test_summary_lines_answer_both_questions():
    m = S.stack_phases({"clean": _table(CLEAN), "none": _table(_phase(0.1, 0.3)),
                        "threshold": _table(_phase(0.1, 0.2)), "full": _table(_phase(0.0, 0.05))})
    m.insert(0, "repeat", "s42-m0")
    across = S.metrics_by_phase_across(m)
    lines = S.summary_lines(across, ["m"])
    text = "\n".join(lines)
    # clean gap 0.1, no adaptation 0.1 - 0.1 + 0.3 = 0.3: unification costs 0.2 more
    assert "clean +0.1000, no adaptation +0.3000" in text and "costs more under shift (+0.2000" in text
    assert "the per-class advantage is smallest with full adaptation" in text
    assert "full adaptation recovers most (+0.2500, 83% of the no-adaptation shift cost)" in text
    fig = S.plot_phases(across, "m")
    assert len(fig.axes) == 2


def test_shifted_splits_keep_membership_and_hash_the_shifted_files(tmp_path):
    (tmp_path / "c/train/good").mkdir(parents=True)
    (tmp_path / "c/test/bad").mkdir(parents=True)
    (tmp_path / "c/ground_truth/bad").mkdir(parents=True)
    for f in ("c/train/good/0.png", "c/test/bad/1.png", "c/ground_truth/bad/1_mask.png"):
        (tmp_path / f).write_bytes(f.encode())
    rows = [{"path": "c/train/good/0.jpg", "shifted": "train/good/0.png", "shifted_mask": None},
            {"path": "c/test/bad/1.jpg", "shifted": "test/bad/1.png",
             "shifted_mask": "ground_truth/bad/1_mask.png"}]
    e = dict(label=0, defect="good", mask=None, sha256="x", mask_sha256=None)
    splits = {"class": "c", "splits": {
        "train": [{**e, "path": "c/train/good/0.jpg"}], "val": [],
        "test": [{**e, "path": "c/test/bad/1.jpg", "label": 1, "defect": "bad", "mask": "c/ground_truth/bad/1_mask.jpg"}]}}
    out = shifted_splits(splits, rows, tmp_path)
    t = out["splits"]["test"][0]
    assert t["path"] == "c/test/bad/1.png" and t["mask"] == "c/ground_truth/bad/1_mask.png"
    assert t["shift_of"] == "c/test/bad/1.jpg" and t["label"] == 1
    assert t["sha256"] == sha256_file(tmp_path / "c/test/bad/1.png")
    assert splits["splits"]["test"][0]["path"] == "c/test/bad/1.jpg"  # input untouched
    assert path_map(rows, "c")["c/train/good/0.jpg"] == "c/train/good/0.png"
    with pytest.raises(DatasetError, match="no row in shift parameter table"):
        shifted_splits(splits, rows[:1], tmp_path, "p.csv")


def test_shifted_preprocess_is_a_no_op_at_the_model_input():
    from adloc.data.transforms import Preprocess, image_uint8_tensor

    pre = Preprocess.from_config(shifted_preprocess({"resize": 80, "crop": 64}))
    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert np.array_equal(image_uint8_tensor(img, pre).permute(1, 2, 0).numpy(), img)
    pil = Preprocess.from_config(shifted_preprocess({"resize": 64, "crop": None, "resize_backend": "pil"}))
    assert np.array_equal(image_uint8_tensor(img, pil).permute(1, 2, 0).numpy(), img)
