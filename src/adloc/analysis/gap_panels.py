"""The gap figures (:func:`plot_gap`) from a gap table (:mod:`adloc.analysis.gap`).

Up to about six classes :func:`plot_gap` groups one bar per class inside each metric, one panel
per method; beyond that (MVTec AD's 15) :func:`plot_gap_by_class` draws a grid with one row per
metric and one column per method, the classes along the x axis (named under the bottom row, so
no colour legend is needed), the mean over classes as a hatched last bar.
"""

from __future__ import annotations

import textwrap
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import AdlocError
from .figures import class_colors, method_label, new_figure, style
from .gap import GAP_METRICS, METRIC_LABELS, THRESHOLD_METRICS, TITLE, VERSUS_LABELS
from .tables import float_column

#: what the error bars are, by default (the x-axis label of the bottom row names it)
ERRORBAR_NOTE = "paired bootstrap 95% interval: AUROC, AUPRC, and F1 / accuracy vs routed"


def _panel(ax, d: pd.DataFrame, slots: Sequence[str], colors: dict, column: str,
           pts: pd.DataFrame | None = None) -> None:
    """Bars of one method and metric: one per slot (class, then "macro" if present), the value
    in ``column`` ("gap"; "gap_abs": per-class minus absolute-unified, whose interval exists only
    across repeats; "gap_routed": per-class minus routed); ``pts``:
    every repeat's rows of that method and metric, drawn as dots (the across-repeat spread)."""
    d = d.set_index("class").reindex(list(slots))
    x = np.arange(len(slots), dtype=float)
    y = d[column].to_numpy(float)
    face = [("0.85" if c == "macro" else colors[c]) for c in slots]
    hatch = ["///" if c == "macro" else None for c in slots]
    for xi, yi, fc, h in zip(x, y, face, hatch):
        ax.bar(xi, np.nan_to_num(yi), width=0.8, color=fc, edgecolor="black", linewidth=0.4,
               hatch=h)
    # "gap_low"/"gap_high", "gap_routed_low"/..., or "gap_abs_low"/"gap_abs_high" (the
    # absolute-unified interval, across repeats only)
    lo, hi = float_column(d, f"{column}_low"), float_column(d, f"{column}_high")
    has = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(y)
    if has.any():
        ax.errorbar(x[has], y[has], yerr=[y[has] - lo[has], hi[has] - y[has]], fmt="none",
                    ecolor="black", elinewidth=0.9, capsize=2)
    if pts is not None:
        for xi, cls in zip(x, slots):
            v = pts.loc[pts["class"] == cls, column].to_numpy(float)
            v = v[np.isfinite(v)]
            ax.scatter(np.full(v.size, xi), v, s=7, color="black", zorder=3, linewidths=0)
    for xi, yi in zip(x, y):
        if not np.isfinite(yi):
            ax.annotate("N/A", (xi, 0), xytext=(0, 3), textcoords="offset points", ha="center",
                        va="bottom", fontsize=7, rotation=90, color="0.4")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.grid(axis="y", color="0.9", linewidth=0.6)
    ax.set_axisbelow(True)


def plot_gap_by_class(df: pd.DataFrame, groups: Sequence[tuple[str, str]],
                      labels: Sequence[str], title: str, points: pd.DataFrame | None = None,
                      errorbar_note: str = ERRORBAR_NOTE):
    """Rows = ``groups`` ((metric, column) pairs as :func:`plot_gap` builds
    them, named by ``labels``), columns = methods, x = classes (+ "mean" when the table has
    macro rows); every panel of a row shares its y axis, so methods compare directly.
    ``points``: every repeat's gap table, drawn as dots (the across-repeat spread)."""
    methods = list(dict.fromkeys(df["method"]))
    classes = sorted(c for c in df["class"].unique() if c != "macro")
    colors = class_colors(classes)
    slots = classes + (["macro"] if (df["class"] == "macro").any() else [])
    names = [("mean over classes" if c == "macro" else c) for c in slots]
    with style():
        width = max(6.0, len(methods) * (0.3 * len(slots) + 1.6) + 0.6)
        # rows 1.55 in high, lower beyond 8 rows (vs routed), so the figure stays within 15 in
        fig = new_figure(width, min(1.55, 13.0 / max(1, len(groups))) * len(groups) + 1.9)
        axes = fig.subplots(len(groups), len(methods), squeeze=False, sharex=True, sharey="row")
        for r, ((metric, column), label) in enumerate(zip(groups, labels)):
            other = {"gap": "global", "gap_routed": "routed"}.get(column, "unified")
            for c, method in enumerate(methods):
                ax = axes[r, c]
                d = df[(df["method"] == method) & (df["metric"] == metric)]
                pts = None
                if points is not None:
                    pts = points[(points["method"] == method) & (points["metric"] == metric)]
                _panel(ax, d, slots, colors, column, pts)
                if r == 0:
                    ax.set_title(method_label(method))
                if c == 0:
                    # wrapped: a rotated label longer than its row would run into the next
                    ax.set_ylabel(f"{textwrap.fill(label, 16)}\nper-class − {other}", fontsize=8.5)
        for ax in axes[-1]:
            ax.set_xticks(np.arange(len(slots)), names, rotation=60, ha="right", fontsize=8)
        fig.supxlabel(f"class (error bars: {errorbar_note}"
                      + ("; dots: each repeat" if points is not None else "") + ")", fontsize=9)
        fig.suptitle(textwrap.fill(title, width=int(width * 10)))  # ~10 title characters per inch
    return fig


#: up to this many classes plot_gap groups the classes' bars per metric; beyond, one panel per
#: metric and method with the classes along x (:func:`adloc.analysis.gap_panels.plot_gap_by_class`)
GROUPED_MAX_CLASSES = 6


def plot_gap(df: pd.DataFrame, title: str = TITLE, points: pd.DataFrame | None = None,
             errorbar_note: str = ERRORBAR_NOTE):
    """One panel per method: grouped bars (one bar per class) for each metric, error bars where
    available, a hatched bar for the mean over classes, and a zero line. ``points``: every
    repeat's gap table (same columns), drawn as dots over the bars (the across-repeat spread).
    More than GROUPED_MAX_CLASSES classes: one panel per metric and method instead, classes
    along x."""
    from matplotlib.patches import Patch

    if df.empty:
        raise AdlocError("plot_gap: empty gap table")
    methods = list(dict.fromkeys(df["method"]))
    classes = sorted(c for c in df["class"].unique() if c != "macro")
    colors = class_colors(classes)
    groups = [(m, "gap") for m in GAP_METRICS if m in set(df["metric"])]
    for column in VERSUS_LABELS:
        if column in df.columns and df[column].notna().any():
            groups += [(m, column) for m in THRESHOLD_METRICS if m in set(df["metric"])]
    metrics = [m for m, _ in groups]
    labels = [METRIC_LABELS[m] if col == "gap" else VERSUS_LABELS[col][m] for m, col in groups]
    if len(classes) > GROUPED_MAX_CLASSES:
        return plot_gap_by_class(df, groups, labels, title, points=points, errorbar_note=errorbar_note)
    has_macro = bool((df["class"] == "macro").any())
    slots = classes + (["macro"] if has_macro else [])
    width = 0.84 / max(1, len(slots))
    with style():
        fig = new_figure(max(6.0, 0.42 * len(metrics) * len(slots) + 2.6),
                         2.9 * len(methods) + 0.8)
        axes = fig.subplots(len(methods), 1, squeeze=False, sharex=True)[:, 0]
        for ax, method in zip(axes, methods):
            _grouped_axes(ax, df[df["method"] == method], method, slots, groups, labels, colors,
                          width, points)
        axes[-1].set_xlabel(f"test-split metric (error bars: {errorbar_note}"
                            + ("; dots: each repeat" if points is not None else "") + ")")
        handles = [Patch(facecolor=colors[c], edgecolor="black", label=c) for c in classes]
        if has_macro:
            handles.append(Patch(facecolor="0.85", edgecolor="black", hatch="///",
                                 label="mean over classes"))
        fig.legend(handles=handles, loc="outside right upper", title="class", frameon=False)
        # ~8 title characters per inch at 12 pt beside the legend: wrap to fit
        width = fig.get_figwidth()
        fig.suptitle("\n".join(textwrap.fill(t, int(width * 8)) for t in title.split("\n")))
    return fig


def _grouped_axes(ax, d: pd.DataFrame, method: str, slots: Sequence[str],
                  groups: Sequence[tuple[str, str]], labels: Sequence[str], colors: dict,
                  width: float, points: pd.DataFrame | None) -> None:
    """One method's panel of the grouped gap figure: per metric group one bar per slot (class,
    then "macro" hatched), error bars where the table has an interval, repeat dots, N/A marks."""
    metrics = [m for m, _ in groups]
    x0 = np.arange(len(groups), dtype=float)
    for j, cls in enumerate(slots):
        dc = d[d["class"] == cls].set_index("metric").reindex(metrics)
        xs = x0 - 0.42 + width * (j + 0.5)
        y = np.array([dc[col].iloc[i] for i, (_, col) in enumerate(groups)], dtype=float)
        if cls == "macro":
            ax.bar(xs, np.nan_to_num(y), width=width * 0.92, color="0.85",
                   edgecolor="black", linewidth=0.4, hatch="///")
        else:
            ax.bar(xs, np.nan_to_num(y), width=width * 0.92, color=colors[cls],
                   edgecolor="black", linewidth=0.4)
        lo = np.array([float_column(dc, f"{col}_low")[i] for i, (_, col) in enumerate(groups)])
        hi = np.array([float_column(dc, f"{col}_high")[i] for i, (_, col) in enumerate(groups)])
        has = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(y)
        if has.any():
            ax.errorbar(xs[has], y[has], yerr=[y[has] - lo[has], hi[has] - y[has]],
                        fmt="none", ecolor="black", elinewidth=1, capsize=3)
        if points is not None:
            pts = points[(points["method"] == method) & (points["class"] == cls)]
            for i, (m, col) in enumerate(groups):
                v = pts.loc[pts["metric"] == m, col].to_numpy(float)
                v = v[np.isfinite(v)]
                ax.scatter(np.full(v.size, xs[i]), v, s=9, color="black", zorder=3,
                           linewidths=0)
        for xi, yi in zip(xs, y):
            if not np.isfinite(yi):
                ax.annotate("N/A", (xi, 0), xytext=(0, 3), textcoords="offset points",
                            ha="center", va="bottom", fontsize=7, rotation=90,
                            color="0.4")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_title(method_label(method))
    ax.set_ylabel("per-class − global\n(or the scope named)")
    ax.set_xticks(x0, [lab.replace(" vs ", "\nvs ") for lab in labels])
    ax.tick_params(axis="x", labelbottom=True)
    ax.grid(axis="y", color="0.9", linewidth=0.6)
    ax.set_axisbelow(True)
