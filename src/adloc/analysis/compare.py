"""Two or more finished runs side by side: one table and one figure.

Each run is read from its ``results/<run>/tables/metrics.csv``. The table has one row per
method x model scope x class (``macro`` included) x metric and one column per run; when the
classes include the study's (hazelnut, carpet, zipper), the study's published numbers are a
further column, ``study (published)`` (blank where the study published nothing). The figure
shows image AUROC and pixel AUROC per class, one bar per run (and the study), one panel per
method x scope.

When every run is on MVTec AD or VisA (:func:`adloc.analysis.anchors.common_dataset`), the
published reference numbers that apply (:func:`adloc.analysis.anchors.anchors_for`) are further
columns, ``published: <source>``, one per source (blank where it published nothing); rule
compare writes each source's setting, citation and URL beside the table (``published.csv``).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import AdlocError
from .anchors import PREFIX, anchor_columns
from .figures import method_label, new_figure, savefig, scope_label, style
from .study_reference import STUDY_CLASSES, load_study_reference
from ..models.registry import method_names
from .tables import SCOPE_ORDER, order_key

#: Metrics compared, with display names.
COMPARED = {"auroc": "AUROC", "f1": "F1", "auprc": "AUPRC", "pixel_auroc": "pixel AUROC", "au_pro": "AU-PRO",
            "au_pro_strict": "AU-PRO strict", "f1_max": "F1-max", "pixel_ap": "pixel AP", "pixel_f1_max": "pixel F1-max", "mad": "mAD"}
STUDY_COLUMN = "study (published)"
KEYS = ["method", "scope", "class"]


def compare_runs(tables: Mapping[str, pd.DataFrame], study: bool | None = None,
                 anchors: pd.DataFrame | None = None) -> pd.DataFrame:
    """Side-by-side table of ``{run name: metrics table}`` (at least two runs).

    ``study``: add the study's published column (None: when any run has a study class).
    ``anchors``: :func:`adloc.analysis.anchors.anchors_for` output, one ``published: <source>``
    column per source (None or empty: none).
    Rows are the union of every run's (method, scope, class); a run without a row shows NaN.
    """
    if len(tables) < 2:
        raise AdlocError(f"compare needs two or more runs, got {list(tables)}")
    long = []
    for run, mt in tables.items():
        mt = mt.reindex(columns=KEYS + list(COMPARED))  # a run from before a metric existed: NaN
        m = mt.melt(id_vars=KEYS, value_vars=list(COMPARED), var_name="metric", value_name=run)
        long.append(m.set_index(KEYS + ["metric"]))
    out = pd.concat(long, axis=1, join="outer")
    classes = {c for mt in tables.values() for c in mt["class"]}
    if study is None:
        study = bool(classes & set(STUDY_CLASSES))
    if study:
        ref = load_study_reference()
        ref = ref.melt(id_vars=KEYS, value_vars=[c for c in COMPARED if c in ref.columns], var_name="metric",
                       value_name=STUDY_COLUMN)
        ref = ref[ref["class"].isin(classes)].set_index(KEYS + ["metric"])
        out = out.join(ref, how="left")
    if anchors is not None and len(anchors):
        wide = anchor_columns(anchors)
        wide = wide[wide.index.get_level_values("metric").isin(list(COMPARED))]
        out = out.join(wide, how="left")
    out = out.reset_index()
    out["_m"] = out["metric"].map({m: i for i, m in enumerate(COMPARED)})
    out["_c"] = (out["class"] == "macro").astype(int)
    out["_mo"] = out["method"].map(order_key(out["method"], tuple(method_names())))
    out["_so"] = out["scope"].map(order_key(out["scope"], SCOPE_ORDER))
    out = out.sort_values(["_mo", "_so", "_c", "class", "_m"], kind="stable")
    return out.drop(columns=["_m", "_c", "_mo", "_so"]).reset_index(drop=True)


def compare_figure(table: pd.DataFrame, runs: Sequence[str], path, metrics=("auroc", "pixel_auroc")) -> None:
    """Grouped bars per class (macro last): one bar per run (and the study), panels = method x
    scope (rows) x metric (columns)."""
    cols = list(runs) + ([STUDY_COLUMN] if STUDY_COLUMN in table.columns else [])
    cols += [c for c in table.columns if str(c).startswith(PREFIX)]
    panels = [(m, s) for m in dict.fromkeys(table["method"]) for s in dict.fromkeys(table["scope"])]
    with style():
        fig = new_figure(4.2 * len(metrics) + 1.5, 2.9 * len(panels) + 0.6)
        axes = fig.subplots(len(panels), len(metrics), squeeze=False)
        colors = {c: f"C{i}" for i, c in enumerate(cols)}
        for r, (method, scope) in enumerate(panels):
            for k, metric in enumerate(metrics):
                ax = axes[r][k]
                t = table[(table["method"] == method) & (table["scope"] == scope) & (table["metric"] == metric)]
                classes = list(t["class"])
                x = np.arange(len(classes))
                width = 0.8 / max(len(cols), 1)
                for j, c in enumerate(cols):
                    vals = t[c].astype(float).to_numpy()
                    ok = np.isfinite(vals)  # no bar where a run has no value (N/A)
                    ax.bar((x + (j - (len(cols) - 1) / 2) * width)[ok], vals[ok], width,
                           label=c, color=colors[c])
                ax.set_xticks(x, classes, rotation=45 if len(classes) > 4 else 0, ha="right" if len(classes) > 4 else "center")
                ax.set_ylim(0, 1.05)
                ax.set_ylabel(COMPARED[metric])
                ax.set_title(f"{method_label(method)}, {scope_label(scope)}: {COMPARED[metric]}")
                ax.grid(axis="y", alpha=0.3)
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=len(cols))
        fig.suptitle(f"Runs side by side: {' vs '.join(runs)} (no bar: N/A)")
        savefig(fig, path)

