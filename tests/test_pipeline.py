"""adloc.pipeline: the stage functions the scripts call, including every protocol branch that
changes a reported number (pixel AUROC image set per scope, reference vs study PRO)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from adloc.data.mvtec import scan_class
from adloc.data.splits import make_splits
from adloc.data.synthetic import generate_class
from adloc.data.transforms import Preprocess, load_split_masks
from adloc.errors import AdlocError
from adloc.features import FeatureSet
from adloc.metrics import au_pro, au_pro_study, calibrate_threshold
from adloc.pipeline import (
    calibrate_scores,
    display_images,
    evaluate_scores,
    pixel_metrics,
    split_labels,
    training_set,
)

PRE = Preprocess(32, None)
THR = {"mode": "exact", "grid_size": 1000, "on_degenerate": "error"}
PAPER = {"pixel_auroc_images": "all", "pro_mode": "reference", "pro_fpr_limit": 0.3, "bootstrap": {"n": 0, "seed": 0}}
STUDY = {**PAPER, "pixel_auroc_images": "study", "pro_mode": "study"}


@pytest.fixture(scope="module")
def klass(tmp_path_factory):
    """A generated class with masks, its split dict, and scores whose good images are hot in
    places (so the pixel-AUROC image set and the PRO's FPR pixels change the numbers)."""
    root = tmp_path_factory.mktemp("pipeline")
    generate_class(root, "synth_carpet", {"train_good": 4, "test_good": 4, "anomalies": 10}, image_size=40, seed=1)
    splits = make_splits(scan_class(root, "synth_carpet"), hash_files=False)
    test = splits["splits"]["test"]
    val = splits["splits"]["val"]
    rng = np.random.default_rng(0)
    masks = load_split_masks(root, test, PRE)
    labels = np.array([e["label"] for e in test], dtype=np.int8)
    maps = rng.random(masks.shape).astype(np.float32) + 0.8 * masks
    maps[labels == 0, :8, :8] += 1.5  # hot corners on good images only
    vl = np.array([e["label"] for e in val], dtype=np.int8)
    scores = {
        "val_scores": (rng.random(len(val)) + vl).astype(np.float32),
        "val_labels": vl,
        "val_paths": np.array([e["path"] for e in val]),
        "test_scores": maps.reshape(len(test), -1).max(1),
        "test_labels": labels,
        "test_paths": np.array([e["path"] for e in test]),
        "test_maps": maps,
    }
    return root, splits, scores, masks


def _flat_auroc(masks, maps):
    return roc_auc_score(masks.ravel(), maps.ravel())


def test_per_class_paper_protocol(klass):
    root, splits, scores, masks = klass
    thr = calibrate_scores([scores], THR, ["synth_carpet"])["threshold"]
    out = evaluate_scores(scores, splits, root, PRE, thr, PAPER, scope="per_class")
    maps, labels = scores["test_maps"], scores["test_labels"].astype(bool)
    assert out["threshold"]["threshold"] == calibrate_threshold(scores["val_labels"], scores["val_scores"]).threshold
    pred = scores["test_scores"] >= thr["threshold"]
    assert out["test"]["recall"] == pytest.approx(pred[labels].mean())
    assert out["test"]["auroc"] == pytest.approx(roc_auc_score(labels, scores["test_scores"]))
    assert out["test"]["auroc_ci"] is None  # bootstrap n = 0
    px = out["pixel"]
    assert px["pixel_auroc_images"] == "all" and px["pro_mode"] == "reference" and px["note"] is None
    assert px["pixel_auroc"] == pytest.approx(_flat_auroc(masks, maps), abs=1e-12)
    assert px["au_pro"] == pytest.approx(au_pro(masks, maps, fpr_limit=0.3), abs=1e-12)
    vl = scores["val_labels"]
    assert out["val"] == {"n": len(vl), "n_anomalous": int(vl.sum()), "n_normal": int((vl == 0).sum())}


def test_study_protocol_branches_change_the_numbers(klass):
    """pixel_auroc_images 'study': all test images for a per-class model, anomalous images only
    for the global one; pro_mode 'study': 200 linear thresholds on anomalous images only."""
    root, splits, scores, masks = klass
    maps, labels = scores["test_maps"], scores["test_labels"].astype(bool)
    thr = calibrate_scores([scores], THR, ["synth_carpet"])["threshold"]
    per = evaluate_scores(scores, splits, root, PRE, thr, STUDY, scope="per_class")["pixel"]
    glo = evaluate_scores(scores, splits, root, PRE, thr, STUDY, scope="global")["pixel"]
    # the absolute-unified scope is the same global model: the global image set
    assert evaluate_scores(scores, splits, root, PRE, thr, STUDY, scope="unified_abs")["pixel"] == glo
    assert per["pixel_auroc_images"] == "all" and glo["pixel_auroc_images"] == "anomalous"
    assert per["pixel_auroc"] == pytest.approx(_flat_auroc(masks, maps), abs=1e-12)
    assert glo["pixel_auroc"] == pytest.approx(_flat_auroc(masks[labels], maps[labels]), abs=1e-12)
    # the hot corners of good images lower the all-images value only
    assert glo["pixel_auroc"] > per["pixel_auroc"] + 0.01
    study_pro = au_pro_study(masks[labels], maps[labels], fpr_limit=0.3)
    assert per["pro_mode"] == "study" and per["au_pro"] == pytest.approx(study_pro, abs=1e-12)
    assert glo["au_pro"] == per["au_pro"]  # the study PRO never looks at good images
    assert abs(per["au_pro"] - au_pro(masks, maps, fpr_limit=0.3)) > 0.01
    # an explicit 'anomalous' setting applies to both scopes
    anom = {**PAPER, "pixel_auroc_images": "anomalous"}
    assert pixel_metrics(scores, splits, root, PRE, anom, "per_class")["pixel_auroc"] == glo["pixel_auroc"]


def test_pixel_metrics_follow_the_scores_order(klass):
    """Masks are matched to maps by path, whatever order the scores file lists them in."""
    root, splits, scores, _ = klass
    order = np.arange(len(scores["test_paths"]))[::-1]
    shuffled = {**scores, **{k: scores[k][order] for k in ("test_paths", "test_labels", "test_maps", "test_scores")}}
    a = pixel_metrics(scores, splits, root, PRE, STUDY, "global")
    b = pixel_metrics(shuffled, splits, root, PRE, STUDY, "global")
    assert a["pixel_auroc"] == pytest.approx(b["pixel_auroc"], abs=1e-12)
    assert a["au_pro"] == pytest.approx(b["au_pro"], abs=1e-12)


def test_undefined_pixel_metrics_are_none(klass):
    """No anomalous test image: pixel AUROC and PRO undefined -> None (N/A), never 1.0 or 0."""
    root, splits, scores, _ = klass
    good = scores["test_labels"] == 0
    only_good = {**scores, **{k: scores[k][good] for k in ("test_paths", "test_labels", "test_maps", "test_scores")}}
    for cfg, scope in ((PAPER, "per_class"), (STUDY, "global"), (STUDY, "per_class")):
        px = pixel_metrics(only_good, splits, root, PRE, cfg, scope)
        assert px["pixel_auroc"] is None and px["au_pro"] is None


def test_stale_maps_and_missing_ground_truth(klass, tmp_path):
    root, splits, scores, _ = klass
    bad = {**scores, "test_maps": scores["test_maps"][:, :16, :16]}
    with pytest.raises(AdlocError, match="stale"):
        pixel_metrics(bad, splits, root, PRE, PAPER)
    shutil.copytree(root, tmp_path / "data")
    shutil.rmtree(tmp_path / "data" / "synth_carpet" / "ground_truth")
    no_gt = make_splits(scan_class(tmp_path / "data", "synth_carpet"), hash_files=False)
    px = pixel_metrics(scores, no_gt, tmp_path / "data", PRE, PAPER)
    assert px["pixel_auroc"] is None and px["au_pro"] is None and "no ground-truth masks" in px["note"]


def test_split_labels_and_display_images(klass):
    root, splits, scores, _ = klass
    paths = list(scores["test_paths"][::-1])
    lab = split_labels(splits, "test", paths)
    assert lab.dtype == np.int8 and lab.tolist() == scores["test_labels"][::-1].tolist()
    with pytest.raises(AdlocError, match="stale"):
        split_labels(splits, "test", paths + ["synth_carpet/test/x/999.png"])
    imgs = display_images(root, splits["splits"]["test"][:2], PRE)
    assert imgs.shape == (2, 32, 32, 3) and imgs.dtype == np.uint8


def test_training_set_concatenates_classes():
    def fs(n, value, tag):
        return FeatureSet({"layer2": torch.full((n, 2, 3, 3), float(value))}, [f"{tag}/{i}.png" for i in range(n)],
                          {"backbone": "resnet18", "weights": "random", "layers": ["layer2"]}, 24)

    merged, sources = training_set([fs(2, 0, "a"), fs(3, 1, "b")], ["a", "b"])
    assert sources == ["a", "a", "b", "b", "b"] and merged.layers["layer2"].shape[0] == 5
    assert merged.paths[2] == "b/0.png" and float(merged.layers["layer2"][4].mean()) == 1.0
    single, src = training_set([fs(2, 0, "a")], ["a"])
    assert src == ["a", "a"] and single.paths == ["a/0.png", "a/1.png"]
    with pytest.raises(AdlocError, match="2 feature files for 1 classes"):
        training_set([fs(1, 0, "a"), fs(1, 0, "b")], ["a"])
