"""The gap table's inputs: one pair per method and class, the per-class and the global model's
metrics and scores of the SAME test images (:func:`adloc.analysis.gap.gap_table` reads them).

:func:`load_pairs` finds the pairs among the metrics and scores files by their layout
(``.../{method}/{scope}/{class}``), :func:`load_pair` reads one, :func:`as_pair` accepts a dict
or a 4-tuple, and :func:`check_same_test_images` / :func:`scope_metrics` check that the two
models (and the optional absolute-unified and routed metrics) belong together image by image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..errors import AdlocError
from ..io import read_json
from ..scores import read_scores


def check_same_test_images(pc_scores: Mapping, gl_scores: Mapping, what: str) -> None:
    """Raise :class:`AdlocError` unless both score files list the same test images in the same
    order with the same labels (a paired comparison needs image-by-image correspondence)."""
    for key in ("test_scores", "test_labels", "test_paths"):
        for name, d in (("per-class", pc_scores), ("global", gl_scores)):
            if key not in d:
                raise AdlocError(f"{what}: the {name} scores lack {key!r}; rerun the score rule")
    p1 = np.asarray(pc_scores["test_paths"]).astype(str)
    p2 = np.asarray(gl_scores["test_paths"]).astype(str)
    if p1.shape != p2.shape:
        raise AdlocError(
            f"{what}: the per-class and global models scored different test sets "
            f"({p1.size} vs {p2.size} images); both must score the class's test split. "
            "Rerun the score rules from the same splits file."
        )
    diff = np.flatnonzero(p1 != p2)
    if diff.size:
        i = int(diff[0])
        same_set = sorted(p1.tolist()) == sorted(p2.tolist())
        raise AdlocError(
            f"{what}: test_paths differ between the per-class and global scores at position {i} "
            f"({p1[i]!r} vs {p2[i]!r}; {diff.size} positions differ"
            f"{', same images in a different order' if same_set else ''}). A paired bootstrap "
            "needs the same images in the same order; rerun the score rules from the same splits."
        )
    l1 = np.asarray(pc_scores["test_labels"]).astype(int)
    l2 = np.asarray(gl_scores["test_labels"]).astype(int)
    if not np.array_equal(l1, l2):
        raise AdlocError(f"{what}: test_labels differ between the per-class and global scores")
    for name, d in (("per-class", pc_scores), ("global", gl_scores)):
        if np.asarray(d["test_scores"]).shape != p1.shape:
            raise AdlocError(f"{what}: {name} test_scores and test_paths differ in length")


def as_pair(pair: Any) -> tuple[Mapping, Mapping, Mapping, Mapping]:
    """``(per-class metrics, global metrics, per-class scores, global scores)`` of a pair."""
    if isinstance(pair, Mapping):
        try:
            return (pair["per_class_metrics"], pair["global_metrics"],
                    pair["per_class_scores"], pair["global_scores"])
        except KeyError as exc:
            raise AdlocError(
                f"gap pair lacks key {exc}; expected per_class_metrics, global_metrics, "
                "per_class_scores, global_scores"
            ) from None
    if isinstance(pair, Sequence) and len(pair) == 4:
        return tuple(pair)  # type: ignore[return-value]
    raise AdlocError("a gap pair is a dict or a 4-tuple (pc_metrics, gl_metrics, pc_scores, gl_scores)")


def load_pair(pc_metrics_path, gl_metrics_path, pc_scores_path, gl_scores_path,
              abs_metrics_path=None, routed_metrics_path=None) -> dict:
    """Read one pair from ``metrics/{m}/{cls}/{cls}.json``, ``metrics/{m}/global/{cls}.json``,
    the two matching ``scores`` files and, optionally, ``metrics/{m}/unified_abs/{cls}.json``
    and ``metrics/{m}/routed/{cls}.json``."""
    pair = {
        "per_class_metrics": read_json(pc_metrics_path, "per-class metrics"),
        "global_metrics": read_json(gl_metrics_path, "global metrics"),
        "per_class_scores": read_scores(pc_scores_path, "per-class scores"),
        "global_scores": read_scores(gl_scores_path, "global scores"),
    }
    if abs_metrics_path is not None:
        pair["unified_abs_metrics"] = read_json(abs_metrics_path, "absolute-unified metrics")
    if routed_metrics_path is not None:
        pair["routed_metrics"] = read_json(routed_metrics_path, "routed metrics")
    return pair


#: The pair's optional metrics of the other global-model scopes, and their names in messages.
SCOPE_KEYS = {"unified_abs_metrics": "absolute-unified", "routed_metrics": "routed"}


def scope_metrics(pair: Any, key: str, method: str, cls: str) -> Mapping | None:
    """The pair's optional ``unified_abs_metrics`` / ``routed_metrics``, checked to be its own."""
    m = pair.get(key) if isinstance(pair, Mapping) else None
    if m is not None and (str(m.get("method")), str(m.get("class"))) != (method, cls):
        raise AdlocError(
            f"gap {method}/{cls}: the {SCOPE_KEYS[key]} metrics are for "
            f"{m.get('method')}/{m.get('class')}"
        )
    return m


def result_key(path) -> tuple[str, str, str]:
    """``(method, scope, class)`` of a file laid out as ``.../{method}/{scope}/{class}.{ext}``
    (``results/<run>/<repeat>/metrics/...`` and ``results/<run>/<repeat>/scores/...``)."""
    p = Path(path)
    return p.parent.parent.name, p.parent.name, p.stem


def load_pairs(metric_files: Iterable, score_files: Iterable) -> list[dict]:
    """Every (method, class) pair of a per-class and a global model among the metrics and scores
    files, read with :func:`load_pair`, in (method, class) order.

    A per-class file is one whose scope folder is its class (``patchcore/hazelnut/hazelnut``); its
    global partner is ``{method}/global/{class}``, and ``{method}/unified_abs/{class}`` (the
    absolute-unified scope) joins the pair when it is among the metrics files. A per-class result
    whose global partner or scores file is missing from the inputs is an error naming the
    missing file.
    """
    metrics = {result_key(f): f for f in metric_files}
    scores = {result_key(f): f for f in score_files}
    pairs = []
    for method, scope, cls in sorted(metrics):
        if scope != cls:
            continue
        pc, gl = (method, cls, cls), (method, "global", cls)
        for key, table, what in ((gl, metrics, "metrics"), (pc, scores, "scores"), (gl, scores, "scores")):
            if key not in table:
                raise AdlocError(
                    f"gap: no {what} file for {'/'.join(key)} among the inputs (per-class "
                    f"{'/'.join(pc)} has one); the gap rule needs both models of every method and class"
                )
        ab = metrics.get((method, "unified_abs", cls))
        rt = metrics.get((method, "routed", cls))
        pairs.append(load_pair(metrics[pc], metrics[gl], scores[pc], scores[gl], ab, rt))
    return pairs


__all__ = ["check_same_test_images", "as_pair", "load_pair", "SCOPE_KEYS", "scope_metrics", "result_key",
           "load_pairs"]
