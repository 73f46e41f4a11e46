"""Class routing for the ``routed`` scope (absolute-unified with class routing, issue 20 §3).

The class of a test image is predicted from the image alone: a k-NN vote among the training
images of every class on their mean-pooled backbone features (the feature set's stage maps
pooled over space, layers concatenated: :func:`adloc.analysis.tsne.pooled_backbone_features`).
No test label is read. The global model's score of the image is then compared with the
PREDICTED class's threshold (``thresholds/<method>/global/<predicted>.json``), so an image routed
to the wrong class is judged by that class's threshold.

Only threshold-dependent image metrics (F1, accuracy, precision, recall, specificity and the
counts) differ from the model-unified (``global``) scope: scores, AUROC, AUPRC, F1-max and every
pixel metric are the global model's, copied from its metrics, not recomputed
(:func:`routed_metrics`).

Ties: the neighbours are the ``k`` nearest training images by Euclidean distance (float64,
scikit-learn's brute-force search; k is capped at the number of training images); the class
with most votes wins, a tie in votes goes to the class whose voters lie nearer in sum, then to
the class listed first. Torch-free (the caller pools the features).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import AdlocError

#: The routing file's ``kind`` and format version.
KIND = "routing"
FORMAT_VERSION = 1
#: Metrics of the routed scope that depend on the threshold (the rest are the global scope's).
THRESHOLD_KEYS = ("threshold", "tp", "tn", "fp", "fn", "accuracy", "precision", "recall",
                  "specificity", "f1")


def route(train_x, train_labels: Sequence[str], test_x, k: int,
          classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class of every test row by a k-NN vote among the training rows.

    ``train_x`` (N, D), ``train_labels`` (N,) class names, ``test_x`` (M, D); ``classes`` the
    class order (the last tie-break). Returns ``(predicted (M,) object array, votes (M,
    len(classes)) int array)``.
    """
    from sklearn.neighbors import NearestNeighbors

    classes = [str(c) for c in classes]
    train_x = np.asarray(train_x, dtype=np.float64)
    test_x = np.asarray(test_x, dtype=np.float64)
    lab = np.asarray(train_labels).astype(str)
    if k < 1:
        raise AdlocError(f"routing.k must be >= 1, got {k} (config key routing.k)")
    if train_x.ndim != 2 or test_x.ndim != 2 or train_x.shape[1] != test_x.shape[1]:
        raise AdlocError(f"route: features of shapes {train_x.shape} (train) and {test_x.shape} "
                         "(test) do not match; the feature files are stale: rerun the workflow")
    if lab.shape[0] != train_x.shape[0] or train_x.shape[0] == 0:
        raise AdlocError(f"route: {train_x.shape[0]} training rows but {lab.shape[0]} labels")
    unknown = sorted(set(lab.tolist()) - set(classes))
    if unknown:
        raise AdlocError(f"route: training images of classes {unknown} not among {classes}")
    if not (np.isfinite(train_x).all() and np.isfinite(test_x).all()):
        raise AdlocError("route: NaN or inf in the pooled features; check the feature files")
    n_votes = min(int(k), train_x.shape[0])
    votes = np.zeros((test_x.shape[0], len(classes)), dtype=np.int64)
    if test_x.shape[0] == 0:
        return np.asarray([], dtype=object), votes
    nn = NearestNeighbors(n_neighbors=n_votes, algorithm="brute", metric="euclidean", n_jobs=1)
    dist, idx = nn.fit(train_x).kneighbors(test_x)
    code = {c: i for i, c in enumerate(classes)}
    nb = np.vectorize(code.__getitem__, otypes=[np.int64])(lab[idx])  # (M, k) class codes
    near = np.zeros_like(votes, dtype=np.float64)
    for j in range(n_votes):
        np.add.at(votes, (np.arange(nb.shape[0]), nb[:, j]), 1)
        np.add.at(near, (np.arange(nb.shape[0]), nb[:, j]), dist[:, j])
    # most votes, then the smaller summed distance of the voters, then the class order
    near[votes == 0] = np.inf
    order = np.lexsort((np.broadcast_to(np.arange(len(classes)), votes.shape), near, -votes),
                       axis=1)
    best = order[:, 0]
    return np.asarray(classes, dtype=object)[best], votes


def routing_record(true_classes: Mapping[str, Sequence[str]],
                   predicted: Mapping[str, Sequence[str]], classes: Sequence[str], k: int,
                   feature_set: str, n_train: Mapping[str, int]) -> dict:
    """The routing file (one per repeat and feature set): for every class its test paths and
    the class each was routed to, plus per-class and overall accuracy.

    ``true_classes``: class -> its test paths (in the split file's order); ``predicted``: class
    -> the predicted class of each of those paths."""
    test, correct, total = {}, 0, 0
    for cls in classes:
        paths = [str(p) for p in true_classes[cls]]
        pred = [str(p) for p in predicted[cls]]
        if len(paths) != len(pred):
            raise AdlocError(f"routing_record: class {cls}: {len(paths)} paths, {len(pred)} predictions")
        hits = sum(p == cls for p in pred)
        test[cls] = {"paths": paths, "predicted": pred, "n": len(paths), "n_correct": hits,
                     "accuracy": hits / len(paths) if paths else None}
        correct, total = correct + hits, total + len(paths)
    return {"kind": KIND, "format_version": FORMAT_VERSION, "k": int(k),
            "k_used": int(min(k, sum(n_train.values()))), "feature_set": str(feature_set),
            "classes": [str(c) for c in classes], "train": {str(c): int(n) for c, n in n_train.items()},
            "test": test, "n": total, "n_correct": correct,
            "accuracy": correct / total if total else None}


def read_routing(path) -> dict:
    """A routing file written by rule route (:func:`routing_record`), checked."""
    from .io import read_json

    d = read_json(path, what="routing file")
    if not isinstance(d, Mapping) or d.get("kind") != KIND or d.get("format_version") != FORMAT_VERSION:
        raise AdlocError(f"{path} is not an adloc routing file (format {FORMAT_VERSION}); delete it "
                         "and rerun the route rule")
    return d


def predicted_for(routing: Mapping[str, Any], cls: str, paths: Sequence[str], what: str = "") -> list[str]:
    """The predicted class of each of ``paths`` (class ``cls``'s test images, in the scores
    file's order) from a routing file."""
    entry = (routing.get("test") or {}).get(cls)
    if entry is None:
        raise AdlocError(f"{what or 'routing file'}: no routing for class {cls}; rerun the route rule")
    table = dict(zip(entry["paths"], entry["predicted"]))
    missing = [p for p in map(str, paths) if p not in table]
    if missing:
        raise AdlocError(f"{what or 'routing file'}: {len(missing)} test image(s) of {cls} (e.g. "
                         f"{missing[0]}) were not routed: the routing file is stale; delete it and rerun")
    return [table[str(p)] for p in paths]


def routed_predictions(scores, predicted: Sequence[str], thresholds: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """``(per-image threshold, prediction score >= threshold)`` for the routed scope."""
    unknown = sorted(set(map(str, predicted)) - set(thresholds))
    if unknown:
        raise AdlocError(f"routed: images routed to classes {unknown} that have no global threshold")
    thr = np.asarray([float(thresholds[str(p)]) for p in predicted], dtype=np.float64)
    sc = np.asarray(scores, dtype=np.float64)
    if thr.shape != sc.shape:
        raise AdlocError(f"routed: {sc.size} scores but {thr.size} routed images")
    return thr, sc >= thr


def routed_metrics(global_result: Mapping[str, Any], scores: Mapping[str, np.ndarray],
                   predicted: Sequence[str], thresholds: Mapping[str, Mapping[str, Any]],
                   k: int, feature_set: str) -> dict:
    """The routed scope's metrics dict from the model-unified one of the same class.

    ``global_result``: :func:`adloc.pipeline.evaluate_scores` for the global model and this
    class (its threshold-free metrics and pixel metrics are kept); ``scores``: the global
    model's scores file of the class (``test_scores``, ``test_labels``); ``predicted``: the
    routed class of each test image, in the scores' order; ``thresholds``: class -> the global
    model's threshold entry (``ThresholdResult`` dict) of that class.
    """
    from .metrics.image import check_labels_scores, confusion_at, rates_from_counts

    lab, sc = check_labels_scores(scores["test_labels"], scores["test_scores"])
    values = {c: float(t["threshold"]) for c, t in thresholds.items()}
    _, pred = routed_predictions(sc, predicted, values)
    counts = confusion_at(lab, pred.astype(np.float64), 0.5)  # the routed decisions as 0 / 1
    rates = rates_from_counts(**counts)
    out = {key: (dict(v) if isinstance(v, Mapping) else v) for key, v in global_result.items()}
    test = dict(out["test"])
    test.update(counts)
    test.update({k_: (None if isinstance(v, float) and math.isnan(v) else v) for k_, v in rates.items()})
    test["threshold"] = None  # one per image: the predicted class's
    out["test"] = test
    used = sorted(set(map(str, predicted)))
    modes = sorted({str(thresholds[c].get("mode")) for c in used}) or [str(next(iter(thresholds.values())).get("mode"))]
    fallbacks = [f"{c}: {thresholds[c]['fallback']}" for c in used if thresholds[c].get("fallback")]
    out["threshold"] = {"threshold": None, "mode": modes[0] if len(modes) == 1 else "mixed",
                        "fallback": "; ".join(fallbacks) or None,
                        "routed": {c: values[c] for c in used}}
    pred_list = [str(p) for p in predicted]
    out["routing"] = {"k": int(k), "feature_set": str(feature_set), "predicted": pred_list,
                      "counts": {c: pred_list.count(c) for c in used}}
    return out


def class_thresholds(files: Sequence) -> dict[str, dict]:
    """Class -> the global model's threshold entry (``ThresholdResult`` dict) of that class, from
    rule calibrate_global's per-class threshold files (``thresholds/<method>/global/<cls>.json``,
    one class each; read with :func:`adloc.pipeline.read_threshold`)."""
    from .pipeline import read_threshold

    out: dict[str, dict] = {}
    for f in files:
        t = read_threshold(f)
        classes = t.get("classes")
        if not isinstance(classes, list) or len(classes) != 1:
            raise AdlocError(f"routed: threshold file {f} is not one class's (classes {classes!r}); "
                             "the routed scope reads the global model's per-class thresholds: fix the rule")
        cls = str(classes[0])
        if cls in out:
            raise AdlocError(f"routed: two threshold files for class {cls} (the second {f}); fix the rule")
        out[cls] = t["threshold"]
    return out


def evaluate_routed(global_result: Mapping[str, Any], scores: Mapping[str, np.ndarray], cls: str,
                    routing_file, threshold_files: Sequence) -> dict:
    """The routed scope's metrics of class ``cls`` (rule evaluate_global): its test images'
    predicted classes from ``routing_file`` (rule route), each judged at that class's threshold
    among ``threshold_files`` (:func:`class_thresholds`), by :func:`routed_metrics`."""
    routing = read_routing(routing_file)
    thresholds = class_thresholds(threshold_files)
    predicted = predicted_for(routing, cls, [str(x) for x in scores["test_paths"]], str(routing_file))
    return routed_metrics(global_result, scores, predicted, thresholds, routing["k"], routing["feature_set"])


__all__ = ["route", "routing_record", "read_routing", "predicted_for", "routed_predictions",
           "routed_metrics", "class_thresholds", "evaluate_routed", "THRESHOLD_KEYS"]
