"""Rule shift_tables: the domain-shift tables, one figure per method and the summary's lines
(adloc.analysis.shift) from every repeat's clean and per-phase metrics and gap tables and the
clean / shifted score pairs."""

try:  # scripts/_common.py: this checkout's src/ first on sys.path
    from _common import run_script
except ModuleNotFoundError:  # a remote module (github(...)): the installed adloc
    from adloc.workflow import run_script


def main(smk):
    import pandas as pd

    from adloc.analysis import read_gap_table, read_metrics_table, savefig
    from adloc.analysis import shift as S
    from adloc.analysis.repeats import gap_across_repeats, stack_repeats, write_table
    from adloc.data.shifted import check_seed_spacing, path_map, read_params
    from adloc.io import write_text
    from adloc.scores import read_scores

    lay, boot = smk.params.layout, smk.params.bootstrap
    seeds = {rep: d["seed"] for rep, d in lay["repeats"].items()}
    params = {f: (cls, read_params(f)) for d in lay["repeats"].values() for cls, f in d["params"].items()}
    for cls, rows in params.values():  # each repeat's own shift draw: the seeds' draws never overlap
        check_seed_spacing(seeds.values(), len(rows), f"class {cls}")
    metrics, gaps, costs = {}, {}, {}
    for rep, d in lay["repeats"].items():
        shift_path = {}
        for cls, f in d["params"].items():
            shift_path.update(path_map(params[f][1], cls, f))
        tables = {p: read_metrics_table(t["metrics"]) for p, t in d["tables"].items()}
        metrics[rep] = S.stack_phases(tables)
        gaps[rep] = S.stack_phases({p: read_gap_table(t["gap"]) for p, t in d["tables"].items()})
        scores = {tuple(k[:4]): (read_scores(k[4], "clean scores"), read_scores(k[5], "shifted scores")) for k in d["pairs"]}
        shifted = S.stack_phases({p: t for p, t in tables.items() if p != "clean"})
        costs[rep] = S.shift_cost(tables["clean"], shifted, scores, shift_path, n_boot=boot["n"], seed=boot["seed"])
    m_all, g_all, c_all = (stack_repeats(x) for x in (metrics, gaps, costs))
    for out, table in ((smk.output.metrics, m_all), (smk.output.gap, g_all), (smk.output.cost, c_all)):
        write_table(out, S.with_shift_seed(table, seeds))
    m_across = S.metrics_by_phase_across(m_all)
    write_table(smk.output.metrics_across, m_across)
    write_table(smk.output.cost_across, S.cost_across_repeats(c_all))
    g_across = []
    for phase, g in g_all.groupby("phase", sort=False):
        a = gap_across_repeats(g.drop(columns="phase"))
        a.insert(0, "phase", phase)
        g_across.append(a)
    write_table(smk.output.gap_across, pd.concat(g_across, ignore_index=True))
    for method, out in zip(smk.params.methods, smk.output.figures):
        savefig(S.plot_phases(m_across, method), out)
    lines = [S.seeds_line(seeds)] + S.summary_lines(m_across, smk.params.methods)
    # the study's published shift numbers beside ours (empty table unless study_reference is on)
    from adloc.analysis.figures import method_label
    from adloc.analysis.study_reference import embedded_class_map
    from adloc.analysis.study_shift import COLUMNS, shift_side_by_side, side_by_side_lines

    sbs = shift_side_by_side(m_all, class_map=embedded_class_map()) if smk.params.study_reference else pd.DataFrame(columns=COLUMNS)
    write_table(smk.output.study, sbs)
    lines += side_by_side_lines(sbs, method_label)
    write_text(smk.output.summary, "\n".join(lines) + "\n")


run_script(snakemake, main)  # noqa: F821
