"""Domain shift: metrics per adaptation phase, the shift cost and the per-class minus global gap.

Phases (rules/common.smk): ``clean`` (the clean chain, for reference), ``none`` (clean models
and clean thresholds on the shifted test split), ``threshold`` (clean models, thresholds
re-fitted on the shifted validation split) and ``full`` (models re-fitted on the shifted train
split, thresholds on the shifted validation split). Every phase has the three scopes of the
clean chain: per-class, model-unified (``global``), absolute-unified (``unified_abs``) and routed
(``routed``; the figures draw the first three).

- :func:`stack_phases`: one table with a ``phase`` column in front of any per-repeat table
  (the metrics tables of :mod:`.tables`, the gap tables of :mod:`.gap`); :func:`with_shift_seed`:
  each repeat's shift seed beside it (every repeat reads its own shifted copy, so the
  across-repeat intervals include the shift draw);
- :func:`shift_cost`: clean minus shifted per phase x method x scope x class x metric (positive
  = the shift costs that much), with a paired bootstrap interval for AUROC and AUPRC: the clean
  and the shifted test split hold the same images (:mod:`adloc.data.shifted`), so each resample
  draws the same images from both;
- :func:`cost_across_repeats`, :func:`by_phase_across`: across-repeat 95% t-intervals;
- :func:`plot_phases`: one method's macro metric by phase, per-class vs global;
- :func:`summary_lines`: the answers in numbers: does unification cost more under shift, and
  which phase recovers it.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import AdlocError
from ..metrics import auprc, auroc, paired_gap_ci
from .figures import method_label, new_figure, scope_label, style
from .gap import CI_METRICS, GAP_METRICS, METRIC_LABELS, THRESHOLD_METRICS
from .repeats import interval, unit_means, units

#: Phases in display order; ``clean`` is the reference.
PHASES = ("clean", "none", "threshold", "full")
PHASE_LABELS = {"clean": "clean", "none": "no adaptation", "threshold": "threshold only",
                "full": "full adaptation"}
SCOPES = ("per_class", "global", "unified_abs")
COST_COLUMNS = ["phase", "method", "scope", "class", "metric", "clean", "shifted", "cost",
                "cost_low", "cost_high", "n_boot", "n_test"]
ACROSS_COLUMNS = ["phase", "method", "scope", "class", "metric", "n_repeats", "unit", "n_units",
                  "mean", "sd", "ci_low", "ci_high"]
#: The figure's metrics: one threshold-free, one at the calibrated threshold.
FIGURE_METRICS = ("auroc", "f1")


def stack_phases(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Every phase's rows in one table, ``phase`` as the first column (phases in the given order)."""
    if not tables:
        raise AdlocError("stack_phases: no phase tables")
    parts = []
    for phase, df in tables.items():
        d = df.copy()
        d.insert(0, "phase", str(phase))
        parts.append(d)
    return pd.concat(parts, ignore_index=True)


def with_shift_seed(stacked: pd.DataFrame, seeds: Mapping[str, int]) -> pd.DataFrame:
    """A repeat-stacked table with each repeat's shift seed (``shift_seed``) after ``repeat``:
    which shifted copy its shift phases read (the clean rows' repeat's too)."""
    out = stacked.copy()
    out.insert(int(out.columns.get_loc("repeat")) + 1, "shift_seed",
               out["repeat"].map({str(k): int(v) for k, v in seeds.items()}).astype("Int64"))
    return out


def seeds_line(seeds: Mapping[str, int]) -> str:
    """The summary's line on which shifted copy each repeat read."""
    distinct = list(dict.fromkeys(int(v) for v in seeds.values()))
    shown = ", ".join(map(str, distinct[:6])) + (", ..." if len(distinct) > 6 else "")
    if len(seeds) == 1:
        return f"- Shift seed {distinct[0]} (one repeat: the intervals are bootstrap intervals over the test images)."
    return (f"- {len(distinct)} shift seed(s) over {len(seeds)} repeats ({shown}; column `shift_seed` of the "
            "tables): each repeat reads its own shifted copy, so the across-repeat intervals include the shift draw.")


def _check_pairing(clean: Mapping, shifted: Mapping, shift_path: Mapping[str, str], what: str) -> None:
    cp = [str(p) for p in np.asarray(clean["test_paths"]).astype(str)]
    sp = [str(p) for p in np.asarray(shifted["test_paths"]).astype(str)]
    want = [shift_path.get(p) for p in cp]
    if want != sp:
        raise AdlocError(
            f"{what}: the shifted scores' test images are not the clean test images shifted (in "
            "order); the shifted split files are stale. Rerun rule shift_splits and what follows."
        )
    if not np.array_equal(np.asarray(clean["test_labels"]).astype(int), np.asarray(shifted["test_labels"]).astype(int)):
        raise AdlocError(f"{what}: test labels differ between the clean and the shifted scores")


def _value(row: Mapping | pd.Series | None, metric: str) -> float:
    if row is None:
        return np.nan
    v = row.get(metric)
    return np.nan if v is None or pd.isna(v) else float(v)


def shift_cost(
    clean: pd.DataFrame,
    shifted: pd.DataFrame,
    scores: Mapping[tuple[str, str, str], tuple[Mapping, Mapping]] | None = None,
    shift_path: Mapping[str, str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    ci_fn: Callable | None = None,
) -> pd.DataFrame:
    """Clean minus shifted, one row per phase x method x scope x class x metric of
    :data:`adloc.analysis.gap.GAP_METRICS` (macro rows included: the macro rows' difference).

    Args:
        clean: one repeat's clean metrics table (:func:`adloc.analysis.tables.metrics_table`).
        shifted: that repeat's phase metrics tables stacked (:func:`stack_phases`).
        scores: ``(phase, method, model, class)`` -> ``(clean npz, shifted npz)`` (``model``
            ``per_class`` or ``global``; ``unified_abs`` and ``routed`` share the global scores) for the
            paired bootstrap of AUROC and AUPRC; None or a missing key: no interval.
        shift_path: clean test path -> shifted test path (the pairing is checked).
    """
    ci_fn = ci_fn or paired_gap_ci
    fns = {"auroc": auroc, "auprc": auprc}
    key = ["method", "scope", "class"]
    ref = {tuple(r[k] for k in key): r for _, r in clean.iterrows()}
    rows: list[dict[str, Any]] = []
    for _, r in shifted.iterrows():
        k = tuple(r[c] for c in key)
        base = ref.get(k)
        pair = None
        if scores and r["class"] != "macro":
            model_scope = "per_class" if r["scope"] == "per_class" else "global"  # the scores' model
            pair = scores.get((r["phase"], r["method"], model_scope, r["class"]))
            if pair is not None:
                _check_pairing(pair[0], pair[1], shift_path or {}, f"shift cost {r['phase']}/{'/'.join(map(str, k))}")
        for metric in GAP_METRICS:
            a, b = _value(base, metric), _value(r, metric)
            row = {"phase": r["phase"], "method": r["method"], "scope": r["scope"],
                   "class": r["class"], "metric": metric, "clean": a, "shifted": b,
                   "cost": a - b, "cost_low": np.nan, "cost_high": np.nan, "n_boot": 0,
                   "n_test": _value(r, "n_test")}
            if pair is not None and metric in CI_METRICS and n_boot > 0:
                labels = np.asarray(pair[0]["test_labels"]).astype(int)
                res = ci_fn(labels, np.asarray(pair[0]["test_scores"], np.float64),
                            np.asarray(pair[1]["test_scores"], np.float64),
                            metric=fns[metric], n_boot=n_boot, seed=seed)
                row.update(cost_low=float(res["low"]), cost_high=float(res["high"]),
                           n_boot=int(res.get("n_boot", n_boot)))
            rows.append(row)
    return pd.DataFrame(rows, columns=COST_COLUMNS)


def _across(stacked: pd.DataFrame, keys: Sequence[str], column: str) -> pd.DataFrame:
    unit, label = units(list(dict.fromkeys(stacked["repeat"])))
    rows = []
    for k, g in stacked.groupby(list(keys), sort=False):
        st = interval(unit_means(g, column, label))
        n_rep = int(np.isfinite(pd.to_numeric(g[column], errors="coerce").astype(float)).sum())
        rows.append({**dict(zip(keys, k)), "n_repeats": n_rep, "unit": unit,
                     "n_units": st["n_repeats"], "mean": st["mean"], "sd": st["sd"],
                     "ci_low": st["ci_low"], "ci_high": st["ci_high"]})
    return pd.DataFrame(rows)


def cost_across_repeats(stacked_cost: pd.DataFrame) -> pd.DataFrame:
    """Per phase x method x scope x class x metric: the across-repeat 95% t-interval of the
    shift cost (over the units of :func:`adloc.analysis.repeats.units`)."""
    return _across(stacked_cost, ["phase", "method", "scope", "class", "metric"], "cost")[ACROSS_COLUMNS]


def metrics_long(stacked_metrics: pd.DataFrame, metrics: Sequence[str] = tuple(GAP_METRICS)) -> pd.DataFrame:
    """Stacked (repeat, phase) metrics tables in long form: one row per metric value."""
    key = ["repeat", "phase", "method", "scope", "class"]
    long = stacked_metrics.melt(id_vars=key, value_vars=list(metrics), var_name="metric", value_name="value")
    return long


def metrics_by_phase_across(stacked_metrics: pd.DataFrame) -> pd.DataFrame:
    """Per phase x method x scope x class x metric: the across-repeat interval of the value."""
    long = metrics_long(stacked_metrics)
    return _across(long, ["phase", "method", "scope", "class", "metric"], "value")[ACROSS_COLUMNS]


def _macro(across: pd.DataFrame, method: str, scope: str, metric: str) -> dict[str, float]:
    g = across[(across["method"] == method) & (across["scope"] == scope)
               & (across["class"] == "macro") & (across["metric"] == metric)]
    return {str(r["phase"]): r for _, r in g.iterrows()}


def plot_phases(across: pd.DataFrame, method: str, metrics: Sequence[str] = FIGURE_METRICS):
    """One method's macro metric by phase (clean, none, threshold, full), one line per scope:
    per-class, global (model-unified) and, for threshold metrics, absolute-unified (for
    threshold-free metrics it equals global). Error bars: the across-repeat 95% t-interval when
    there are two or more units."""
    with style():
        fig = new_figure(4.2 * len(metrics), 3.8)
        axes = fig.subplots(1, len(metrics), squeeze=False)[0]
        x = np.arange(len(PHASES))
        markers = {"per_class": "o", "global": "s", "unified_abs": "^"}
        for ax, metric in zip(axes, metrics):
            scopes = SCOPES if metric in THRESHOLD_METRICS else SCOPES[:2]
            for j, scope in enumerate(scopes):
                by = _macro(across, method, scope, metric)
                y = np.array([_value(by.get(p), "mean") for p in PHASES])
                lo = np.array([_value(by.get(p), "ci_low") for p in PHASES])
                hi = np.array([_value(by.get(p), "ci_high") for p in PHASES])
                xs = x + (j - (len(scopes) - 1) / 2) * 0.06
                ax.plot(xs, y, marker=markers[scope], label=scope_label(scope))
                ok = np.isfinite(lo) & np.isfinite(hi)
                if ok.any():
                    ax.errorbar(xs[ok], y[ok], yerr=[y[ok] - lo[ok], hi[ok] - y[ok]], fmt="none",
                                ecolor="0.3", capsize=2, lw=0.8)
            ax.set_xticks(x, [PHASE_LABELS[p].replace(" ", "\n") for p in PHASES])
            ax.set_xlim(-0.4, len(PHASES) - 0.6)
            ax.set_ylabel(f"macro {METRIC_LABELS.get(metric, metric)} (test)")
            note = "" if metric in THRESHOLD_METRICS else " (absolute-unified = global)"
            ax.set_title(METRIC_LABELS.get(metric, metric) + note)
        handles: dict = {}
        for ax in axes:  # one legend for every panel, below them
            for h, lab in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(lab, h)
        fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                   ncol=len(handles), frameon=False)
        fig.suptitle(f"{method_label(method)} under domain shift: macro over classes, by phase")
    return fig


def _fmt(x: float, sign: bool = False) -> str:
    return "N/A" if not np.isfinite(x) else (f"{x:+.4f}" if sign else f"{x:.4f}")


def summary_lines(metrics_across: pd.DataFrame, methods: Sequence[str], metric: str = "auroc",
                  threshold_metric: str = "f1") -> list[str]:
    """Markdown bullet lines per method: the per-class minus global gap (macro ``metric``) clean
    and in each phase (does unification cost more under shift?), the shift cost of each scope
    per phase, and the phase with the largest gain over no adaptation (which phase recovers
    it?); the same for ``threshold_metric`` against one threshold (absolute-unified)."""
    lines = []
    for m in methods:
        name = method_label(m)
        for met, other in ((metric, "global"), (threshold_metric, "unified_abs")):
            pc, gl = _macro(metrics_across, m, "per_class", met), _macro(metrics_across, m, other, met)
            gap = {p: _value(pc.get(p), "mean") - _value(gl.get(p), "mean") for p in PHASES}
            if not np.isfinite(gap["clean"]) and not np.isfinite(gap["none"]):
                continue
            label = METRIC_LABELS.get(met, met)
            more = gap["none"] - gap["clean"]
            verdict = ("costs more under shift" if more > 0 else
                       "costs less under shift" if more < 0 else "costs the same under shift")
            shifted_gaps = {p: gap[p] for p in PHASES[1:] if np.isfinite(gap[p])}
            least = min(shifted_gaps, key=shifted_gaps.get) if shifted_gaps else None
            lines.append(
                f"- {name}, macro {label}, per-class minus {scope_label(other)}: clean "
                f"{_fmt(gap['clean'], True)}, no adaptation {_fmt(gap['none'], True)}, threshold "
                f"only {_fmt(gap['threshold'], True)}, full adaptation {_fmt(gap['full'], True)}: "
                f"unification {verdict} ({_fmt(more, True)} without adaptation)"
                + (f"; the per-class advantage is smallest with {PHASE_LABELS[least]}." if least else ".")
            )
            lines.append(_recovery_line(name, scope_label(other), label, gl))
    return lines


def _recovery_line(name: str, scope: str, label: str, by: Mapping) -> str:
    """One scope's macro value clean and per phase, and which phase recovers most of the shift
    cost (the largest gain over no adaptation)."""
    clean = _value(by.get("clean"), "mean")
    val = {p: _value(by.get(p), "mean") for p in PHASES[1:]}
    cost = {p: clean - v for p, v in val.items()}
    gain = {p: val[p] - val["none"] for p in ("threshold", "full") if np.isfinite(val[p] - val["none"])}
    best = max(gain, key=gain.get) if gain else None
    text = (f"- {name}, {scope} macro {label}: clean {_fmt(clean)}; no adaptation "
            f"{_fmt(val['none'])}, threshold only {_fmt(val['threshold'])}, full adaptation "
            f"{_fmt(val['full'])} (shift cost {_fmt(cost['none'], True)} / "
            f"{_fmt(cost['threshold'], True)} / {_fmt(cost['full'], True)}): ")
    if best is None or gain[best] <= 0:
        return text + "no phase improves on no adaptation."
    share = (f", {100 * gain[best] / cost['none']:.0f}% of the no-adaptation shift cost"
             if np.isfinite(cost["none"]) and cost["none"] > 0 else "")
    return text + f"{PHASE_LABELS[best]} recovers most ({_fmt(gain[best], True)}{share})."


__all__ = [
    "PHASES", "PHASE_LABELS", "stack_phases", "with_shift_seed", "seeds_line", "shift_cost", "cost_across_repeats",
    "metrics_long", "metrics_by_phase_across", "plot_phases", "summary_lines",
]
