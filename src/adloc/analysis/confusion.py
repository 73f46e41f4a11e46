"""Cross-class "identical shortcut": can class A's threshold be used on class B's normals?

With one global model, every class's images get scores on one scale; if each class's threshold
flagged no normals of any other class, a single threshold would do. The cell (A, B) is the
share of B's normal images whose global-model score is >= A's threshold (a false-alarm rate).

The study scored B's TRAINING normals, which the global model has memorised (its memory bank /
Gaussian was fitted on them), so those scores are optimistically low; the default uses held-out
normals (B's val + test good images).

The absolute-unified scope adds one row, :data:`POOLED`: the one threshold calibrated on the
pooled validation split of every class, applied to each class's normals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import AdlocError
from ..io import write_csv
from .figures import method_label, new_figure, style

#: Plot/summary wording of the two variants (config ``analysis.confusion_normals``).
VARIANTS = {
    "heldout": "held-out normals (val+test good)",
    "train": "training normals — in-sample, memorised by the global model",
}

#: ``threshold_class`` of the absolute-unified row (the pooled threshold).
POOLED = "one pooled threshold"

COLUMNS = ["threshold_class", "normals_class", "threshold", "n_flagged", "n", "percent", "label"]


def normal_scores_from_npz(scores: Mapping[str, np.ndarray], variant: str = "heldout") -> np.ndarray:
    """A class's normal-image scores from its global-model score file.

    ``heldout``: val and test images with label 0 (never seen by the model); ``train``: the
    ``train_scores`` array (the study's in-sample variant; only written when requested).
    """
    if variant == "heldout":
        parts = []
        for split in ("val", "test"):
            if f"{split}_scores" not in scores or f"{split}_labels" not in scores:
                raise AdlocError(f"score file lacks {split}_scores/{split}_labels")
            s = np.asarray(scores[f"{split}_scores"], dtype=np.float64)
            lab = np.asarray(scores[f"{split}_labels"]).astype(int)
            parts.append(s[lab == 0])
        return np.concatenate(parts)
    if variant == "train":
        if "train_scores" not in scores:
            raise AdlocError(
                "the global score file has no train_scores: the 'train' confusion variant needs "
                "the global model to score its training images (analysis.confusion_normals: train)"
            )
        return np.asarray(scores["train_scores"], dtype=np.float64)
    raise AdlocError(f"unknown confusion variant {variant!r}; use one of {sorted(VARIANTS)}")


def confusion_inputs(threshold_files: Sequence, score_files: Sequence, variant: str = "heldout",
                     ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """``(thresholds, normal scores)`` per class, from the global model's per-class threshold
    files and scores files (rule confusion's inputs: one of each per class, in the same order,
    each named ``<class>.json`` / ``<class>.npz``); ``variant`` as :func:`normal_scores_from_npz`.
    Files that do not pair up class by class raise, naming them."""
    from ..pipeline import read_threshold
    from ..scores import read_scores

    threshold_files, score_files = list(threshold_files), list(score_files)
    if len(threshold_files) != len(score_files):
        raise AdlocError(
            f"confusion: {len(threshold_files)} threshold files but {len(score_files)} scores files "
            f"({[str(f) for f in score_files]}); give one of each per class (rule confusion's inputs)"
        )
    thresholds, normals = {}, {}
    for tf, sf in zip(threshold_files, score_files):
        cls = Path(tf).stem
        if Path(sf).stem != cls:
            raise AdlocError(
                f"confusion: threshold file {tf} (class {cls}) is paired with scores file {sf} "
                f"(class {Path(sf).stem}); list both inputs in the same class order (rule confusion)"
            )
        thresholds[cls] = float(read_threshold(tf)["threshold"]["threshold"])
        normals[cls] = normal_scores_from_npz(read_scores(sf), variant)
    return thresholds, normals


def confusion_matrix(
    thresholds: Mapping[str, float],
    normal_scores: Mapping[str, np.ndarray],
    pooled: float | None = None,
) -> pd.DataFrame:
    """Long table, one row per (threshold class A, normals class B), in ``thresholds`` order.

    Columns :data:`COLUMNS`: ``threshold`` (A's), ``n_flagged`` = #{B normals with score >=
    threshold}, ``n`` = #B normals, ``percent`` = 100 k/n (NaN when B has no normals), ``label``
    = ``"k/n"``. ``pooled``: the absolute-unified threshold, added as the rows with
    ``threshold_class ==`` :data:`POOLED`. Use :func:`wide` for the matrix view.
    """
    classes = list(thresholds)
    if POOLED in classes:
        raise AdlocError(f"confusion_matrix: a class may not be named {POOLED!r}")
    missing = [c for c in classes if c not in normal_scores]
    extra = [c for c in normal_scores if c not in thresholds]
    if missing or extra:
        raise AdlocError(
            f"confusion_matrix: thresholds and normal scores must cover the same classes "
            f"(no normals for {missing}, no threshold for {extra})"
        )
    rows = []
    rows_of = [(a, thresholds[a]) for a in classes] + ([(POOLED, pooled)] if pooled is not None else [])
    for a, t in rows_of:
        t = float(t)
        if not np.isfinite(t):
            raise AdlocError(f"confusion_matrix: threshold of class {a!r} is not finite ({t})")
        for b in classes:
            s = np.asarray(normal_scores[b], dtype=np.float64).ravel()
            k, n = int((s >= t).sum()), int(s.size)
            rows.append({
                "threshold_class": a, "normals_class": b, "threshold": t, "n_flagged": k, "n": n,
                "percent": 100.0 * k / n if n else float("nan"), "label": f"{k}/{n}",
            })
    return pd.DataFrame(rows, columns=COLUMNS)


def wide(df: pd.DataFrame, value: str = "percent") -> pd.DataFrame:
    """Matrix view: rows = threshold class (then the pooled row), columns = normals class
    (original order kept)."""
    rows = list(dict.fromkeys(df["threshold_class"]))
    cols = list(dict.fromkeys(df["normals_class"]))
    return (df.pivot(index="threshold_class", columns="normals_class", values=value)
              .reindex(index=rows, columns=cols))


def confusion_cells(df: pd.DataFrame) -> pd.DataFrame:
    """Wide text view for reports: cells ``"12.5% (3/24)"``, first column ``threshold of``."""
    rows_order = list(dict.fromkeys(df["threshold_class"]))
    order = list(dict.fromkeys(df["normals_class"]))
    cells = {}
    for _, r in df.iterrows():
        pct = "n/a" if pd.isna(r["percent"]) else f"{r['percent']:.1f}%"
        cells[(r["threshold_class"], r["normals_class"])] = f"{pct} ({r['label']})"
    rows = [[a] + [cells.get((a, b), "") for b in order] for a in rows_order]
    return pd.DataFrame(rows, columns=["threshold of ↓ / normals of →"] + order)


def write_confusion(path, df: pd.DataFrame) -> None:
    write_csv(path, df)


def read_confusion(path) -> pd.DataFrame:
    """Read a table written by :func:`write_confusion` (class names kept as text)."""
    from .tables import read_table_csv

    df = read_table_csv(path, "confusion table", columns=COLUMNS,
                   dtype={"threshold_class": str, "normals_class": str, "label": str})
    df["threshold_class"] = df["threshold_class"].astype(object)
    df["normals_class"] = df["normals_class"].astype(object)
    df["label"] = df["label"].astype(object)
    return df[COLUMNS]


def summarize(df: pd.DataFrame) -> dict:
    """The largest off-diagonal cell (and the largest diagonal one, for context)."""
    pooled = df[df["threshold_class"] == POOLED]
    df = df[df["threshold_class"] != POOLED]
    off = df[df["threshold_class"] != df["normals_class"]]
    diag = df[df["threshold_class"] == df["normals_class"]]
    out: dict = {"max_off": None, "max_diag": None, "max_pooled": None}
    for key, part in (("max_off", off), ("max_diag", diag), ("max_pooled", pooled)):
        part = part.dropna(subset=["percent"])
        if len(part):
            r = part.sort_values(["percent", "threshold_class", "normals_class"],
                                 ascending=[False, True, True], kind="mergesort").iloc[0]
            out[key] = {k: (r[k].item() if hasattr(r[k], "item") else r[k]) for k in COLUMNS}
    return out


def summary_sentence(df: pd.DataFrame, method: str) -> str:
    """One sentence for summary.md: the largest off-diagonal false-alarm rate and where."""
    s = summarize(df)
    name = method_label(method)
    if s["max_off"] is None:
        return f"{name}: only one class, no cross-class cell."
    m = s["max_off"]
    if m["n_flagged"] == 0:
        text = (f"{name}: no class's threshold flags any normal image of another class "
                f"(0% in every off-diagonal cell)")
    else:
        text = (f"{name}: the largest off-diagonal rate is {m['percent']:.1f}% ({m['label']}): "
                f"{m['threshold_class']}'s threshold applied to {m['normals_class']}'s normals")
    if s["max_diag"] is not None:
        d = s["max_diag"]
        text += (f"; on the diagonal (each class's own threshold) at most {d['percent']:.1f}% "
                 f"({d['label']}, {d['normals_class']})")
    if s["max_pooled"] is not None:
        p = s["max_pooled"]
        text += (f"; one pooled threshold (absolute-unified) flags at most {p['percent']:.1f}% "
                 f"({p['label']}, {p['normals_class']})")
    return text + "."


def plot_confusion(df: pd.DataFrame, method: str, variant: str = "heldout"):
    """Heat map in % (0-100, fixed scale) with "k/n" under each percentage."""
    pct = wide(df, "percent")
    lab = wide(df, "label")
    classes = list(pct.columns)
    rows = list(pct.index)
    n, n_rows = len(classes), len(rows)
    desc = VARIANTS.get(variant, variant)
    # up to 6 classes: roomy cells; more (MVTec AD's 15): smaller cells and text, so the figure
    # stays about 12 x 10 inches at 15 classes and every "100.0%" still fits its cell
    cell_w, cell_h, fs = (1.15, 0.95, 8) if n <= 6 else (0.66, 0.5, 7)
    with style():
        fig = new_figure(max(4.6, cell_w * n + 2.6) + (1.2 if POOLED in rows else 0.0),
                         max(3.6, cell_h * n_rows + 2.0))
        ax = fig.subplots()
        im = ax.imshow(pct.to_numpy(float), cmap="Reds", vmin=0, vmax=100,
                       aspect="equal" if n <= 6 else "auto")
        for i in range(n_rows):
            for j in range(n):
                v = pct.iat[i, j]
                txt = "n/a" if pd.isna(v) else f"{v:.1f}%\n{lab.iat[i, j]}"
                color = "white" if (not pd.isna(v) and v > 60) else "black"
                weight = "bold" if rows[i] == classes[j] else "normal"
                ax.text(j, i, txt, ha="center", va="center", fontsize=fs, color=color,
                        fontweight=weight)
        if POOLED in rows:
            ax.axhline(rows.index(POOLED) - 0.5, color="black", linewidth=1.5)
        ax.set_xticks(range(n), classes, rotation=30 if n <= 6 else 45, ha="right")
        ax.set_yticks(range(n_rows), rows)
        ax.set_xlabel("normal images of class B\n(bold diagonal: each class's own threshold)")
        ax.set_ylabel("threshold of class A" + (" (last row: one threshold)" if POOLED in rows else ""))
        for s in ax.spines.values():
            s.set_visible(False)
        cb = fig.colorbar(im, ax=ax, shrink=0.85)
        cb.set_label("% of B's normals flagged (score ≥ A's threshold)", fontsize=8)
        ax.set_title(f"{method_label(method)} global model: class A's threshold on class B's "
                     f"normals\n{desc}", fontsize=9)
    return fig
