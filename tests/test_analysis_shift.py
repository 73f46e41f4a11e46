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


def test_shift_tables_carry_each_repeats_shift_seed():
    m = S.stack_phases({"clean": _table(CLEAN), "none": _table(_phase(0.1, 0.3))})
    stacked = pd.concat([m.assign(repeat=r) for r in ("s42-m0", "s43-m0")], ignore_index=True)
    stacked = stacked[["repeat", *m.columns]]
    out = S.with_shift_seed(stacked, {"s42-m0": 0, "s43-m0": 100_000})
    assert list(out.columns[:3]) == ["repeat", "shift_seed", "phase"]
    assert out.groupby("repeat")["shift_seed"].unique().map(list).to_dict() == {"s42-m0": [0], "s43-m0": [100_000]}
    # the across-repeat interval spans the two repeats (two shift draws)
    across = S.metrics_by_phase_across(out)
    row = across[(across["phase"] == "none") & (across["scope"] == "global") & (across["class"] == "a")
                 & (across["metric"] == "auroc")].iloc[0]
    assert row["n_repeats"] == 2 and row["mean"] == pytest.approx(0.5)


def test_shift_examples_figure_lays_out_images_and_phase_maps():
    from adloc.analysis.shift_examples import shift_examples_figure

    rng = np.random.default_rng(0)
    k, cols = 2, ["PaDiM\nclean", "PaDiM\nno adaptation", "PaDiM\nfull adaptation"]
    imgs = rng.integers(0, 255, (k, 32, 32, 3), dtype=np.uint8)
    masks = np.zeros((k, 32, 32), bool)
    masks[0, 8:16, 8:16] = True
    maps = {g: {c: rng.random((k, 8, 8)) * 2 for c in cols} for g in ("per-class", "global")}
    scores = {g: {c: [0.5, 1.5] for c in cols} for g in maps}
    fig = shift_examples_figure(imgs, imgs[:, ::-1], masks, masks[:, ::-1], maps, scores,
                                ["crack · 000.png", "good · 001.png"], clean_columns=cols[:1])
    axes = fig.axes
    assert len(axes) == k * 2 * (3 + len(cols)) + 1  # + the colour bar
    titles = [a.get_title() for a in axes]
    assert "shifted" in titles and "PaDiM\nno adaptation\n0.50 passed" in titles
    assert any(t.endswith("1.50 flagged") for t in titles)
    with pytest.raises(AdlocError, match="row group 'global' has columns"):
        shift_examples_figure(imgs, imgs, masks, masks, {**maps, "global": {cols[0]: maps["global"][cols[0]]}},
                              scores, ["a", "b"])


def test_the_summary_names_the_shift_seeds():
    assert S.seeds_line({"s42-m0": 0}).startswith("- Shift seed 0 (one repeat")
    line = S.seeds_line({"s42-m0": 0, "s42-m1": 100_000, "s43-m0": 100_000})
    assert line.startswith("- 2 shift seed(s) over 3 repeats (0, 100000;") and "include the shift draw" in line
