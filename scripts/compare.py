"""Rule compare: finished runs side by side in one table and one figure (a run with several
repeats shows its across-repeat means)."""

from _common import run_script


def main(smk):
    from adloc.analysis.compare import compare_figure, compare_runs
    from adloc.analysis.repeats import read_repeat_means
    from adloc.io import write_csv

    runs = list(smk.params.runs)
    tables = {r: read_repeat_means(p) for r, p in zip(runs, smk.input)}  # across-repeat means
    table = compare_runs(tables)
    write_csv(smk.output.table, table)
    compare_figure(table, runs, smk.output.figure)


run_script(snakemake, main)  # noqa: F821
