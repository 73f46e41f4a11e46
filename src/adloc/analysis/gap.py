"""Per-class minus global: the study's central question, with paired bootstrap intervals.

For each method and class, the per-class model and the global model score the SAME test images.
Point differences come from the two metrics dicts; for AUROC and AUPRC a paired bootstrap
(:func:`adloc.metrics.paired_gap_ci`: the same resampled images for both models) gives a 95%
interval of the difference. A positive gap means the per-class model is better.

The absolute-unified scope (the global model with ONE threshold, calibrated on the pooled
validation split of every class) shares the global model's scores, so it differs from the
model-unified scope only in threshold-dependent metrics (F1, accuracy): ``unified_abs`` and
``gap_abs`` (per-class minus absolute-unified) hold them, and ``global - unified_abs`` is what
knowing the class at inference buys. The routed scope (the same global model, each test image
judged at the threshold of the class it is routed to, :mod:`adloc.routing`) likewise differs only
there: ``routed`` and ``gap_routed`` (per-class minus routed) hold it, with a paired bootstrap
interval (``gap_routed_low`` / ``gap_routed_high``: per-class and routed predictions on the same
resampled images; for the threshold-free metrics the per-class minus global interval).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from ..errors import AdlocError
from ..io import write_csv
from ..metrics import auprc, auroc, paired_gap_ci
from ..models.registry import method_names
from .gap_pairs import as_pair, check_same_test_images, scope_metrics
from .gap_pairs import load_pair, load_pairs, result_key  # noqa: F401 (re-exported: the gap API)
from .routing import GAP_COLUMNS as ROUTED_COLUMNS, ROUTED_LABELS, routed_gap_values
from .tables import order_key, read_table_csv, text_column

#: Metrics in the gap table, with where to find the point value in a metrics dict.
GAP_METRICS: dict[str, tuple[str, str]] = {
    "auroc": ("test", "auroc"),
    "auprc": ("test", "auprc"),
    "f1": ("test", "f1"),
    "accuracy": ("test", "accuracy"),
    "pixel_auroc": ("pixel", "pixel_auroc"),
    "au_pro": ("pixel", "au_pro"),
}
#: Metrics with a paired-bootstrap interval (they need the scores, not a threshold).
CI_METRICS = ("auroc", "auprc")
METRIC_FNS = {"auroc": auroc, "auprc": auprc}

METRIC_LABELS = {
    "auroc": "AUROC", "auprc": "AUPRC", "f1": "F1", "accuracy": "accuracy",
    "pixel_auroc": "pixel AUROC", "au_pro": "AU-PRO",
}

COLUMNS = [
    "method", "class", "metric", "per_class", "global", "gap", "gap_low", "gap_high",
    "ci_excludes_zero", "n_boot", "n_valid", "n_test", "unified_abs", "gap_abs", "n_classes",
    *ROUTED_COLUMNS,
]
#: Metrics that depend on the threshold, so differ between model- and absolute-unified.
THRESHOLD_METRICS = ("f1", "accuracy")

#: Column / axis labels of the per-class minus absolute-unified gaps.
ABS_LABELS = {"f1": "F1 vs one threshold", "accuracy": "accuracy vs one threshold"}

TITLE = ("Per-class minus global model (positive = per-class better)\n"
         "global with each class's threshold (model-unified); F1 and accuracy also vs one "
         "threshold (absolute-unified) and vs routed (predicted class's threshold)")
#: Which gap column compares with which scope (axis labels): column -> (scope words, labels).
VERSUS_LABELS = {"gap_abs": ABS_LABELS, "gap_routed": ROUTED_LABELS}


def _value(m: Mapping, section: str, key: str) -> float:
    v = (m.get(section) or {}).get(key)
    return float("nan") if v is None else float(v)


@dataclass(frozen=True)
class Bootstrap:
    """The paired bootstrap settings of one gap table (see :func:`gap_table`)."""

    n_boot: int
    seed: int
    alpha: float
    ci_fn: Callable | None
    stratify: bool
    check_estimate: bool  # the real bootstrap recomputes the point gap: cross-check it


def gap_table(
    pairs: Iterable[Any],
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    ci_fn: Callable | None = None,
    macro: bool = True,
    stratify: bool = False,
) -> pd.DataFrame:
    """Per-class minus global, one row per method x class x metric (long format).

    Args:
        pairs: one item per method and class, each a dict with keys ``per_class_metrics``,
            ``global_metrics`` (the metrics JSON dicts), ``per_class_scores``,
            ``global_scores`` (the score npz dicts: ``test_scores``, ``test_labels``,
            ``test_paths``), or a 4-tuple in that order. See :func:`load_pair`.
        n_boot: bootstrap resamples for the AUROC/AUPRC intervals (0 = no intervals).
        seed, alpha: bootstrap seed and 1 - confidence level.
        ci_fn: the paired bootstrap (default :func:`adloc.metrics.paired_gap_ci`).
        stratify: resample normal and anomalous images separately (class counts fixed).
        macro: add a ``class == "macro"`` row per method and metric: the mean gap over the
            classes where it is defined (point value only; no interval); its ``n_classes`` says
            how many classes that mean covers (1 or 0 on a class row: defined or N/A).

    Returns:
        columns :data:`COLUMNS`: ``per_class``, ``global`` and ``gap`` point values from the
        metrics dicts (NaN when N/A, e.g. pixel metrics of a class without masks); ``gap_low``,
        ``gap_high`` the paired bootstrap interval (AUROC, AUPRC only); ``ci_excludes_zero``.

    Raises:
        AdlocError: the two models of a pair scored different test images (or in another
            order), or the dicts disagree on method/class, or a method x class appears twice.
    """
    boot = Bootstrap(n_boot=n_boot, seed=seed, alpha=alpha,
                     ci_fn=ci_fn or (paired_gap_ci if n_boot > 0 else None), stratify=stratify,
                     check_estimate=ci_fn is None)
    rows: list[dict] = []
    seen: set[tuple[str, str]] = set()
    for pair in pairs:
        rows += _pair_rows(pair, seen, boot)
    df = pd.DataFrame(rows, columns=COLUMNS)
    if macro and not df.empty:
        df = pd.concat([df, pd.DataFrame(_macro_rows(df), columns=COLUMNS)], ignore_index=True)
    return _sort(df)


def _check_pair(pcm: Mapping, glm: Mapping, seen: set[tuple[str, str]]) -> tuple[str, str]:
    """``(method, class)`` of a pair's metrics, checked to be one pair seen once."""
    method, cls = str(pcm.get("method")), str(pcm.get("class"))
    what = f"gap {method}/{cls}"
    if (str(glm.get("method")), str(glm.get("class"))) != (method, cls):
        raise AdlocError(
            f"{what}: the global metrics are for {glm.get('method')}/{glm.get('class')}; "
            "pair each class's per-class metrics with the global model's metrics of that class"
        )
    if pcm.get("scope") == "global" or glm.get("scope") == "per_class":
        raise AdlocError(f"{what}: scopes swapped (per_class first, then global)")
    if (method, cls) in seen:
        raise AdlocError(f"{what}: appears twice in the pairs")
    seen.add((method, cls))
    return method, cls


def _pair_rows(pair: Any, seen: set[tuple[str, str]], boot: Bootstrap) -> list[dict]:
    """One pair's rows, one per metric: point values, the paired interval, the routed columns."""
    pcm, glm, pcs, gls = as_pair(pair)
    method, cls = _check_pair(pcm, glm, seen)
    what = f"gap {method}/{cls}"
    check_same_test_images(pcs, gls, what)
    labels = np.asarray(pcs["test_labels"]).astype(int)
    absm = scope_metrics(pair, "unified_abs_metrics", method, cls)
    rtm = scope_metrics(pair, "routed_metrics", method, cls)
    rows = []
    for metric, (section, key) in GAP_METRICS.items():
        a, b = _value(pcm, section, key), _value(glm, section, key)
        c = np.nan if absm is None else (
            _value(absm, section, key) if metric in THRESHOLD_METRICS else b)
        row = {
            "method": method, "class": cls, "metric": metric, "per_class": a, "global": b,
            "gap": a - b, "gap_low": np.nan, "gap_high": np.nan, "ci_excludes_zero": pd.NA,
            "n_boot": 0, "n_valid": 0, "n_test": int(labels.size), "unified_abs": c,
            "gap_abs": a - c, "n_classes": int(np.isfinite(a - b)),
        }
        if metric in CI_METRICS and boot.n_boot > 0:
            row.update(_paired_interval(metric, labels, pcs, gls, a, b, boot, what))
        row.update(routed_gap_values(metric, row, pcm, rtm, pcs, gls, boot.n_boot, boot.seed,
                                     boot.alpha, ci_fn=None if boot.check_estimate else boot.ci_fn,
                                     what=what))
        rows.append(row)
    return rows


def _paired_interval(metric: str, labels: np.ndarray, pcs: Mapping, gls: Mapping, a: float,
                     b: float, boot: Bootstrap, what: str) -> dict:
    """The paired bootstrap interval of one threshold-free metric's gap (same resampled images
    for both models); the bootstrap's own point gap must match the metrics files' ``a - b``."""
    extra = {"stratify": True} if boot.stratify else {}
    res = boot.ci_fn(
        labels, np.asarray(pcs["test_scores"], dtype=np.float64),
        np.asarray(gls["test_scores"], dtype=np.float64),
        metric=METRIC_FNS[metric], n_boot=boot.n_boot, seed=boot.seed, alpha=boot.alpha, **extra,
    )
    lo, hi = float(res.get("low", np.nan)), float(res.get("high", np.nan))
    est = float(res.get("estimate", np.nan))
    if boot.check_estimate and np.isfinite([est, a, b]).all() and abs(est - (a - b)) > 1e-6:
        raise AdlocError(
            f"{what}: the {metric} gap from the score files ({est:.6f}) differs from "
            f"the metrics files ({a - b:.6f}); the metrics are stale. Delete "
            "results/metrics for this class and rerun the evaluate rule."
        )
    return dict(
        gap_low=lo, gap_high=hi, n_boot=int(res.get("n_boot", boot.n_boot)),
        n_valid=int(res.get("n_valid", boot.n_boot)),
        ci_excludes_zero=(bool(lo > 0 or hi < 0) if np.isfinite([lo, hi]).all() else pd.NA),
    )


def _macro_rows(df: pd.DataFrame) -> list[dict]:
    """One ``macro`` row per method and metric: means over the classes where defined."""
    extra = []
    for (method, metric), g in df.groupby(["method", "metric"], sort=True):
        mean = lambda s: float(s.mean()) if s.notna().any() else np.nan  # noqa: E731
        extra.append({
            "method": method, "class": "macro", "metric": metric,
            "per_class": mean(g["per_class"]), "global": mean(g["global"]),
            "gap": mean(g["gap"]), "gap_low": np.nan, "gap_high": np.nan,
            "ci_excludes_zero": pd.NA, "n_boot": 0, "n_valid": 0,
            "n_test": int(g["n_test"].sum()), "unified_abs": mean(g["unified_abs"]),
            "gap_abs": mean(g["gap_abs"]), "n_classes": int(g["gap"].notna().sum()),
            "routed": mean(g["routed"]), "gap_routed": mean(g["gap_routed"]),
            "gap_routed_low": np.nan, "gap_routed_high": np.nan,
        })
    return extra


def _sort(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty:
        return df.reset_index(drop=True)
    mk = order_key(df["method"], tuple(method_names()))
    metric_order = {m: i for i, m in enumerate(GAP_METRICS)}
    key = pd.DataFrame({
        "m": df["method"].map(mk),
        "macro": (df["class"] == "macro").astype(int),
        "c": df["class"].astype(str),
        "k": df["metric"].map(metric_order),
    })
    order = key.sort_values(["m", "macro", "c", "k"], kind="mergesort").index
    out = df.loc[order].reset_index(drop=True)
    out["ci_excludes_zero"] = out["ci_excludes_zero"].astype("boolean")
    for c in ("method", "class", "metric"):
        out[c] = text_column(out[c])
    for c in ("n_boot", "n_valid", "n_test"):
        out[c] = out[c].astype(int)
    return out


def write_gap_table(path, df: pd.DataFrame) -> None:
    write_csv(path, df)


def read_gap_table(path) -> pd.DataFrame:
    """Read a table written by :func:`write_gap_table` back with the same dtypes."""
    df = read_table_csv(path, "gap table", columns=COLUMNS, dtype={"class": str})
    for c in ("method", "class", "metric"):
        df[c] = text_column(df[c])
    for c in ("per_class", "global", "gap", "gap_low", "gap_high", "unified_abs", "gap_abs",
              *ROUTED_COLUMNS):
        df[c] = df[c].astype(float)
    for c in ("n_boot", "n_valid", "n_test", "n_classes"):
        df[c] = df[c].astype(int)
    df["ci_excludes_zero"] = pd.array(
        [pd.NA if pd.isna(v) else (str(v).strip().lower() == "true") for v in
         df["ci_excludes_zero"]], dtype="boolean")
    return df[COLUMNS]


def significant_gaps(df: pd.DataFrame) -> pd.DataFrame:
    """Rows whose bootstrap interval excludes 0."""
    mask = df["ci_excludes_zero"].fillna(False).astype(bool)
    return df[mask].reset_index(drop=True)


def wide_gap_table(df: pd.DataFrame, decimals: int = 4) -> pd.DataFrame:
    """Readable view: one row per method x class, one column per metric with ``gap [lo, hi]``;
    a macro value over fewer than all classes says over how many (``(k/n classes)``)."""
    from .figures import method_label as ml

    n_of = df[df["class"] != "macro"].groupby("method")["class"].nunique().to_dict()

    def cell(r):
        if pd.isna(r["gap"]):
            return "N/A"
        s = f"{r['gap']:+.{decimals}f}"
        if r["class"] == "macro" and r["n_classes"] < n_of.get(r["method"], 0):
            s += f" ({r['n_classes']}/{n_of[r['method']]} classes)"
        if pd.notna(r["gap_low"]) and pd.notna(r["gap_high"]):
            s += f" [{r['gap_low']:+.{decimals}f}, {r['gap_high']:+.{decimals}f}]"
            if bool(r["ci_excludes_zero"]) is True:
                s += " *"
        return s

    records: dict[tuple[str, str], dict[str, str]] = {}
    for _, r in df.iterrows():
        rec = records.setdefault((r["method"], r["class"]), {"method": ml(r["method"]),
                                                             "class": r["class"]})
        rec[METRIC_LABELS.get(r["metric"], r["metric"])] = cell(r)
        if r["metric"] in THRESHOLD_METRICS and pd.notna(r.get("gap_abs", np.nan)):
            rec[ABS_LABELS[r["metric"]]] = f"{r['gap_abs']:+.{decimals}f}"
        if r["metric"] in THRESHOLD_METRICS and pd.notna(r.get("gap_routed", np.nan)):
            s = f"{r['gap_routed']:+.{decimals}f}"
            lo, hi = r.get("gap_routed_low", np.nan), r.get("gap_routed_high", np.nan)
            if pd.notna(lo) and pd.notna(hi):
                s += f" [{lo:+.{decimals}f}, {hi:+.{decimals}f}]" + (" *" if lo > 0 or hi < 0 else "")
            rec[ROUTED_LABELS[r["metric"]]] = s
    cols = ["method", "class"] + [METRIC_LABELS[m] for m in GAP_METRICS]
    for column, names in VERSUS_LABELS.items():
        if column in df.columns and df[column].notna().any():
            cols += [names[m] for m in THRESHOLD_METRICS]
    return pd.DataFrame(list(records.values())).reindex(columns=cols).fillna("N/A")
