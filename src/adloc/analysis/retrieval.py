"""The summary's sentence on methods that retrieve whole training images before comparing
patches (registry capability ``retrieves_images``): a global model of such a method may route a
test image to its own class, so its per-class minus global gap is set beside the other methods'
of the same run, from the run's gap table (:func:`adloc.analysis.gap.gap_table`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..models.registry import CAPABILITY_NOTES, RETRIEVES_IMAGES, methods_with
from .figures import method_label
from .gap import METRIC_LABELS

#: the gaps compared: image ranking, the thresholded decision and the two map metrics
METRICS = ("auroc", "f1", "pixel_auroc", "au_pro")


def _signed(x: float) -> str:
    return "N/A" if pd.isna(x) else f"{float(x):+.4f}"


def _smallest(own: float, others: list[float]) -> bool | None:
    """Whether ``|own|`` is no larger than every defined ``|other|`` (None: nothing to compare)."""
    rest = [abs(o) for o in others if pd.notna(o)]
    if pd.isna(own) or not rest:
        return None
    return bool(abs(own) <= min(rest))


def retrieval_sentences(gap: pd.DataFrame | None) -> list[str]:
    """One line per method of ``gap`` that retrieves whole training images, when the table also
    has a method that does not: its macro per-class minus global gap per metric of
    :data:`METRICS` beside each other method's, whether its gap is the smallest in magnitude, and
    in how many classes its AUROC gap is no larger in magnitude than every other method's.
    Nothing when no such method ran."""
    if gap is None or len(gap) == 0:
        return []
    methods = list(dict.fromkeys(gap["method"]))
    retrieving = methods_with(RETRIEVES_IMAGES, methods)
    others = [m for m in methods if m not in retrieving]
    if not retrieving or not others:
        return []
    value = {(r["method"], r["class"], r["metric"]): r["gap"] for _, r in gap.iterrows()}
    classes = sorted({c for c in gap["class"] if c != "macro"})
    out = []
    for m in retrieving:
        label = method_label(m)
        parts = []
        for metric in METRICS:
            own = value.get((m, "macro", metric), np.nan)
            rest = [value.get((o, "macro", metric), np.nan) for o in others]
            text = (f"{METRIC_LABELS[metric]} {_signed(own)} vs "
                    + ", ".join(f"{method_label(o)} {_signed(v)}" for o, v in zip(others, rest)))
            small = _smallest(own, rest)
            if small is not None:
                text += " (smallest)" if small else " (not the smallest)"
            parts.append(text)
        flags = {c: _smallest(value.get((m, c, "auroc"), np.nan),
                              [value.get((o, c, "auroc"), np.nan) for o in others]) for c in classes}
        wins = [c for c, f in flags.items() if f]
        n_def = sum(f is not None for f in flags.values())
        where = (f"; its AUROC gap is no larger in magnitude than every other method's in "
                 f"{len(wins)} of {n_def} classes" + (f" ({', '.join(wins)})" if wins else ""))
        out.append(f"- {label} {CAPABILITY_NOTES[RETRIEVES_IMAGES]}. Its macro per-class minus "
                   "global gap beside the other methods' (magnitude: closer to 0 is a smaller "
                   "cost of one model for all classes): " + "; ".join(parts) + where + ".")
    return out
