"""The routed scope's own outputs: routing accuracy per class, the predicted-vs-true confusion
matrix (table and figure) and the summary's routing sentence (:mod:`adloc.routing` routes)."""

from __future__ import annotations

import textwrap
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import AdlocError
from ..io import write_csv
from .figures import method_label, new_figure, style
from .tables import read_table_csv

ACCURACY_COLUMNS = ["class", "n_test", "n_correct", "accuracy", "n_test_normal",
                    "accuracy_normal", "n_test_anomalous", "accuracy_anomalous"]
CONFUSION_COLUMNS = ["true_class", "predicted_class", "n", "n_true", "percent"]
#: The accuracy table's pooled row (every test image) and its mean over classes.
ALL, MACRO = "all", "macro"


def _labels_of(splits: Mapping[str, Mapping] | None, cls: str, paths: Sequence[str]) -> np.ndarray | None:
    if not splits or cls not in splits:
        return None
    table = {e["path"]: int(e["label"]) for e in splits[cls]["splits"]["test"]}
    return np.asarray([table.get(p, -1) for p in paths])


def routing_tables(routing: Mapping, splits: Mapping[str, Mapping] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(accuracy, confusion)`` of a routing file (:func:`adloc.routing.routing_record`).

    accuracy: one row per class (share of its test images routed to it; also over its normal
    and its anomalous images when ``splits``, class -> split file, gives the labels), then
    ``all`` (every test image pooled) and ``macro`` (mean over classes). confusion: one row per
    true x predicted class, ``percent`` of the true class's test images."""
    classes = list(routing["classes"])
    acc_rows, conf_rows = [], []
    for cls in classes:
        e = routing["test"][cls]
        pred = np.asarray(e["predicted"], dtype=object)
        hit = pred == cls
        row = {"class": cls, "n_test": int(pred.size), "n_correct": int(hit.sum()),
               "accuracy": float(hit.mean()) if pred.size else np.nan}
        lab = _labels_of(splits, cls, e["paths"])
        for name, value in (("normal", 0), ("anomalous", 1)):
            m = None if lab is None else lab == value
            row[f"n_test_{name}"] = np.nan if m is None else int(m.sum())
            row[f"accuracy_{name}"] = float(hit[m].mean()) if m is not None and m.any() else np.nan
        acc_rows.append(row)
        for p in classes:
            n = int((pred == p).sum())
            conf_rows.append({"true_class": cls, "predicted_class": p, "n": n, "n_true": int(pred.size),
                              "percent": 100.0 * n / pred.size if pred.size else np.nan})
    acc = pd.DataFrame(acc_rows, columns=ACCURACY_COLUMNS)
    tot = {"class": ALL}
    for name in ("", "_normal", "_anomalous"):
        n_col = f"n_test{name}"
        n = acc[n_col].sum(min_count=1)
        k = (acc[f"accuracy{name}"] * acc[n_col]).sum(min_count=1)
        tot[n_col] = n
        tot[f"accuracy{name}"] = float(k / n) if pd.notna(n) and n > 0 else np.nan
    tot["n_correct"] = int(acc["n_correct"].sum())
    mac = {"class": MACRO, **{c: acc[c].mean() for c in ACCURACY_COLUMNS if c.startswith("accuracy")}}
    acc = pd.concat([acc, pd.DataFrame([tot, mac], columns=ACCURACY_COLUMNS)], ignore_index=True)
    for c in ("n_test", "n_correct", "n_test_normal", "n_test_anomalous"):
        acc[c] = acc[c].astype("Float64").round().astype("Int64")
    return acc, pd.DataFrame(conf_rows, columns=CONFUSION_COLUMNS)


def write_routing_tables(accuracy_path, confusion_path, accuracy: pd.DataFrame, confusion: pd.DataFrame) -> None:
    write_csv(accuracy_path, accuracy)
    write_csv(confusion_path, confusion)


def read_routing_accuracy(path) -> pd.DataFrame:
    """Read a table written by :func:`write_routing_tables` (accuracy) back."""
    df = read_table_csv(path, "routing accuracy table", columns=ACCURACY_COLUMNS, dtype={"class": str})
    for c in ("n_test", "n_correct", "n_test_normal", "n_test_anomalous"):
        df[c] = df[c].astype("Float64").round().astype("Int64")
    return df[ACCURACY_COLUMNS]


def plot_routing(confusion: pd.DataFrame, feature_set: str, k: int, accuracy: pd.DataFrame | None = None):
    """Heat map of predicted vs true class (% of the true class's test images, "k/n" under it),
    the diagonal (routed to its own class) in bold; readable at 15 classes (smaller cells and
    text, names at 45 degrees)."""
    classes = list(dict.fromkeys(confusion["true_class"]))
    if not classes:
        raise AdlocError("plot_routing: empty confusion table")
    pct = confusion.pivot(index="true_class", columns="predicted_class", values="percent").reindex(
        index=classes, columns=classes)
    cnt = confusion.pivot(index="true_class", columns="predicted_class", values="n").reindex(
        index=classes, columns=classes)
    tot = confusion.drop_duplicates("true_class").set_index("true_class")["n_true"].reindex(classes)
    n = len(classes)
    cell, fs = (1.05, 8) if n <= 6 else (0.62, 6.5)
    with style():
        fig = new_figure(max(4.8, cell * n + 3.0), max(3.9, cell * n + 2.2))
        ax = fig.subplots()
        im = ax.imshow(pct.to_numpy(float), cmap="Blues", vmin=0, vmax=100, aspect="equal")
        for i in range(n):
            for j in range(n):
                v = pct.iat[i, j]
                txt = "n/a" if pd.isna(v) else (f"{v:.0f}%\n{int(cnt.iat[i, j])}/{int(tot.iat[i])}"
                                                if n > 6 else f"{v:.1f}%\n{int(cnt.iat[i, j])}/{int(tot.iat[i])}")
                ax.text(j, i, txt, ha="center", va="center", fontsize=fs,
                        color="white" if (not pd.isna(v) and v > 60) else "black",
                        fontweight="bold" if i == j else "normal")
        ax.set_xticks(range(n), classes, rotation=30 if n <= 6 else 45, ha="right")
        ax.set_yticks(range(n), classes)
        ax.set_xlabel("predicted class (the threshold applied)")
        ax.set_ylabel("true class of the test image")
        for s in ax.spines.values():
            s.set_visible(False)
        cb = fig.colorbar(im, ax=ax, shrink=0.85)
        cb.set_label("% of the true class's test images", fontsize=8)
        title = f"Class routing of the test images: {k}-NN vote on pooled {feature_set} features"
        if accuracy is not None and (accuracy["class"] == ALL).any():
            a = accuracy.set_index("class")
            title += (f"\nrouted to their own class: {_pct(a.at[ALL, 'accuracy'])} of all images, "
                      f"{_pct(a.at[MACRO, 'accuracy'])} mean over classes (bold diagonal)")
        width = fig.get_figwidth()  # ~11 title characters per inch at 9 pt: wrap to fit
        ax.set_title("\n".join(textwrap.fill(t, int(width * 11)) for t in title.split("\n")), fontsize=9)
    return fig


def _pct(x) -> str:
    return "N/A" if x is None or pd.isna(x) else f"{100 * float(x):.1f}%"


def routing_sentences(accuracy: Mapping[str, pd.DataFrame], k: int, methods_of: Mapping[str, Sequence[str]]) -> list[str]:
    """The summary's routing lines, one per feature set: ``accuracy``: feature set -> its
    accuracy table; ``methods_of``: feature set -> the methods that read it (and so are routed
    by it)."""
    out = []
    for fset, acc in accuracy.items():
        a = acc.set_index("class")
        per = [r for r in acc.itertuples() if r[1] not in (ALL, MACRO)]
        worst = sorted(per, key=lambda r: (np.nan_to_num(r.accuracy, nan=2.0), r[1]))
        classes = "; ".join(f"{r[1]} {_pct(r.accuracy)} ({int(r.n_correct)}/{int(r.n_test)})" for r in per)
        who = ", ".join(method_label(m) for m in methods_of.get(fset, []))
        text = (f"- Routing for {who or 'no method'} ({k}-NN vote among every class's training "
                f"images on mean-pooled {fset} features, no test label used): "
                f"{int(a.at[ALL, 'n_correct'])} of {int(a.at[ALL, 'n_test'])} test images "
                f"({_pct(a.at[ALL, 'accuracy'])}) routed to their own class, "
                f"{_pct(a.at[MACRO, 'accuracy'])} mean over classes; per class: {classes}")
        if worst and pd.notna(worst[0].accuracy) and worst[0].accuracy < 1:
            text += f". Least well routed: {worst[0][1]}"
        if pd.notna(a.at[ALL, "accuracy_anomalous"]):
            text += (f". Normal images {_pct(a.at[ALL, 'accuracy_normal'])}, anomalous "
                     f"{_pct(a.at[ALL, 'accuracy_anomalous'])}")
        out.append(text + ".")
    return out




# --------------------------------------------------------------------------------------------
# the gap table's "vs routed" columns (adloc.analysis.gap.gap_table)

#: Gap-table columns of the per-class minus routed gap.
GAP_COLUMNS = ["routed", "gap_routed", "gap_routed_low", "gap_routed_high"]
#: Column / axis labels of the per-class minus routed gaps (threshold metrics only: the others
#: equal the per-class minus global gaps).
ROUTED_LABELS = {"f1": "F1 vs routed", "accuracy": "accuracy vs routed"}


def _rate(name: str):
    """``name`` (f1, accuracy, ...) of 0 / 1 decisions against the labels, for the bootstrap."""
    from ..metrics.image import confusion_at, rates_from_counts

    def fn(labels, predicted) -> float:
        return float(rates_from_counts(**confusion_at(labels, predicted, 0.5))[name])

    return fn


def routed_gap_values(metric: str, row: Mapping, per_class_metrics: Mapping, routed: Mapping | None,
                      per_class_scores: Mapping, global_scores: Mapping, n_boot: int, seed: int,
                      alpha: float, ci_fn=None, what: str = "") -> dict:
    """The :data:`GAP_COLUMNS` of one gap-table row (``row``: its per-class / global values and
    the per-class minus global interval).

    F1 and accuracy: the routed metrics' value and a paired bootstrap of per-class minus routed
    on the same resampled images (the per-class model's predictions at its threshold against
    the global model's at each image's routed threshold). The other metrics do not depend on
    the threshold: routed = global, so the gap and its interval are the per-class minus global
    ones. ``routed`` None (no routed metrics among the inputs): all NaN."""
    from ..metrics import paired_gap_ci
    from ..routing import routed_predictions

    out = dict.fromkeys(GAP_COLUMNS, np.nan)
    if routed is None:
        return out
    if metric not in ROUTED_LABELS:
        return {"routed": row["global"], "gap_routed": row["gap"], "gap_routed_low": row["gap_low"],
                "gap_routed_high": row["gap_high"]}
    v = (routed.get("test") or {}).get(metric)
    r = np.nan if v is None else float(v)
    out.update(routed=r, gap_routed=row["per_class"] - r)
    if n_boot <= 0:
        return out
    labels = np.asarray(per_class_scores["test_labels"]).astype(int)
    pc_thr = float(per_class_metrics["threshold"]["threshold"])
    pred_a = np.asarray(per_class_scores["test_scores"], dtype=np.float64) >= pc_thr
    _, pred_b = routed_predictions(global_scores["test_scores"], routed["routing"]["predicted"],
                                   routed["threshold"]["routed"])
    fn = _rate(metric)
    res = (ci_fn or paired_gap_ci)(labels, pred_a.astype(np.float64), pred_b.astype(np.float64),
                                   metric=fn, n_boot=n_boot, seed=seed, alpha=alpha)
    est = float(res.get("estimate", np.nan))
    if ci_fn is None and np.isfinite([est, out["gap_routed"]]).all() and abs(est - out["gap_routed"]) > 1e-9:
        raise AdlocError(f"{what}: the {metric} gap vs routed from the score files ({est:.6f}) differs "
                         f"from the metrics files ({out['gap_routed']:.6f}); the metrics are stale. "
                         "Delete this class's metrics and rerun the evaluate rules.")
    out.update(gap_routed_low=float(res.get("low", np.nan)), gap_routed_high=float(res.get("high", np.nan)))
    return out


__all__ = ["routing_tables", "write_routing_tables", "read_routing_accuracy", "plot_routing",
           "routing_sentences", "routed_gap_values", "ACCURACY_COLUMNS", "CONFUSION_COLUMNS",
           "GAP_COLUMNS", "ROUTED_LABELS"]
