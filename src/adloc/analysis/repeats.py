"""Across repeats: every repeat's rows, and mean, sd and a 95% interval across repeats.

A repeat is one split seed x one model seed (``results/<run>/s<split>-m<model>/``). Per method x
scope x class, every metric's across-repeat mean, sample standard deviation and 95% Student-t
interval (``mean ± t_{0.975, n-1} · sd / √n``, :func:`scipy.stats.t`); per method x class x
metric, the same for each per-class − unified gap, plus a paired t-test across repeats
(:func:`scipy.stats.ttest_rel`: the per-class and the unified value of one repeat share its
split and seed, so they form a pair). With one repeat, or a metric defined in fewer than two
repeats, sd, interval and test are N/A (NaN), never 0.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import AdlocError
from ..io import write_csv
from .figures import method_label, scope_label
from .gap import ABS_LABELS, GAP_METRICS, METRIC_LABELS, THRESHOLD_METRICS
from .tables import RATE_COLUMNS, read_table_csv, sort_rows

#: Metrics summarised across repeats (the metrics table's rate columns and the threshold).
ACROSS_METRICS = ["threshold"] + RATE_COLUMNS
#: Gap comparisons: the unified scope, its value column and its gap column in the gap table.
VERSUS = {"global": ("global", "gap"), "unified_abs": ("unified_abs", "gap_abs")}
#: Level of the paired test and of the intervals.
ALPHA = 0.05

METRICS_COLUMNS = ["method", "scope", "class", "metric", "n_repeats", "mean", "sd", "ci_low",
                   "ci_high"]
GAP_COLUMNS = ["method", "class", "metric", "versus", "n_repeats", "per_class", "unified",
               "mean", "sd", "ci_low", "ci_high", "t_statistic", "p_value", "holds"]

TEST_NAME = "paired t-test across repeats (scipy.stats.ttest_rel)"
TEST_SENTENCE = (
    "Paired t-test across repeats (scipy.stats.ttest_rel): in each repeat the per-class and the "
    "unified model are measured on the same split with the same seed, so their two values form a "
    "pair, and the test asks whether the mean of the per-repeat differences is zero; a gap "
    f"*holds* when p < {ALPHA:g}."
)


def stack_repeats(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Every repeat's rows in one table, ``repeat`` as the first column (repeats in the given
    order, each table's row order kept)."""
    if not tables:
        raise AdlocError("stack_repeats: no repeat tables")
    parts = []
    for name, df in tables.items():
        d = df.copy()
        d.insert(0, "repeat", str(name))
        parts.append(d)
    return pd.concat(parts, ignore_index=True)


def interval(values: Sequence[float]) -> dict:
    """``n`` (finite values), ``mean``, ``sd`` (ddof 1) and the 95% t-interval; NaN where
    undefined (no value: everything; one value: sd and interval)."""
    from scipy import stats

    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    n = int(v.size)
    out = {"n_repeats": n, "mean": float(v.mean()) if n else np.nan, "sd": np.nan,
           "ci_low": np.nan, "ci_high": np.nan}
    if n >= 2:
        sd = float(v.std(ddof=1))
        half = float(stats.t.ppf(1 - ALPHA / 2, n - 1)) * sd / np.sqrt(n)
        out.update(sd=sd, ci_low=out["mean"] - half, ci_high=out["mean"] + half)
    return out


def metrics_across_repeats(stacked: pd.DataFrame) -> pd.DataFrame:
    """Long table: per method x scope x class (macro rows included) x metric of
    :data:`ACROSS_METRICS`, the across-repeat :func:`interval`. Columns :data:`METRICS_COLUMNS`."""
    rows = []
    order = sort_rows(stacked.drop_duplicates(["method", "scope", "class"]))
    for _, key in order.iterrows():
        g = stacked[(stacked["method"] == key["method"]) & (stacked["scope"] == key["scope"])
                    & (stacked["class"] == key["class"])]
        for metric in ACROSS_METRICS:
            rows.append({"method": key["method"], "scope": key["scope"], "class": key["class"],
                         "metric": metric, **interval(g[metric].astype(float))})
    return pd.DataFrame(rows, columns=METRICS_COLUMNS)


def _paired_test(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    from scipy import stats

    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    d = a - b
    if d.size < 2 or np.all(d == d[0]):  # undefined: too few pairs or no spread at all
        return np.nan, np.nan
    res = stats.ttest_rel(a, b)
    return float(res.statistic), float(res.pvalue)


def gap_across_repeats(stacked_gap: pd.DataFrame) -> pd.DataFrame:
    """Per method x class (macro included) x metric x unified scope: the across-repeat
    :func:`interval` of the per-class − unified gap, the mean of both values, and the paired
    t-test; ``holds`` is True when p < :data:`ALPHA`, False when not, NA when untestable.
    Absolute-unified rows only for the threshold metrics (the others equal model-unified)."""
    rows = []
    keys = stacked_gap.drop_duplicates(["method", "class", "metric"])[["method", "class", "metric"]]
    for _, k in keys.iterrows():
        g = stacked_gap[(stacked_gap["method"] == k["method"]) & (stacked_gap["class"] == k["class"])
                        & (stacked_gap["metric"] == k["metric"])]
        for versus, (col, gap_col) in VERSUS.items():
            if versus == "unified_abs" and (k["metric"] not in THRESHOLD_METRICS
                                            or col not in g or g[col].isna().all()):
                continue
            pc, other = g["per_class"].to_numpy(float), g[col].to_numpy(float)
            t, p = _paired_test(pc, other)
            stats_ = interval(g[gap_col].astype(float))
            rows.append({
                "method": k["method"], "class": k["class"], "metric": k["metric"],
                "versus": versus, **stats_,
                "per_class": float(np.nanmean(pc)) if np.isfinite(pc).any() else np.nan,
                "unified": float(np.nanmean(other)) if np.isfinite(other).any() else np.nan,
                "t_statistic": t, "p_value": p, "holds": pd.NA if np.isnan(p) else bool(p < ALPHA),
            })
    out = pd.DataFrame(rows, columns=GAP_COLUMNS)
    out["holds"] = out["holds"].astype("boolean")
    return out


def write_table(path, df: pd.DataFrame) -> None:
    write_csv(path, df)


def gap_plot_frame(across: pd.DataFrame, first_repeat_gap: pd.DataFrame) -> pd.DataFrame:
    """The table :func:`adloc.analysis.gap.plot_gap` draws: across-repeat mean gaps with their
    t-interval; with one repeat, that repeat's gaps and paired-bootstrap intervals."""
    n = int(across["n_repeats"].max()) if len(across) else 0
    if n < 2:
        return first_repeat_gap
    rows = []
    for (method, cls, metric), g in across.groupby(["method", "class", "metric"], sort=False):
        gl = g[g["versus"] == "global"].iloc[0]
        ab = g[g["versus"] == "unified_abs"]
        rows.append({"method": method, "class": cls, "metric": metric, "gap": gl["mean"],
                     "gap_low": gl["ci_low"], "gap_high": gl["ci_high"],
                     "gap_abs": ab["mean"].iloc[0] if len(ab) else np.nan})
    return pd.DataFrame(rows)


def _fmt(x, d: int = 4, sign: bool = False) -> str:
    if x is None or pd.isna(x):
        return "N/A"
    return f"{float(x):+.{d}f}" if sign else f"{float(x):.{d}f}"


def _cell(r, sign: bool = False) -> str:
    s = _fmt(r["mean"], sign=sign)
    if s == "N/A":
        return s
    return s + f" ± {_fmt(r['sd'])} [{_fmt(r['ci_low'], sign=sign)}, {_fmt(r['ci_high'], sign=sign)}]"


def summary_lines(metrics_across: pd.DataFrame, gap_across: pd.DataFrame,
                  repeats: Sequence[str]) -> list[str]:
    """The summary's "Across repeats" section (markdown lines)."""
    n = len(repeats)
    lines = ["### Across repeats", ""]
    lines.append(f"{n} repeat{'s' if n != 1 else ''} ({', '.join(repeats)}; s = split seed, m = "
                 "model seed). Cells: mean ± sd [95% t-interval] across repeats; every repeat's "
                 "rows are in tables/metrics.csv and tables/gap.csv, every metric in "
                 "tables/metrics_across_repeats.csv and tables/gap_across_repeats.csv.")
    if n < 2:
        lines.append("With one repeat the spread, the intervals and the paired test are N/A; "
                     "presets/repeats.yaml runs 5 split seeds x 3 model seeds.")
    lines.append("")
    macro = metrics_across[metrics_across["class"] == "macro"]
    shown = ["auroc", "f1", "accuracy", "pixel_auroc", "au_pro"]
    recs = []
    for (method, scope), g in macro.groupby(["method", "scope"], sort=False):
        g = g.set_index("metric")
        recs.append({"method": method_label(method), "model": scope_label(scope),
                     **{METRIC_LABELS.get(m, m): _cell(g.loc[m]) for m in shown if m in g.index}})
    if recs:
        lines += ["Macro averages over classes:", "",
                  pd.DataFrame(recs).to_markdown(index=False, disable_numparse=True), ""]
    lines += [TEST_SENTENCE, ""]
    g = gap_across[gap_across["class"] != "macro"]
    held = g[g["holds"].fillna(False).astype(bool)]
    testable = int(g["p_value"].notna().sum())
    if testable == 0:
        lines += ["No gap can be tested (fewer than two repeats with a spread).", ""]
    else:
        parts = [f"{method_label(r['method'])} {r['class']} "
                 f"{ABS_LABELS[r['metric']] if r['versus'] == 'unified_abs' else METRIC_LABELS.get(r['metric'], r['metric'])} "
                 f"{_fmt(r['mean'], sign=True)} [{_fmt(r['ci_low'], sign=True)}, "
                 f"{_fmt(r['ci_high'], sign=True)}], p = {r['p_value']:.3g}"
                 for _, r in held.iterrows()]
        lines += [f"{len(held)} of {testable} testable per-class gaps hold across repeats"
                  + (": " + "; ".join(parts) if parts else "") + ". Positive favours the "
                  "per-class model; \"vs one threshold\" compares with the absolute-unified "
                  "scope.", ""]
    return lines


__all__ = ["ACROSS_METRICS", "TEST_NAME", "TEST_SENTENCE", "stack_repeats", "interval",
           "metrics_across_repeats", "gap_across_repeats", "gap_plot_frame", "summary_lines",
           "write_table", "read_metrics_across", "read_gap_across"]


def read_metrics_across(path) -> pd.DataFrame:
    """Read a table written from :func:`metrics_across_repeats` back (class names as text)."""
    df = read_table_csv(path, "across-repeat metrics table", dtype={"class": str})
    missing = [c for c in METRICS_COLUMNS if c not in df.columns]
    if missing:
        raise AdlocError(f"across-repeat metrics table {path} lacks columns {missing}; delete it and rerun")
    return df[METRICS_COLUMNS]


def read_gap_across(path) -> pd.DataFrame:
    """Read a table written from :func:`gap_across_repeats` back (``holds`` as nullable bool)."""
    df = read_table_csv(path, "across-repeat gap table", dtype={"class": str})
    missing = [c for c in GAP_COLUMNS if c not in df.columns]
    if missing:
        raise AdlocError(f"across-repeat gap table {path} lacks columns {missing}; delete it and rerun")
    df["holds"] = pd.array([pd.NA if pd.isna(v) else str(v).strip().lower() == "true"
                            for v in df["holds"]], dtype="boolean")
    return df[GAP_COLUMNS]


def read_repeat_means(path) -> pd.DataFrame:
    """A run's ``tables/metrics.csv`` as one row per method x scope x class: with several
    repeats, numeric columns are averaged over repeats (NaN-aware) and text columns keep the
    first repeat's value; with one repeat, that repeat's table. For comparing runs."""
    from .tables import COLUMNS, read_metrics_table

    df = read_metrics_table(path)
    reps = read_table_csv(path, "metrics table", usecols=lambda c: c == "repeat")
    if "repeat" not in reps.columns or reps["repeat"].nunique() <= 1:
        return df
    keys = ["method", "scope", "class"]
    numeric = [c for c in COLUMNS if c not in keys and pd.api.types.is_numeric_dtype(df[c])]
    text = [c for c in COLUMNS if c not in keys and c not in numeric]
    g = df.groupby(keys, sort=False)
    out = g[numeric].mean().join(g[text].first()).reset_index()
    return sort_rows(out[COLUMNS])
