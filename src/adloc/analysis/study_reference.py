"""The study's published numbers, and the papers' / anomalib's anchors, as data.

Source: the public repository IvanNece/Detection-of-Anomalies-with-Localization (notebooks 02,
04-06, 10; ``outputs/results/*.json``), transcribed in the project's study_reference notes.

* ``src/adloc/data/study_reference.csv``: every row of the study's two result tables (per-class
  models, pixel metrics over all test images; global model with per-class thresholds, pixel
  metrics over anomalous test images only). Blank = not published (the per-class table has no
  precision/recall).
* :data:`STUDY_GAP_AUROC`, :data:`STUDY_CONFUSION`, :data:`STUDY_SPLITS`: the study's gap,
  cross-class and split figures.
* :func:`published_anchors` (``src/adloc/data/published_anchors.csv``): PatchCore paper,
  patchcore-inspection, ADer, PaDiM paper and anomalib numbers with setting, citation and URL
  (fractions, not percent); :data:`ANCHOR_GAP_PAIRS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import AdlocError

REFERENCE_CSV = Path(__file__).resolve().parents[1] / "data" / "study_reference.csv"

#: Metric columns of the reference table (same names as :func:`adloc.analysis.tables.metrics_table`).
METRICS = ["threshold", "auroc", "auprc", "f1", "accuracy", "precision", "recall",
           "pixel_auroc", "au_pro"]

#: Study classes in the study's order.
STUDY_CLASSES = ("hazelnut", "carpet", "zipper")

#: Per-class AUROC minus global AUROC, as published.
STUDY_GAP_AUROC: dict[tuple[str, str], float] = {
    ("patchcore", "hazelnut"): 0.0,
    ("patchcore", "carpet"): 0.0051,
    ("patchcore", "zipper"): -0.0026,
    ("padim", "hazelnut"): -0.0036,
    ("padim", "carpet"): 0.0147,
    ("padim", "zipper"): -0.0208,
}

#: Split sizes: train, val normal, val anomalous, test normal, test anomalous.
STUDY_SPLITS: dict[str, dict[str, int]] = {
    "hazelnut": {"train": 312, "val_normal": 79, "val_anomalous": 21, "test_normal": 40,
                 "test_anomalous": 49},
    "carpet": {"train": 224, "val_normal": 56, "val_anomalous": 26, "test_normal": 28,
               "test_anomalous": 63},
    "zipper": {"train": 192, "val_normal": 48, "val_anomalous": 35, "test_normal": 32,
               "test_anomalous": 84},
}

#: Cross-class cells with a nonzero count, (method, threshold class, normals class) -> flagged.
#: The study scored the TRAINING normals (n = train size); every other cell is 0.
STUDY_CONFUSION: dict[tuple[str, str, str], int] = {
    ("padim", "zipper", "hazelnut"): 172,
    ("padim", "zipper", "carpet"): 12,
}

#: Published numbers on MVTec AD (and VisA once sourced), one row per source x method x scope x
#: class, with setting, citation and source URL: PatchCore paper, patchcore-inspection's WR50
#: baseline, ADer's multi-class benchmark, PaDiM paper, anomalib's per-class tables.
ANCHORS_CSV = Path(__file__).resolve().parents[1] / "data" / "published_anchors.csv"

#: (dataset, method) -> (per-class source, multi-class source) whose 15-class means give the
#: published per-class vs one-model gap the summary quotes.
ANCHOR_GAP_PAIRS: dict[tuple[str, str], tuple[str, str]] = {
    ("mvtec_ad", "patchcore"): ("patchcore-inspection", "ADer"),
}


def load_study_reference(path=REFERENCE_CSV) -> pd.DataFrame:
    """The study's published per-class and global results, one row per method x scope x class.

    Columns: method, scope, class, the :data:`METRICS` (float, NaN = not published) and
    pixel_auroc_images (``all`` for the per-class table, ``anomalous`` for the global one).
    """
    try:
        df = pd.read_csv(path)
    except FileNotFoundError:
        raise AdlocError(f"study reference table not found: {path}; reinstall adloc") from None
    for c in METRICS:
        df[c] = df[c].astype(float)
    for c in ("method", "scope", "class", "pixel_auroc_images"):
        df[c] = df[c].astype(object)
    return df


def study_gap() -> pd.DataFrame:
    """The study's AUROC gaps (per-class − global), columns method, class, metric, gap."""
    return pd.DataFrame(
        [{"method": m, "class": c, "metric": "auroc", "gap": g}
         for (m, c), g in STUDY_GAP_AUROC.items()]
    )


def study_confusion(method: str) -> pd.DataFrame:
    """The study's cross-class table for ``method`` on the training normals, in the format of
    :func:`adloc.analysis.confusion.confusion_matrix` (threshold column from the global table)."""
    ref = load_study_reference()
    g = ref[(ref["method"] == method) & (ref["scope"] == "global")].set_index("class")
    if g.empty:
        raise AdlocError(f"no study reference for method {method!r}")
    rows = []
    for a in STUDY_CLASSES:
        for b in STUDY_CLASSES:
            k = STUDY_CONFUSION.get((method, a, b), 0)
            n = STUDY_SPLITS[b]["train"]
            rows.append({
                "threshold_class": a, "normals_class": b, "threshold": float(g.loc[a, "threshold"]),
                "n_flagged": k, "n": n, "percent": 100.0 * k / n, "label": f"{k}/{n}",
            })
    return pd.DataFrame(rows)


def published_anchors(path=ANCHORS_CSV) -> pd.DataFrame:
    """Columns dataset, source, method, scope (``per_class`` or ``global``: one model for every
    class), class (a class name or ``mean (N classes)``), the metrics (fractions, NaN = not
    published: auroc, auprc, f1_max, pixel_auroc, pixel_ap, pixel_f1_max, au_pro, mad), setting,
    citation and url."""
    try:
        df = pd.read_csv(path, keep_default_na=False, na_values=[""])
    except FileNotFoundError:
        raise AdlocError(f"published anchors table not found: {path}; reinstall adloc") from None
    for c in ("auroc", "auprc", "f1_max", "pixel_auroc", "pixel_ap", "pixel_f1_max", "au_pro", "mad"):
        df[c] = df[c].astype(float)
    return df


def embedded_class_map() -> dict[str, str]:
    """Each embedded (synthetic) class -> the MVTec AD class it mirrors (``{"synth_nut":
    "hazelnut", ...}``), from the generator's class table; :func:`side_by_side` then matches
    the study's three classes."""
    from ..data.synthetic.counts import CLASS_TABLE

    return {cls: row[2] for cls, row in CLASS_TABLE.items()}


def side_by_side(
    ours: pd.DataFrame,
    ref: pd.DataFrame | None = None,
    class_map: Mapping[str, str] | None = None,
    metrics: Sequence[str] = METRICS,
) -> pd.DataFrame:
    """Our numbers next to the study's, one row per method x scope x class x metric.

    Args:
        ours: :func:`adloc.analysis.tables.metrics_table` output (macro rows are ignored).
        ref: :func:`load_study_reference` output (default: load it).
        class_map: our class name -> study class name (e.g. ``{"synth_nut": "hazelnut"}``);
            default: identical names.
        metrics: metric columns to compare; cells the study did not publish are dropped.

    Returns:
        columns method, scope, class, metric, ours, study, difference (ours − study), plus
        ours_pixel_images / study_pixel_images for the pixel AUROC rows (the study computed
        per-class pixel AUROC over all test images and global over anomalous images only).
        Empty when no (method, scope, class) matches.
    """
    ref = load_study_reference() if ref is None else ref
    cmap = dict(class_map or {})
    o = ours[ours["class"] != "macro"].copy()
    o["study_class"] = o["class"].map(lambda c: cmap.get(c, c))
    rows = []
    r_idx = ref.set_index(["method", "scope", "class"])
    for _, r in o.iterrows():
        key = (r["method"], r["scope"], r["study_class"])
        if key not in r_idx.index:
            continue
        s = r_idx.loc[key]
        for m in metrics:
            sv = float(s[m])
            if np.isnan(sv):
                continue
            ov = float(r[m]) if m in r and pd.notna(r[m]) else float("nan")
            rows.append({
                "method": r["method"], "scope": r["scope"], "class": r["class"], "metric": m,
                "ours": ov, "study": sv, "difference": ov - sv,
                "ours_pixel_images": r.get("pixel_auroc_images") if m == "pixel_auroc" else None,
                "study_pixel_images": s["pixel_auroc_images"] if m == "pixel_auroc" else None,
            })
    cols = ["method", "scope", "class", "metric", "ours", "study", "difference",
            "ours_pixel_images", "study_pixel_images"]
    return pd.DataFrame(rows, columns=cols)


#: Metrics shown by :func:`wide_side_by_side`, with display names.
WIDE_METRICS = {"threshold": "threshold", "auroc": "AUROC", "auprc": "AUPRC", "f1": "F1",
                "accuracy": "accuracy", "precision": "precision", "recall": "recall",
                "pixel_auroc": "pixel AUROC", "au_pro": "AU-PRO"}


def wide_side_by_side(sbs: pd.DataFrame, decimals: int = 4) -> pd.DataFrame:
    """Readable view of :func:`side_by_side`: one row per method x scope x class, one column per
    metric with ``ours / study (ours − study)``; ``N/A`` where ours is undefined, blank where the
    study published nothing."""
    from .figures import method_label, scope_label

    def f(x):
        return "N/A" if pd.isna(x) else f"{x:.{decimals}f}"

    records: dict[tuple, dict] = {}
    for _, r in sbs.iterrows():
        if r["metric"] not in WIDE_METRICS:
            continue
        rec = records.setdefault((r["method"], r["scope"], r["class"]), {
            "method": method_label(r["method"]), "model": scope_label(r["scope"]),
            "class": r["class"]})
        diff = "" if pd.isna(r["difference"]) else f" ({r['difference']:+.{decimals}f})"
        rec[WIDE_METRICS[r["metric"]]] = f"{f(r['ours'])} / {f(r['study'])}{diff}"
    cols = ["method", "model", "class"] + list(WIDE_METRICS.values())
    return pd.DataFrame(list(records.values()), columns=cols, dtype=object).fillna("")
