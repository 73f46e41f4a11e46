"""The per-class metrics table: one row per method x scope x class, plus a macro row per model.

Input: the dicts written to ``results/metrics/{method}/{scope}/{cls}.json`` (see
ARCHITECTURE.md). Output columns, in order, are :data:`COLUMNS`: ``scope`` and, beside it, its
two parts ``model_type`` (which model: per_class | global) and ``threshold_type`` (which
threshold: class | pooled | routed; :func:`adloc.scopes.scope_fields`).

Macro rows (``class == "macro"``), one per method x scope:

* rate metrics (AUROC, AUPRC, F1, accuracy, precision, recall, specificity, pixel AUROC,
  AU-PRO, image F1-max, pixel AP, pixel F1-max, mAD) are the unweighted mean over classes, ignoring N/A values (a class without masks has
  no pixel metrics, a class without test anomalies no AUROC or F1; the mean is over the classes
  that have them, NaN if none). ``n_classes`` says how many classes the row summarises and
  ``n_classes_<metric>`` over how many of them each mean was taken, so a mean over 2 of 4
  classes never passes for one over all 4 (both blank in class rows);
* counts (tp, fp, tn, fn, n_test, n_test_anomalous, n_test_normal, n_val, ...) are summed;
* threshold and the AUROC interval are left blank (NaN): a mean of per-class thresholds means
  nothing and a mean of interval bounds is not an interval;
* text columns (threshold_mode, pixel_auroc_images, pro_mode, backbone, weights, ...) keep their
  value when all classes agree, else read ``"mixed"``.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from ..errors import AdlocError
from ..io import write_csv
from ..models.registry import method_names
from ..scopes import SCOPE_PARTS

#: Column order of :func:`metrics_table`.
COLUMNS = [
    "method", "scope", "model_type", "threshold_type", "class", "threshold", "threshold_mode",
    "threshold_fallback",
    "auroc", "auroc_low", "auroc_high", "auprc", "f1", "f1_max", "accuracy", "precision", "recall",
    "specificity", "tp", "fp", "tn", "fn", "pixel_auroc", "pixel_ap", "pixel_f1_max",
    "pixel_auroc_images", "au_pro", "au_pro_strict", "mad", "pro_mode", "n_test", "n_test_anomalous", "n_test_normal", "n_val", "n_val_anomalous",
    "n_val_normal", "backbone", "weights", "weights_sha256", "device",
]

#: Averaged (NaN-aware) in the macro row.
RATE_COLUMNS = [
    "auroc", "auprc", "f1", "accuracy", "precision", "recall", "specificity", "pixel_auroc",
    "au_pro", "au_pro_strict", "f1_max", "pixel_ap", "pixel_f1_max", "mad",
]
#: Macro rows: how many classes the row summarises, and how many of them define each rate.
N_CLASSES = "n_classes"
MACRO_N_COLUMNS = [N_CLASSES] + [f"n_classes_{c}" for c in RATE_COLUMNS]
COLUMNS += MACRO_N_COLUMNS

#: Summed in the macro row.
COUNT_COLUMNS = [
    "tp", "fp", "tn", "fn", "n_test", "n_test_anomalous", "n_test_normal", "n_val",
    "n_val_anomalous", "n_val_normal",
]
#: Blank in the macro row.
BLANK_IN_MACRO = ["threshold", "auroc_low", "auroc_high", "threshold_fallback"]
#: The scope's two parts (which model, which threshold; adloc.scopes.scope_fields).
SCOPE_PART_COLUMNS = ["model_type", "threshold_type"]
TEXT_COLUMNS = SCOPE_PART_COLUMNS + [
    "threshold_mode", "pixel_auroc_images", "pro_mode", "backbone", "weights", "weights_sha256",
    "device",
]

# Method order: the registry's at call time (adloc.models.registry.method_names, plug-ins
# included); anything else follows alphabetically.
SCOPE_ORDER = ("per_class", "global", "unified_abs", "routed")
MACRO = "macro"


def _num(x: Any) -> float:
    if x is None:
        return float("nan")
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def _get(d: Mapping | None, key: str, default=None):
    if not isinstance(d, Mapping):
        return default
    return d.get(key, default)


def metrics_row(m: Mapping[str, Any]) -> dict[str, Any]:
    """Flatten one metrics dict (``results/metrics/...json``) into a table row."""
    for key in ("method", "scope", "class", "test"):
        if key not in m:
            raise AdlocError(
                f"metrics dict lacks key {key!r} (has {sorted(m)}); "
                "delete the metrics file and rerun the evaluate rule"
            )
    thr = m.get("threshold") or {}
    test = m["test"] or {}
    pixel = m.get("pixel") or {}
    val = m.get("val") or {}
    prov = m.get("provenance") or {}
    ci = test.get("auroc_ci") or {}
    parts = SCOPE_PARTS.get(str(m["scope"]), (None, None))  # files written before they said it
    return {
        "method": str(m["method"]),
        "scope": str(m["scope"]),
        "model_type": m.get("model_type", parts[0]),
        "threshold_type": m.get("threshold_type", parts[1]),
        "class": str(m["class"]),
        "threshold": _num(_get(thr, "threshold")),
        "threshold_mode": _get(thr, "mode"),
        "threshold_fallback": _get(thr, "fallback"),
        "auroc": _num(test.get("auroc")),
        "auroc_low": _num(_get(ci, "low")),
        "auroc_high": _num(_get(ci, "high")),
        "auprc": _num(test.get("auprc")),
        "f1": _num(test.get("f1")),
        "f1_max": _num(test.get("f1_max")),
        "accuracy": _num(test.get("accuracy")),
        "precision": _num(test.get("precision")),
        "recall": _num(test.get("recall")),
        "specificity": _num(test.get("specificity")),
        "tp": _num(test.get("tp")),
        "fp": _num(test.get("fp")),
        "tn": _num(test.get("tn")),
        "fn": _num(test.get("fn")),
        "pixel_auroc": _num(pixel.get("pixel_auroc")),
        "pixel_ap": _num(pixel.get("pixel_ap")),
        "pixel_f1_max": _num(pixel.get("pixel_f1_max")),
        "pixel_auroc_images": pixel.get("pixel_auroc_images"),
        "au_pro": _num(pixel.get("au_pro")),
        "au_pro_strict": _num(pixel.get("au_pro_strict")),
        "mad": _num(m.get("mad")),
        "pro_mode": pixel.get("pro_mode"),
        "n_test": _num(test.get("n")),
        "n_test_anomalous": _num(test.get("n_anomalous")),
        "n_test_normal": _num(test.get("n_normal")),
        "n_val": _num(val.get("n")),
        "n_val_anomalous": _num(val.get("n_anomalous")),
        "n_val_normal": _num(val.get("n_normal")),
        "backbone": prov.get("backbone"),
        "weights": prov.get("weights"),
        "weights_sha256": prov.get("sha256"),
        "device": device_summary(prov),
    }


def device_summary(prov: Mapping[str, Any]) -> str | None:
    """Where the chain behind a metrics file actually ran, from its provenance:
    ``"extract cpu, fit cpu, score cpu"`` (None for files written before devices were recorded)."""
    parts = [f"{step} {prov[f'{step}_device']}" for step in ("extract", "fit", "score") if prov.get(f"{step}_device")]
    return ", ".join(parts) or None


def order_key(values: Iterable[str], preferred: tuple[str, ...]) -> dict[str, int]:
    """Rank of each distinct value: those in ``preferred`` first, in that order, then the rest A-Z."""
    vals = sorted(set(values))
    ordered = [v for v in preferred if v in vals] + [v for v in vals if v not in preferred]
    return {v: i for i, v in enumerate(ordered)}


def sort_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Deterministic order: method (registry order, then A-Z), scope (per-class, global,
    absolute-unified, routed),
    class A-Z with ``macro`` last."""
    if df.empty:
        return df.reset_index(drop=True)
    mk = order_key(df["method"], tuple(method_names()))
    sk = order_key(df["scope"], SCOPE_ORDER)
    key = pd.DataFrame({
        "m": df["method"].map(mk),
        "s": df["scope"].map(sk),
        "macro": (df["class"] == MACRO).astype(int),
        "c": df["class"].astype(str),
    })
    order = key.sort_values(["m", "s", "macro", "c"], kind="mergesort").index
    return df.loc[order].reset_index(drop=True)


def _macro(group: pd.DataFrame, method: str, scope: str) -> dict[str, Any]:
    row: dict[str, Any] = {"method": method, "scope": scope, "class": MACRO}
    row[N_CLASSES] = len(group)
    for c in RATE_COLUMNS:
        vals = group[c].astype(float)
        row[c] = float(vals.mean(skipna=True)) if vals.notna().any() else float("nan")
        row[f"n_classes_{c}"] = int(vals.notna().sum())
    for c in COUNT_COLUMNS:
        vals = group[c].astype(float)
        row[c] = float(vals.sum()) if vals.notna().all() else float("nan")
    for c in BLANK_IN_MACRO:
        row[c] = float("nan") if c != "threshold_fallback" else None
    for c in TEXT_COLUMNS:
        vals = {v for v in group[c] if v is not None and not (isinstance(v, float) and np.isnan(v))}
        row[c] = vals.pop() if len(vals) == 1 else ("mixed" if vals else None)
    return row


def metrics_table(metric_dicts: Iterable[Mapping[str, Any]], macro: bool = True) -> pd.DataFrame:
    """One row per method x scope x class (+ a ``macro`` row per method x scope), columns
    :data:`COLUMNS`, sorted by :func:`sort_rows`.

    Raises:
        AdlocError: a dict lacks a required key, or two dicts describe the same method, scope and
            class.
    """
    rows = [metrics_row(m) for m in metric_dicts]
    df = pd.DataFrame(rows, columns=COLUMNS)
    dup = df.duplicated(["method", "scope", "class"], keep=False)
    if dup.any():
        which = df.loc[dup, ["method", "scope", "class"]].drop_duplicates().values.tolist()
        raise AdlocError(f"metrics_table: duplicate metrics for (method, scope, class) {which}")
    if (df["class"] == MACRO).any():
        raise AdlocError(f"metrics_table: a class may not be named {MACRO!r}")
    if macro and not df.empty:
        extra = [
            _macro(g, method, scope)
            for (method, scope), g in df.groupby(["method", "scope"], sort=True)
        ]
        df = pd.concat([df, pd.DataFrame(extra, columns=COLUMNS)], ignore_index=True)
    for c in COUNT_COLUMNS + MACRO_N_COLUMNS:
        df[c] = df[c].astype("Float64").round().astype("Int64")
    for c in ["method", "scope", "class", "threshold_fallback"] + TEXT_COLUMNS:
        df[c] = text_column(df[c])
    return sort_rows(df)


def write_metrics_table(path, metric_dicts: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Build :func:`metrics_table` and write it atomically as CSV; returns the table."""
    df = metrics_table(metric_dicts)
    write_csv(path, df)
    return df


def _fmt_threshold(t) -> str:
    if t is None or pd.isna(t):
        return ""
    t = float(t)
    return f"{t:.4f}" if abs(t) >= 0.1 else f"{t:.4g}"


def read_metrics_table(path) -> pd.DataFrame:
    """Read a table written by :func:`write_metrics_table` back with the same dtypes (counts as
    nullable Int64, blank text as None). A table written before it had ``model_type`` and
    ``threshold_type`` (a finished run compared with newer ones) gets them from its scopes."""
    df = read_table_csv(path, "metrics table", dtype={"class": str},
                        columns=[c for c in COLUMNS if c not in SCOPE_PART_COLUMNS])
    for i, c in enumerate(SCOPE_PART_COLUMNS):
        if c not in df.columns:
            df[c] = [SCOPE_PARTS.get(str(s), (None, None))[i] for s in df["scope"]]
    for c in COUNT_COLUMNS + MACRO_N_COLUMNS:
        df[c] = df[c].astype("Float64").round().astype("Int64")
    for c in ["method", "scope", "class", "threshold_fallback"] + TEXT_COLUMNS:
        df[c] = text_column(df[c])
    for c in [c for c in COLUMNS if c not in COUNT_COLUMNS + MACRO_N_COLUMNS + TEXT_COLUMNS
              + ["method", "scope", "class", "threshold_fallback"]]:
        df[c] = df[c].astype(float)
    return df[COLUMNS]


def text_column(col: pd.Series) -> pd.Series:
    """Text column as object dtype with None for missing (the same in memory and after CSV)."""
    return pd.Series([None if pd.isna(v) else str(v) for v in col], index=col.index,
                     dtype=object)


def float_column(df: pd.DataFrame, name: str) -> np.ndarray:
    """Column ``name`` as floats, all NaN when the table lacks it (e.g. the absolute-unified
    gap's interval, which exists only across repeats)."""
    return df[name].to_numpy(float) if name in df.columns else np.full(len(df), np.nan)


def read_table_csv(path, what: str, columns=None, **kwargs) -> pd.DataFrame:
    """``pd.read_csv`` whose missing or corrupt file is an :class:`AdlocError` naming ``what``;
    with ``columns``, a table that lacks any of them is one too (written by another version)."""
    try:
        df = pd.read_csv(path, **kwargs)
    except FileNotFoundError:
        raise AdlocError(f"{what} not found: {path}. Rerun the workflow to regenerate it.") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise AdlocError(f"{what} is corrupt: {path} ({exc}). Delete it and rerun.") from None
    missing = [c for c in (columns or ()) if c not in df.columns]
    if missing:
        raise AdlocError(f"{what} {path} lacks columns {missing}; delete it and rerun")
    return df


def display_table(df: pd.DataFrame, decimals: int = 4) -> pd.DataFrame:
    """Compact view for reports: method, scope, class, threshold, AUROC [95% CI], AUPRC, F1,
    accuracy, pixel AUROC, AU-PRO, F1-max, pixel AP, pixel F1-max, mAD, all as strings (``N/A`` where undefined).

    A macro row's class reads ``macro (n classes)``; a mean over fewer classes than that (the
    others have the metric undefined) carries ``(k/n)``, e.g. ``0.9500 (2/4)``.
    """
    from .figures import method_label, scope_label

    def f(x):
        return "N/A" if x is None or (isinstance(x, float) and np.isnan(x)) or pd.isna(x) else (
            f"{float(x):.{decimals}f}"
        )

    def col(metric):
        n_all = df[N_CLASSES] if N_CLASSES in df else pd.Series(pd.NA, index=df.index)
        n_def = df.get(f"n_classes_{metric}", pd.Series(pd.NA, index=df.index))
        out = []
        for v, k, n in zip(df[metric], n_def, n_all):
            text = f(v)
            if not pd.isna(k) and not pd.isna(n) and 0 < int(k) < int(n):
                text += f" ({int(k)}/{int(n)})"
            out.append(text)
        return out

    classes = [
        f"{c} ({int(n)} classes)" if c == MACRO and not pd.isna(n) else c
        for c, n in zip(df["class"], df[N_CLASSES] if N_CLASSES in df else [pd.NA] * len(df))
    ]
    out = pd.DataFrame({
        "method": df["method"].map(method_label),
        "model": df["scope"].map(scope_label),
        "class": classes,
        "threshold": [_fmt_threshold(t) for t in df["threshold"]],
        "AUROC [95% CI]": [
            a + ("" if pd.isna(lo) or pd.isna(hi) else f" [{f(lo)}, {f(hi)}]")
            for a, lo, hi in zip(col("auroc"), df["auroc_low"], df["auroc_high"])
        ],
        "AUPRC": col("auprc"),
        "F1": col("f1"),
        "accuracy": col("accuracy"),
        "pixel AUROC": col("pixel_auroc"),
        "AU-PRO": col("au_pro"),
    })
    for metric, label in (("au_pro_strict", "AU-PRO strict"), ("f1_max", "F1-max"), ("pixel_ap", "pixel AP"),
                          ("pixel_f1_max", "pixel F1-max"), ("mad", "mAD")):  # issue 22's benchmark metrics; absent in older tables
        out[label] = col(metric) if metric in df else ["N/A"] * len(df)
    return out.reset_index(drop=True)
