"""Across repeats: every repeat's rows, and mean, sd and a 95% interval across repeats.

A repeat is one split seed x one model seed (``results/<run>/s<split>-m<model>/``). Repeats that
share a split seed share their train/val/test images, so they are not independent: the unit of
the statistics is the **split seed** (its repeats' values averaged over model seeds first) when
there are two or more split seeds, else the model seed (:func:`units`). Counting every repeat as
independent would shrink the intervals by up to sqrt(model seeds) without any new evidence.

Per method x scope x class, every metric's mean, sample standard deviation and 95% Student-t
interval over the units (``mean ± t_{0.975, n-1} · sd / √n``, :func:`scipy.stats.t`); per method
x class x metric, the same for each per-class − unified gap, plus a paired t-test over the units
(:func:`scipy.stats.ttest_rel`: the per-class and the unified value of one unit share its images
and seeds, so they form a pair), with Benjamini-Hochberg adjusted p-values over every tested gap
of the table (:func:`scipy.stats.false_discovery_control`), since dozens of gaps are tested at
once. With one unit, or a metric defined in fewer than two units, sd, interval and test are N/A
(NaN), never 0.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import AdlocError
from ..io import write_csv
from .figures import method_label, scope_label
from .gap import ABS_LABELS, METRIC_LABELS, THRESHOLD_METRICS
from .routing import ROUTED_LABELS
from .tables import RATE_COLUMNS, read_table_csv, sort_rows

#: Metrics summarised across repeats (the metrics table's rate columns and the threshold).
ACROSS_METRICS = ["threshold"] + RATE_COLUMNS
#: Gap comparisons: the unified scope, its value column and its gap column in the gap table.
VERSUS = {"global": ("global", "gap"), "unified_abs": ("unified_abs", "gap_abs"),
          "routed": ("routed", "gap_routed")}
#: Level of the paired test and of the intervals.
ALPHA = 0.05

METRICS_COLUMNS = ["method", "scope", "class", "metric", "n_repeats", "unit", "n_units", "mean",
                   "sd", "ci_low", "ci_high"]
GAP_COLUMNS = ["method", "class", "metric", "versus", "n_repeats", "unit", "n_units", "per_class",
               "unified", "mean", "sd", "ci_low", "ci_high", "t_statistic", "p_value",
               "p_adjusted", "holds"]

TEST_SENTENCE = (
    "Paired t-test across repeats (scipy.stats.ttest_rel): in each split seed (its model seeds "
    "averaged; with one split seed, in each model seed) the per-class and the unified model are "
    "measured on the same images, so their two values form a pair, and the test asks whether "
    "the mean of the paired differences is zero; a gap *holds* when its Benjamini-Hochberg "
    f"adjusted p (over every gap tested) is below {ALPHA:g}."
)


def units(repeats: Sequence[str]) -> tuple[str, dict[str, str]]:
    """The statistical unit of these repeats and each repeat's unit label: ``"split seed"``
    (label ``s<seed>``) when two or more split seeds occur, else ``"model seed"`` (``m<seed>``;
    also for names that are not ``s<split>-m<model>``: each repeat its own unit)."""
    from ..config import parse_repeat
    from ..errors import ConfigError

    try:
        seeds = {r: parse_repeat(r) for r in repeats}
    except ConfigError:
        return "repeat", {r: str(r) for r in repeats}
    if len({s for s, _ in seeds.values()}) >= 2:
        return "split seed", {r: f"s{s}" for r, (s, _) in seeds.items()}
    return "model seed", {r: f"m{m}" for r, (_, m) in seeds.items()}


def unit_means(g: pd.DataFrame, column: str, label: Mapping[str, str]) -> pd.Series:
    """``column`` of the rows ``g`` (one per repeat) averaged within each unit (NaN-aware: a
    unit where the value is undefined in every repeat stays NaN), in first-seen unit order."""
    v = pd.to_numeric(g[column], errors="coerce").astype(float)
    keys = g["repeat"].map(label)
    return v.groupby(keys.to_numpy(), sort=False).mean()


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


def _stats(g: pd.DataFrame, column: str, unit: str, label: Mapping[str, str]) -> dict:
    """:func:`interval` over the unit means of ``column``, with the repeat and unit counts."""
    st = interval(unit_means(g, column, label))
    n_rep = int(np.isfinite(pd.to_numeric(g[column], errors="coerce").astype(float)).sum())
    return {**st, "n_units": st.pop("n_repeats"), "n_repeats": n_rep, "unit": unit}


def metrics_across_repeats(stacked: pd.DataFrame) -> pd.DataFrame:
    """Long table: per method x scope x class (macro rows included) x metric of
    :data:`ACROSS_METRICS`, the :func:`interval` over the units (:func:`units`). Columns
    :data:`METRICS_COLUMNS`."""
    unit, label = units(list(dict.fromkeys(stacked["repeat"])))
    rows = []
    order = sort_rows(stacked.drop_duplicates(["method", "scope", "class"]))
    for _, key in order.iterrows():
        g = stacked[(stacked["method"] == key["method"]) & (stacked["scope"] == key["scope"])
                    & (stacked["class"] == key["class"])]
        for metric in ACROSS_METRICS:
            rows.append({"method": key["method"], "scope": key["scope"], "class": key["class"],
                         "metric": metric, **_stats(g, metric, unit, label)})
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
    """Per method x class (macro included) x metric x unified scope: the :func:`interval` over
    the units of the per-class − unified gap, the mean of both values, and the paired t-test on
    the unit means; ``p_adjusted``: Benjamini-Hochberg over every tested row; ``holds`` is True
    when p_adjusted < :data:`ALPHA`, False when not, NA when untestable. Absolute-unified and
    routed rows only for the threshold metrics (the others equal model-unified)."""
    from scipy import stats

    unit, label = units(list(dict.fromkeys(stacked_gap["repeat"])))
    rows = []
    keys = stacked_gap.drop_duplicates(["method", "class", "metric"])[["method", "class", "metric"]]
    for _, k in keys.iterrows():
        g = stacked_gap[(stacked_gap["method"] == k["method"]) & (stacked_gap["class"] == k["class"])
                        & (stacked_gap["metric"] == k["metric"])]
        for versus, (col, gap_col) in VERSUS.items():
            if versus != "global" and (k["metric"] not in THRESHOLD_METRICS
                                       or col not in g or g[col].isna().all()):
                continue
            pc = unit_means(g, "per_class", label).to_numpy(float)
            other = unit_means(g, col, label).to_numpy(float)
            t, p = _paired_test(pc, other)
            rows.append({
                "method": k["method"], "class": k["class"], "metric": k["metric"],
                "versus": versus, **_stats(g, gap_col, unit, label),
                "per_class": float(np.nanmean(pc)) if np.isfinite(pc).any() else np.nan,
                "unified": float(np.nanmean(other)) if np.isfinite(other).any() else np.nan,
                "t_statistic": t, "p_value": p,
            })
    out = pd.DataFrame(rows, columns=[c for c in GAP_COLUMNS if c not in ("p_adjusted", "holds")])
    tested = out["p_value"].notna().to_numpy()
    adj = np.full(len(out), np.nan)
    if tested.any():
        adj[tested] = stats.false_discovery_control(out.loc[tested, "p_value"].to_numpy(float), method="bh")
    out["p_adjusted"] = adj
    out["holds"] = pd.array([pd.NA if np.isnan(q) else bool(q < ALPHA) for q in adj], dtype="boolean")
    return out[GAP_COLUMNS]


def write_table(path, df: pd.DataFrame) -> None:
    write_csv(path, df)


def gap_plot_frame(across: pd.DataFrame, first_repeat_gap: pd.DataFrame) -> pd.DataFrame:
    """The table :func:`adloc.analysis.gap_panels.plot_gap` draws: across-repeat mean gaps with their
    t-interval; with fewer than two units (:func:`units`), the first repeat's gaps and
    paired-bootstrap intervals."""
    n = int(across["n_units"].max()) if len(across) else 0
    if n < 2:
        return first_repeat_gap
    rows = []
    for (method, cls, metric), g in across.groupby(["method", "class", "metric"], sort=False):
        gl = g[g["versus"] == "global"].iloc[0]
        row = {"method": method, "class": cls, "metric": metric, "gap": gl["mean"],
               "gap_low": gl["ci_low"], "gap_high": gl["ci_high"]}
        for versus, column in (("unified_abs", "gap_abs"), ("routed", "gap_routed")):
            o = g[g["versus"] == versus]
            for suffix, key in (("", "mean"), ("_low", "ci_low"), ("_high", "ci_high")):
                row[column + suffix] = o[key].iloc[0] if len(o) else np.nan
        rows.append(row)
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
    unit, label = units(list(repeats))
    n_units = len(set(label.values()))
    lines = ["### Across repeats", ""]
    if n_units < 2:  # nothing to say across one repeat beyond how to get more
        return lines + [f"One repeat ({', '.join(repeats)}): no across-repeat spread, interval or "
                        "paired test. presets/repeats.yaml runs 5 split seeds x 3 model seeds "
                        "(features extracted once, reused by every repeat).", ""]
    over = (f"over the {n_units} {unit}s" + (" (each split seed's model seeds averaged first: "
            "repeats sharing a split are not independent)" if unit == "split seed" and n_units < n else ""))
    lines.append(f"{n} repeat{'s' if n != 1 else ''} ({', '.join(repeats)}; s = split seed, m = "
                 f"model seed). Cells: mean ± sd [95% t-interval] {over}; every repeat's "
                 "rows are in tables/metrics.csv and tables/gap.csv, every metric in "
                 "tables/metrics_across_repeats.csv and tables/gap_across_repeats.csv.")
    if unit == "model seed" and n_units >= 2:
        lines.append("One split seed: the spread is the model seeds' only, not the split's; "
                     "presets/repeats.yaml also varies the split.")
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
    # the adjustment ran over every tested row, macro rows included
    if testable == 0:
        lines += ["No gap can be tested (fewer than two repeats with a spread).", ""]
    else:
        lines += [f"{len(held)} of {testable} testable per-class gaps hold across repeats"
                  + (" (positive favours the per-class model; \"vs one threshold\" compares with "
                     "the absolute-unified scope, \"vs routed\" with the routed one):"
                     if len(held) else "."), ""]
        if len(held):
            table = pd.DataFrame([{
                "method": method_label(r["method"]), "class": r["class"],
                "metric": {"unified_abs": ABS_LABELS, "routed": ROUTED_LABELS}.get(
                    r["versus"], METRIC_LABELS).get(r["metric"], r["metric"]),
                "gap [95% t-interval]": f"{_fmt(r['mean'], sign=True)} [{_fmt(r['ci_low'], sign=True)}, "
                                        f"{_fmt(r['ci_high'], sign=True)}]",
                "p": f"{r['p_value']:.3g}", "adjusted p": f"{r['p_adjusted']:.3g}",
            } for _, r in held.iterrows()])
            lines += [table.to_markdown(index=False, disable_numparse=True), ""]
    return lines


__all__ = ["ACROSS_METRICS", "TEST_SENTENCE", "stack_repeats", "interval", "units",
           "unit_means",
           "metrics_across_repeats", "gap_across_repeats", "gap_plot_frame", "summary_lines",
           "write_table", "read_metrics_across", "read_gap_across"]


def read_metrics_across(path) -> pd.DataFrame:
    """Read a table written from :func:`metrics_across_repeats` back (class names as text)."""
    df = read_table_csv(path, "across-repeat metrics table", columns=METRICS_COLUMNS, dtype={"class": str})
    return df[METRICS_COLUMNS]


def read_gap_across(path) -> pd.DataFrame:
    """Read a table written from :func:`gap_across_repeats` back (``holds`` as nullable bool)."""
    df = read_table_csv(path, "across-repeat gap table", columns=GAP_COLUMNS, dtype={"class": str})
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
