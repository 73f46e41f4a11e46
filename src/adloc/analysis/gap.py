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

import textwrap
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import AdlocError
from ..io import read_json, write_csv
from ..metrics import auprc, auroc, paired_gap_ci
from .figures import class_colors, method_label, new_figure, style
from .routing import GAP_COLUMNS as ROUTED_COLUMNS, ROUTED_LABELS, routed_gap_values
from ..models.registry import method_names
from ..scores import read_scores
from .tables import float_column, order_key, read_table_csv, text_column

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


def check_same_test_images(pc_scores: Mapping, gl_scores: Mapping, what: str) -> None:
    """Raise :class:`AdlocError` unless both score files list the same test images in the same
    order with the same labels (a paired comparison needs image-by-image correspondence)."""
    for key in ("test_scores", "test_labels", "test_paths"):
        for name, d in (("per-class", pc_scores), ("global", gl_scores)):
            if key not in d:
                raise AdlocError(f"{what}: the {name} scores lack {key!r}; rerun the score rule")
    p1 = np.asarray(pc_scores["test_paths"]).astype(str)
    p2 = np.asarray(gl_scores["test_paths"]).astype(str)
    if p1.shape != p2.shape:
        raise AdlocError(
            f"{what}: the per-class and global models scored different test sets "
            f"({p1.size} vs {p2.size} images); both must score the class's test split. "
            "Rerun the score rules from the same splits file."
        )
    diff = np.flatnonzero(p1 != p2)
    if diff.size:
        i = int(diff[0])
        same_set = sorted(p1.tolist()) == sorted(p2.tolist())
        raise AdlocError(
            f"{what}: test_paths differ between the per-class and global scores at position {i} "
            f"({p1[i]!r} vs {p2[i]!r}; {diff.size} positions differ"
            f"{', same images in a different order' if same_set else ''}). A paired bootstrap "
            "needs the same images in the same order; rerun the score rules from the same splits."
        )
    l1 = np.asarray(pc_scores["test_labels"]).astype(int)
    l2 = np.asarray(gl_scores["test_labels"]).astype(int)
    if not np.array_equal(l1, l2):
        raise AdlocError(f"{what}: test_labels differ between the per-class and global scores")
    for name, d in (("per-class", pc_scores), ("global", gl_scores)):
        if np.asarray(d["test_scores"]).shape != p1.shape:
            raise AdlocError(f"{what}: {name} test_scores and test_paths differ in length")


def _as_pair(pair: Any) -> tuple[Mapping, Mapping, Mapping, Mapping]:
    if isinstance(pair, Mapping):
        try:
            return (pair["per_class_metrics"], pair["global_metrics"],
                    pair["per_class_scores"], pair["global_scores"])
        except KeyError as exc:
            raise AdlocError(
                f"gap pair lacks key {exc}; expected per_class_metrics, global_metrics, "
                "per_class_scores, global_scores"
            ) from None
    if isinstance(pair, Sequence) and len(pair) == 4:
        return tuple(pair)  # type: ignore[return-value]
    raise AdlocError("a gap pair is a dict or a 4-tuple (pc_metrics, gl_metrics, pc_scores, gl_scores)")


def load_pair(pc_metrics_path, gl_metrics_path, pc_scores_path, gl_scores_path,
              abs_metrics_path=None, routed_metrics_path=None) -> dict:
    """Read one pair from ``metrics/{m}/{cls}/{cls}.json``, ``metrics/{m}/global/{cls}.json``,
    the two matching ``scores`` files and, optionally, ``metrics/{m}/unified_abs/{cls}.json``
    and ``metrics/{m}/routed/{cls}.json``."""
    pair = {
        "per_class_metrics": read_json(pc_metrics_path, "per-class metrics"),
        "global_metrics": read_json(gl_metrics_path, "global metrics"),
        "per_class_scores": read_scores(pc_scores_path, "per-class scores"),
        "global_scores": read_scores(gl_scores_path, "global scores"),
    }
    if abs_metrics_path is not None:
        pair["unified_abs_metrics"] = read_json(abs_metrics_path, "absolute-unified metrics")
    if routed_metrics_path is not None:
        pair["routed_metrics"] = read_json(routed_metrics_path, "routed metrics")
    return pair


#: The pair's optional metrics of the other global-model scopes, and their names in messages.
SCOPE_KEYS = {"unified_abs_metrics": "absolute-unified", "routed_metrics": "routed"}


def _scope_metrics(pair: Any, key: str, method: str, cls: str) -> Mapping | None:
    """The pair's optional ``unified_abs_metrics`` / ``routed_metrics``, checked to be its own."""
    m = pair.get(key) if isinstance(pair, Mapping) else None
    if m is not None and (str(m.get("method")), str(m.get("class"))) != (method, cls):
        raise AdlocError(
            f"gap {method}/{cls}: the {SCOPE_KEYS[key]} metrics are for "
            f"{m.get('method')}/{m.get('class')}"
        )
    return m


def result_key(path) -> tuple[str, str, str]:
    """``(method, scope, class)`` of a file laid out as ``.../{method}/{scope}/{class}.{ext}``
    (``results/<run>/<repeat>/metrics/...`` and ``results/<run>/<repeat>/scores/...``)."""
    p = Path(path)
    return p.parent.parent.name, p.parent.name, p.stem


def load_pairs(metric_files: Iterable, score_files: Iterable) -> list[dict]:
    """Every (method, class) pair of a per-class and a global model among the metrics and scores
    files, read with :func:`load_pair`, in (method, class) order.

    A per-class file is one whose scope folder is its class (``patchcore/hazelnut/hazelnut``); its
    global partner is ``{method}/global/{class}``, and ``{method}/unified_abs/{class}`` (the
    absolute-unified scope) joins the pair when it is among the metrics files. A per-class result
    whose global partner or scores file is missing from the inputs is an error naming the
    missing file.
    """
    metrics = {result_key(f): f for f in metric_files}
    scores = {result_key(f): f for f in score_files}
    pairs = []
    for method, scope, cls in sorted(metrics):
        if scope != cls:
            continue
        pc, gl = (method, cls, cls), (method, "global", cls)
        for key, table, what in ((gl, metrics, "metrics"), (pc, scores, "scores"), (gl, scores, "scores")):
            if key not in table:
                raise AdlocError(
                    f"gap: no {what} file for {'/'.join(key)} among the inputs (per-class "
                    f"{'/'.join(pc)} has one); the gap rule needs both models of every method and class"
                )
        ab = metrics.get((method, "unified_abs", cls))
        rt = metrics.get((method, "routed", cls))
        pairs.append(load_pair(metrics[pc], metrics[gl], scores[pc], scores[gl], ab, rt))
    return pairs


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
    check_estimate = ci_fn is None  # the real bootstrap recomputes the point gap: cross-check
    ci_fn = ci_fn or (paired_gap_ci if n_boot > 0 else None)
    metric_fns = {"auroc": auroc, "auprc": auprc}
    rows: list[dict] = []
    seen: set[tuple[str, str]] = set()
    for pair in pairs:
        pcm, glm, pcs, gls = _as_pair(pair)
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
        check_same_test_images(pcs, gls, what)
        labels = np.asarray(pcs["test_labels"]).astype(int)
        absm = _scope_metrics(pair, "unified_abs_metrics", method, cls)
        rtm = _scope_metrics(pair, "routed_metrics", method, cls)
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
            if metric in CI_METRICS and n_boot > 0:
                extra = {"stratify": True} if stratify else {}
                res = ci_fn(
                    labels, np.asarray(pcs["test_scores"], dtype=np.float64),
                    np.asarray(gls["test_scores"], dtype=np.float64),
                    metric=metric_fns[metric], n_boot=n_boot, seed=seed, alpha=alpha, **extra,
                )
                lo, hi = float(res.get("low", np.nan)), float(res.get("high", np.nan))
                est = float(res.get("estimate", np.nan))
                if check_estimate and np.isfinite([est, a, b]).all() and abs(est - (a - b)) > 1e-6:
                    raise AdlocError(
                        f"{what}: the {metric} gap from the score files ({est:.6f}) differs from "
                        f"the metrics files ({a - b:.6f}); the metrics are stale. Delete "
                        "results/metrics for this class and rerun the evaluate rule."
                    )
                row.update(
                    gap_low=lo, gap_high=hi, n_boot=int(res.get("n_boot", n_boot)),
                    n_valid=int(res.get("n_valid", n_boot)),
                    ci_excludes_zero=(bool(lo > 0 or hi < 0) if np.isfinite([lo, hi]).all()
                                      else pd.NA),
                )
            row.update(routed_gap_values(metric, row, pcm, rtm, pcs, gls, n_boot, seed, alpha,
                                         ci_fn=None if check_estimate else ci_fn, what=what))
            rows.append(row)
    df = pd.DataFrame(rows, columns=COLUMNS)
    if macro and not df.empty:
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
        df = pd.concat([df, pd.DataFrame(extra, columns=COLUMNS)], ignore_index=True)
    return _sort(df)


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


#: what the error bars of one repeat's gap figure are
ERRORBAR_NOTE = "paired bootstrap 95% interval: AUROC, AUPRC, and F1 / accuracy vs routed"

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
        from .gap_panels import plot_gap_by_class

        return plot_gap_by_class(df, groups, labels, title, points=points, errorbar_note=errorbar_note)
    has_macro = bool((df["class"] == "macro").any())
    slots = classes + (["macro"] if has_macro else [])
    width = 0.84 / max(1, len(slots))
    with style():
        fig = new_figure(max(6.0, 0.42 * len(metrics) * len(slots) + 2.6),
                         2.9 * len(methods) + 0.8)
        axes = fig.subplots(len(methods), 1, squeeze=False, sharex=True)[:, 0]
        for ax, method in zip(axes, methods):
            d = df[df["method"] == method]
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
