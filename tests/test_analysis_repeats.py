"""adloc.analysis.repeats: across-repeat mean, sd, t-interval and the paired test of the gaps."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from adloc.analysis.figures import savefig
from adloc.analysis.gap_panels import plot_gap
from adloc.analysis.repeats import (
    GAP_COLUMNS, METRICS_COLUMNS, TEST_SENTENCE, gap_across_repeats, gap_plot_frame, interval,
    metrics_across_repeats, read_gap_across, read_metrics_across, stack_repeats, summary_lines,
    write_table,
)
from adloc.analysis.tables import COLUMNS


def test_interval_is_the_student_t_interval():
    v = [0.8, 0.9, 0.85, 0.95]
    got = interval(v)
    lo, hi = stats.t.interval(0.95, 3, loc=np.mean(v), scale=stats.sem(v))
    assert got["n_repeats"] == 4 and got["mean"] == pytest.approx(np.mean(v))
    assert got["sd"] == pytest.approx(np.std(v, ddof=1))
    assert (got["ci_low"], got["ci_high"]) == (pytest.approx(lo), pytest.approx(hi))
    one = interval([0.7, np.nan])  # one defined value: mean only, the spread is N/A (not 0)
    assert one["n_repeats"] == 1 and one["mean"] == 0.7
    assert np.isnan(one["sd"]) and np.isnan(one["ci_low"]) and np.isnan(one["ci_high"])
    assert np.isnan(interval([])["mean"])


def _metrics(auroc, f1):
    rows = []
    for scope in ("per_class", "global", "unified_abs"):
        for cls in ("a", "macro"):
            r = {c: np.nan for c in COLUMNS}
            r.update(method="padim", scope=scope, **{"class": cls}, auroc=auroc, f1=f1, threshold=1.0)
            rows.append(r)
    return pd.DataFrame(rows, columns=COLUMNS)


def _gap(pc, gl, ab):
    rows = []
    for cls in ("a", "macro"):
        for metric in ("auroc", "f1"):
            rows.append({"method": "padim", "class": cls, "metric": metric, "per_class": pc,
                         "global": gl, "gap": pc - gl, "unified_abs": ab if metric == "f1" else gl,
                         "gap_abs": pc - (ab if metric == "f1" else gl)})
    return pd.DataFrame(rows)


def test_metrics_across_repeats(tmp_path):
    st = stack_repeats({"s1-m0": _metrics(0.8, 0.5), "s2-m0": _metrics(0.9, 0.7)})
    assert list(st.columns[:2]) == ["repeat", "method"] and len(st) == 12
    df = metrics_across_repeats(st)
    assert list(df.columns) == METRICS_COLUMNS
    r = df[(df["scope"] == "global") & (df["class"] == "a") & (df["metric"] == "auroc")].iloc[0]
    assert r["n_repeats"] == 2 and r["mean"] == pytest.approx(0.85)
    assert r["sd"] == pytest.approx(np.std([0.8, 0.9], ddof=1))
    pix = df[(df["metric"] == "pixel_auroc")]
    assert (pix["n_repeats"] == 0).all() and pix["mean"].isna().all()  # N/A stays N/A
    write_table(tmp_path / "m.csv", df)
    back = read_metrics_across(tmp_path / "m.csv")
    pd.testing.assert_frame_equal(back, df, check_dtype=False)


def test_gap_across_repeats_paired_test(tmp_path):
    pcs, gls, abs_ = [0.9, 0.92, 0.88, 0.91], [0.8, 0.85, 0.79, 0.8], [0.6, 0.62, 0.55, 0.6]
    st = stack_repeats({f"s{i}-m0": _gap(p, g, a) for i, (p, g, a) in enumerate(zip(pcs, gls, abs_))})
    df = gap_across_repeats(st)
    assert list(df.columns) == GAP_COLUMNS
    f1 = df[(df["class"] == "a") & (df["metric"] == "f1")].set_index("versus")
    assert set(f1.index) == {"global", "unified_abs"}
    assert df[(df["metric"] == "auroc") & (df["versus"] == "unified_abs")].empty
    res = stats.ttest_rel(pcs, gls)
    assert f1.loc["global", "p_value"] == pytest.approx(res.pvalue)
    assert f1.loc["global", "t_statistic"] == pytest.approx(res.statistic)
    assert bool(f1.loc["global", "holds"]) is True
    assert f1.loc["unified_abs", "mean"] == pytest.approx(np.mean(np.subtract(pcs, abs_)))
    write_table(tmp_path / "g.csv", df)
    back = read_gap_across(tmp_path / "g.csv")
    assert back["holds"].dtype == "boolean" and back["holds"].tolist() == df["holds"].tolist()
    lines = "\n".join(summary_lines(metrics_across_repeats(stack_repeats(
        {"s0-m0": _metrics(0.8, 0.5), "s1-m0": _metrics(0.9, 0.7)})), df, ["s0-m0", "s1-m0"]))
    assert TEST_SENTENCE in lines and "testable per-class gaps hold across repeats" in lines
    frame = gap_plot_frame(df, st[st["repeat"] == "s0-m0"])
    assert frame.set_index(["class", "metric"]).loc[("a", "f1"), "gap"] == pytest.approx(
        np.mean(np.subtract(pcs, gls)))
    savefig(plot_gap(frame, points=st, errorbar_note="95% t-interval across 4 repeats"),
            tmp_path / "gap.png")


def test_one_repeat_is_not_applicable():
    st = stack_repeats({"s42-m0": _gap(0.9, 0.8, 0.6)})
    df = gap_across_repeats(st)
    assert df["p_value"].isna().all() and df["holds"].isna().all() and df["sd"].isna().all()
    text = "\n".join(summary_lines(metrics_across_repeats(stack_repeats({"s42-m0": _metrics(0.8, 0.5)})),
                                   df, ["s42-m0"]))
    assert "One repeat (s42-m0): no across-repeat spread, interval or paired test" in text
    assert "±" not in text  # no table of N/A cells
    # with one repeat the figure shows that repeat's own gaps
    assert gap_plot_frame(df, st).equals(st)


def test_repeat_means_for_comparing_runs(tmp_path):
    from adloc.analysis.repeats import read_repeat_means

    st = stack_repeats({"s1-m0": _metrics(0.8, 0.5), "s2-m0": _metrics(0.9, 0.7)})
    write_table(tmp_path / "m.csv", st)
    df = read_repeat_means(tmp_path / "m.csv")
    assert len(df) == 6 and list(df.columns) == COLUMNS
    assert df["auroc"].tolist() == pytest.approx([0.85] * 6)
    one = stack_repeats({"s1-m0": _metrics(0.8, 0.5)})
    write_table(tmp_path / "one.csv", one)
    assert read_repeat_means(tmp_path / "one.csv")["f1"].tolist() == pytest.approx([0.5] * 6)


def test_split_seed_is_the_unit_and_many_gaps_are_adjusted():
    """Repeats sharing a split seed are averaged first (they share their images): 2 split seeds x
    2 model seeds are 2 units, not 4; with one split seed the model seeds are the units. The
    'holds' verdict uses Benjamini-Hochberg adjusted p-values over every tested gap."""
    from adloc.analysis.repeats import units

    vals = {"s1-m0": (0.90, 0.80), "s1-m1": (0.94, 0.80), "s2-m0": (0.80, 0.78), "s2-m1": (0.82, 0.70)}
    st = stack_repeats({r: _gap(pc, gl, gl) for r, (pc, gl) in vals.items()})
    assert units(list(vals))[0] == "split seed"
    row = gap_across_repeats(st).set_index(["class", "metric", "versus"]).loc[("a", "auroc", "global")]
    split_means = [np.mean([0.10, 0.14]), np.mean([0.02, 0.12])]
    assert row["unit"] == "split seed" and row["n_units"] == 2 and row["n_repeats"] == 4
    assert row["mean"] == pytest.approx(np.mean(split_means))
    assert row["sd"] == pytest.approx(np.std(split_means, ddof=1))
    res = stats.ttest_rel([0.92, 0.81], [0.80, 0.74])  # the split seeds' paired means
    assert row["p_value"] == pytest.approx(res.pvalue)
    m = metrics_across_repeats(stack_repeats({r: _metrics(pc, 0.5) for r, (pc, _) in vals.items()}))
    au = m[(m["class"] == "a") & (m["metric"] == "auroc") & (m["scope"] == "global")].iloc[0]
    assert au["n_units"] == 2 and au["mean"] == pytest.approx(np.mean([0.92, 0.81]))
    one_split = units(["s42-m0", "s42-m1", "s42-m2"])
    assert one_split == ("model seed", {"s42-m0": "m0", "s42-m1": "m1", "s42-m2": "m2"})

    # Benjamini-Hochberg: p = 0.01 alone holds; among many larger p-values it may not
    pcs, gls = [0.9, 0.92, 0.88, 0.91, 0.93], [0.8, 0.85, 0.79, 0.8, 0.86]
    df = gap_across_repeats(stack_repeats({f"s{i}-m0": _gap(p, g, g) for i, (p, g) in enumerate(zip(pcs, gls))}))
    tested = df[df["p_value"].notna()]
    assert np.allclose(tested["p_adjusted"], stats.false_discovery_control(tested["p_value"], method="bh"))
    assert (tested["holds"] == (tested["p_adjusted"] < 0.05)).all()
    assert (df.loc[df["p_value"].isna(), "holds"].isna()).all()
