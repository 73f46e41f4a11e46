"""The study's published domain-shift results beside ours (issue 21 §2).

``src/adloc/data/study_shift_reference.csv`` holds the study's MVTec-Shift table
(../shared/study_reference.md, "Domain shift"): per-class models only, test split, phases
``none`` (no adaptation), ``threshold`` (threshold only: F1, accuracy, specificity and the
threshold were published) and ``full`` (full adaptation); blank = not published. The study's
phase-7 pixel metrics are over anomalous test images only, phases 6.x over all test images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from ..errors import AdlocError

REFERENCE_CSV = Path(__file__).resolve().parents[1] / "data" / "study_shift_reference.csv"
METRICS = ("auroc", "f1", "accuracy", "specificity", "pixel_auroc", "au_pro", "threshold")
COLUMNS = ["phase", "method", "class", "metric", "ours", "study", "difference"]


def load_study_shift_reference(path=REFERENCE_CSV) -> pd.DataFrame:
    """One row per method x phase x class; the :data:`METRICS` as floats (NaN: not published)."""
    try:
        df = pd.read_csv(path, dtype={"method": str, "phase": str, "class": str})
    except FileNotFoundError:
        raise AdlocError(f"study shift reference table not found: {path}; reinstall adloc") from None
    for m in METRICS:
        df[m] = df[m].astype(float)
    return df


def shift_side_by_side(stacked: pd.DataFrame, ref: pd.DataFrame | None = None,
                       class_map: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Our per-class models' shifted metrics (``tables/shift_metrics.csv`` rows of the first
    repeat) next to the study's, one row per phase x method x class x metric it published;
    columns :data:`COLUMNS` (``class`` is ours; ``class_map`` maps it to the study's, e.g. the
    embedded classes to hazelnut / carpet / zipper). Empty when nothing matches."""
    ref = load_study_shift_reference() if ref is None else ref
    cmap = dict(class_map or {})
    first = stacked[stacked["repeat"] == stacked["repeat"].iloc[0]] if len(stacked) else stacked
    ours = first[(first["scope"] == "per_class") & (first["class"] != "macro")]
    r_idx = ref.set_index(["method", "phase", "class"])
    rows = []
    for _, o in ours.iterrows():
        key = (o["method"], o["phase"], cmap.get(o["class"], o["class"]))
        if key not in r_idx.index:
            continue
        s = r_idx.loc[key]
        for m in METRICS:
            sv = float(s[m])
            if np.isnan(sv):
                continue
            ov = float(o[m]) if m in o and pd.notna(o[m]) else float("nan")
            rows.append({"phase": o["phase"], "method": o["method"], "class": o["class"], "metric": m,
                         "ours": ov, "study": sv, "difference": ov - sv})
    return pd.DataFrame(rows, columns=COLUMNS)


def side_by_side_lines(sbs: pd.DataFrame, label) -> list[str]:
    """Markdown for the summary's domain-shift section: one table, ours / study (difference)."""
    if sbs.empty:
        return []
    cell = sbs.assign(cell=[f"{o:.4f} / {s:.4f} ({d:+.4f})" if np.isfinite(o) else f"N/A / {s:.4f}"
                            for o, s, d in zip(sbs["ours"], sbs["study"], sbs["difference"])])
    cell["method"] = cell["method"].map(label)
    wide = cell.pivot_table(index=["method", "phase", "class"], columns="metric", values="cell",
                            aggfunc="first", sort=False).reset_index()
    wide = wide.reindex(columns=["method", "phase", "class", *[m for m in METRICS if m in set(sbs["metric"])]])
    return ["", "The study's published MVTec-Shift numbers (per-class models), each cell ours / "
            "study (ours − study); the study's full-adaptation pixel metrics are over anomalous "
            "test images only, and its shifted images differ from ours where its generator "
            "did (README, \"Domain shift\"):", "", wide.fillna("").to_markdown(index=False)]
