"""Rule compare: finished runs side by side in one table and one figure."""

from _common import run_script


def main(smk):
    from adloc.analysis.compare import compare_figure, compare_runs
    from adloc.analysis.tables import read_metrics_table
    from adloc.io import write_csv

    runs = list(smk.params.runs)
    tables = {r: read_metrics_table(p) for r, p in zip(runs, smk.input)}
    table = compare_runs(tables)
    write_csv(smk.output.table, table)
    compare_figure(table, runs, smk.output.figure)


run_script(snakemake, main)  # noqa: F821
