"""Stage-level functions the workflow's scripts call: each takes loaded inputs, returns results.

Kept separate from the scripts so every stage is unit-testable without Snakemake.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import AdlocError

# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------
def training_set(sets: Sequence, classes: Sequence[str], release: bool = False):
    """Concatenate per-class train feature sets into one FeatureSet plus per-image class labels.

    Returns ``(FeatureSet, sources: list[str])``; the sets must share backbone, weights, layers
    and input size (:func:`adloc.features.concat_features` checks). ``release=True``: the sets'
    tensors are freed as they are copied (never two copies of the features in memory).
    """
    from .features import concat_features

    if len(sets) != len(classes):
        raise AdlocError(f"got {len(sets)} feature files for {len(classes)} classes")
    sources = [cls for fs, cls in zip(sets, classes) for _ in fs.paths]
    merged = sets[0] if len(sets) == 1 else concat_features(list(sets), release=release)
    return merged, sources


def load_training_set(paths: Sequence, classes: Sequence[str], select: Sequence | None = None):
    """Load per-class feature files and concatenate them, as :func:`training_set`.

    ``select``: per file, the relative paths of its training images (a repeat's train split; the
    class's features hold every image once); only those rows are read (memory-mapped file).
    Features keep their stored dtype (a float16 file stays float16) and each file's tensors are
    freed as they are copied, so the peak is the concatenated features plus one layer of one
    class. The models cast every chunk to float32 when they embed it.
    """
    from .features import load_features

    select = [None] * len(paths) if select is None else list(select)
    if len(select) != len(paths):
        raise AdlocError(f"got {len(select)} path lists for {len(paths)} feature files")
    sets = [load_features(p, keep_dtype=True, paths=s) for p, s in zip(paths, select)]
    return training_set(sets, classes, release=True)


def score_splits(model, features_file, splits: Mapping[str, Any], names: Sequence[str],
                 predict_options: Mapping[str, Any] | None = None, log=None) -> dict:
    """``{split: adloc.scores.SplitScores}`` of ``model`` on the rows of ``features_file`` that
    the split file ``splits`` lists for each split in ``names`` (labels from the split file, in
    the features' order; maps kept for the test split only), for :func:`adloc.scores.write_scores`.
    ``predict_options``: the method's (:func:`adloc.models.predict_options`)."""
    import time

    from .features import load_features
    from .scores import SplitScores

    out = {}
    for split in names:
        fs = load_features(features_file, paths=[e["path"] for e in splits["splits"][split]])
        t0 = time.perf_counter()
        scores, maps = model.predict(fs, **dict(predict_options or {}))
        if log is not None:
            log.info("%s %s: %d images scored in %.2f s", splits["class"], split, len(fs.paths),
                     time.perf_counter() - t0)
        out[split] = SplitScores(scores, fs.paths, split_labels(splits, split, fs.paths),
                                 maps if split == "test" else None)
    return out


# --------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------
def split_labels(splits: Mapping[str, Any], split: str, paths: Sequence[str]) -> np.ndarray:
    """Labels (int8) of ``paths`` in the order given, looked up in the split file."""
    table = {e["path"]: int(e["label"]) for e in splits["splits"][split]}
    missing = [p for p in paths if p not in table]
    if missing:
        raise AdlocError(
            f"{len(missing)} image(s) of split {split!r} (e.g. {missing[0]}) are not in the split "
            f"file of class {splits.get('class')!r}: features are stale; rerun the workflow"
        )
    return np.asarray([table[p] for p in paths], dtype=np.int8)


def display_images(root, entries: Sequence[Mapping[str, Any]], pre, bit_depth: int | None = None) -> np.ndarray:
    """uint8 ``(N, S, S, 3)`` images with the model's resize/crop geometry (for figures);
    ``bit_depth``: the split file's, for 16-bit images."""
    from .data.mvtec import load_image
    from .data.transforms import image_uint8

    return np.stack([image_uint8(load_image(root, e["path"], bit_depth=bit_depth), pre) for e in entries])


def _nan_to_none(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def calibrate_scores(
    scores: Sequence[Mapping[str, np.ndarray]],
    threshold_cfg: Mapping[str, Any],
    classes: Sequence[str],
    advice: str | None = None,
) -> dict:
    """F1-max threshold on the validation split of one or more classes' scores (pooled).

    ``scores``: one scores file's arrays per class (``val_labels``, ``val_scores``), all from the
    same model. One class gives that class's threshold; several give ONE threshold on their
    pooled validation images (the absolute-unified scope). Returns the threshold-file dict:
    ``{"threshold": ThresholdResult.to_dict(), "classes": [...], "val": {cls: {n,
    n_anomalous}}}``. A degenerate pooled split follows ``threshold_cfg["on_degenerate"]``;
    ``advice``: the fix its error gives when the split has no anomalous image (one class:
    :func:`adloc.data.splits.val_anomaly_advice` of its split file).
    """
    from . import metrics as M

    if len(scores) != len(classes) or not classes:
        raise AdlocError(f"calibrate: got {len(scores)} scores files for classes {list(classes)}")
    labels = np.concatenate([np.asarray(s["val_labels"]).astype(np.int8) for s in scores])
    values = np.concatenate([np.asarray(s["val_scores"], dtype=np.float64) for s in scores])
    thr = M.calibrate_threshold(
        labels,
        values,
        mode=threshold_cfg["mode"],
        grid_size=threshold_cfg["grid_size"],
        on_degenerate=threshold_cfg["on_degenerate"],
        advice=advice,
    )
    val = {}
    for cls, s in zip(classes, scores):
        lab = np.asarray(s["val_labels"]).astype(int)
        val[str(cls)] = {"n": int(lab.size), "n_anomalous": int(lab.sum())}
    return {"threshold": thr.to_dict(), "classes": [str(c) for c in classes], "val": val}


def read_threshold(path) -> dict:
    """A threshold file written by the calibrate rules; its ``threshold`` entry is checked."""
    from .io import read_json

    d = read_json(path, what="threshold file")
    thr = d.get("threshold") if isinstance(d, Mapping) else None
    value = thr.get("threshold") if isinstance(thr, Mapping) else None
    if not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise AdlocError(
            f"threshold file {path} has no finite threshold.threshold ({value!r}); delete it and "
            "rerun the calibrate rule"
        )
    return d


def evaluate_scores(
    scores: Mapping[str, np.ndarray],
    splits: Mapping[str, Any],
    root,
    pre,
    threshold: Mapping[str, Any],
    eval_cfg: Mapping[str, Any],
    scope: str = "per_class",
    pixel: Mapping[str, Any] | None = None,
) -> dict:
    """Test metrics at a calibrated threshold. Returns the metrics-file dict (ARCHITECTURE.md).

    ``threshold``: the ``threshold`` entry of a threshold file (:func:`calibrate_scores`).
    ``scope`` ("per_class", "global" or "unified_abs") matters only for
    ``pixel_auroc_images: study`` (the global model's scopes count as global). ``pixel``: pixel
    metrics already computed for the same scores (the two global scopes share them).
    """
    from . import metrics as M

    labels, sc = scores["test_labels"], scores["test_scores"]
    test = M.image_metrics(labels, sc, float(threshold["threshold"]))
    lab, sv = M.check_labels_scores(labels, sc)
    test["f1_max"] = M.ap_f1max_sorted(np.sort(sv[~lab]), np.sort(sv[lab]))[1]  # threshold-free
    boot = eval_cfg["bootstrap"]
    if boot["n"] > 0:
        test["auroc_ci"] = M.bootstrap_ci(labels, sc, metric=M.auroc, n_boot=boot["n"], seed=boot["seed"])
    else:
        test["auroc_ci"] = None
    if pixel is None:
        pixel = pixel_metrics(scores, splits, root, pre, eval_cfg, "per_class" if scope == "per_class" else "global")
    vl = np.asarray(scores["val_labels"])
    out = {
        "threshold": dict(threshold),
        "test": {k: (_nan_to_none(v) if isinstance(v, float) else v) for k, v in test.items()},
        "pixel": dict(pixel),
        "val": {"n": int(vl.size), "n_anomalous": int(vl.sum()), "n_normal": int(vl.size - vl.sum())},
    }
    out["mad"] = mad(out)
    return out


def pixel_metrics(scores, splits, root, pre, eval_cfg, scope: str = "per_class") -> dict:
    """Pixel metrics on the test split, per the configured protocol
    (:func:`pixel_metrics_from_arrays`); N/A without masks."""
    from .data.transforms import load_split_masks

    entries = splits["splits"]["test"]
    by_path = {e["path"]: e for e in entries}
    ordered = [by_path[str(p)] for p in scores["test_paths"]]
    masks = load_split_masks(root, ordered, pre)
    if masks is None:
        out = pixel_metrics_from_arrays(None, None, None, eval_cfg, scope)
        out["note"] = "class has no ground-truth masks: pixel metrics N/A"
        return out
    maps = np.asarray(scores["test_maps"], dtype=np.float32)
    if maps.shape != masks.shape:
        raise AdlocError(
            f"anomaly maps have shape {maps.shape} but masks {masks.shape}: the scores file is "
            "stale; rerun the workflow"
        )
    labels = np.asarray(scores["test_labels"]).astype(bool)
    return pixel_metrics_from_arrays(masks, maps, labels, eval_cfg, scope)


def pixel_metrics_from_arrays(masks, maps, labels, eval_cfg, scope: str = "per_class") -> dict:
    """The metrics file's ``pixel`` section from the test masks, maps and image labels (all
    None: every metric N/A). Pixel AUROC, AP and F1-max over ``pixel_auroc_images``; AU-PRO at
    ``pro_fpr_limit`` and ``pro_fpr_limit_strict`` (reference: normal pixels of every test
    image; study: the study's binned curve over the anomalous images)."""
    from . import metrics as M

    images = eval_cfg["pixel_auroc_images"]
    if images == "study":  # the study: all test images per class, anomalous only for global
        images = "anomalous" if scope == "global" else "all"
    limit, strict = eval_cfg["pro_fpr_limit"], eval_cfg.get("pro_fpr_limit_strict")
    out = {"pixel_auroc_images": images, "pro_mode": eval_cfg["pro_mode"], "fpr_limit": limit,
           "fpr_limit_strict": strict, **{k: None for k in PIXEL_KEYS}, "au_pro": None,
           "au_pro_strict": None, "note": None}
    if masks is None:
        return out
    # one sorted copy of the pixels gives pixel AUROC, AP, F1-max (and the reference AU-PROs
    # when they are over the same images)
    if images == "anomalous":
        px = M.pixel_metrics(masks[labels], maps[labels], fpr_limit=limit)
    else:
        px = M.pixel_metrics(masks, maps, fpr_limit=limit, strict_limit=strict)
    for key in PIXEL_KEYS:
        out[key] = _nan_to_none(px[key])
    limits = {k: v for k, v in (("au_pro", limit), ("au_pro_strict", strict)) if v is not None}
    if eval_cfg["pro_mode"] == "study":
        for key, lim in limits.items():
            out[key] = _nan_to_none(M.au_pro_study(masks[labels], maps[labels], fpr_limit=lim))
    elif images == "anomalous":
        for key, v in zip(limits, M.au_pro_at(masks, maps, list(limits.values()))):
            out[key] = _nan_to_none(v)
    else:
        for key in limits:
            out[key] = _nan_to_none(px[key])
    return out


#: Pixel metrics over the ``pixel_auroc_images`` images (one pass, :func:`adloc.metrics.pixel_metrics`).
PIXEL_KEYS = ("pixel_auroc", "pixel_ap", "pixel_f1_max")
#: mAD (ADer's mean of seven metrics): image AUROC, AP, F1-max; pixel AUROC, AP, F1-max; AU-PRO@0.3.
MAD_KEYS = (("test", "auroc"), ("test", "auprc"), ("test", "f1_max"), ("pixel", "pixel_auroc"),
            ("pixel", "pixel_ap"), ("pixel", "pixel_f1_max"), ("pixel", "au_pro"))


def mad(result: Mapping[str, Any]) -> float | None:
    """mAD of a metrics-file dict: the mean of :data:`MAD_KEYS`; None (N/A) when any of them is
    undefined or AU-PRO is not the reference one at FPR 0.3."""
    px = result["pixel"]
    if px.get("pro_mode") != "reference" or px.get("fpr_limit") != 0.3:
        return None
    vals = [result[a].get(b) for a, b in MAD_KEYS]
    if any(v is None for v in vals):
        return None
    return float(np.mean(vals))
