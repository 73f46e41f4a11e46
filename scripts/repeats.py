"""Rule repeats: every repeat's metrics and gap rows, their across-repeat mean, sd and 95%
t-interval (over split seeds, model seeds averaged within each) with the paired t-test of each
gap, and the gap figure with the across-repeat spread."""

try:  # scripts/_common.py: this checkout's src/ first on sys.path
    from _common import as_list, run_script
except ModuleNotFoundError:  # a remote module (github(...)): the installed adloc
    from adloc.workflow import as_list, run_script


def main(smk):
    from adloc.analysis import plot_gap, read_gap_table, read_metrics_table, savefig
    from adloc.analysis.repeats import (
        gap_across_repeats,
        gap_plot_frame,
        metrics_across_repeats,
        stack_repeats,
        units,
        write_table,
    )

    names = list(smk.params.repeats)
    metrics = stack_repeats(dict(zip(names, (read_metrics_table(f) for f in as_list(smk.input.metrics)))))
    gaps = stack_repeats(dict(zip(names, (read_gap_table(f) for f in as_list(smk.input.gap)))))
    write_table(smk.output.metrics, metrics)
    write_table(smk.output.gap, gaps)
    m_across = metrics_across_repeats(metrics)
    g_across = gap_across_repeats(gaps)
    write_table(smk.output.metrics_across, m_across)
    write_table(smk.output.gap_across, g_across)
    first = gaps[gaps["repeat"] == names[0]].drop(columns="repeat")
    frame = gap_plot_frame(g_across, first)
    unit, label = units(names)
    n_units = len(set(label.values()))
    if n_units > 1:
        note = f"95% t-interval over {n_units} {unit}s, {len(names)} repeats"
        fig = plot_gap(frame, points=gaps, errorbar_note=note)
    else:
        fig = plot_gap(frame)
    savefig(fig, smk.output.figure)


run_script(snakemake, main)  # noqa: F821
