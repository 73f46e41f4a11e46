"""Rule gap: per-class minus global model in one repeat, with paired bootstrap intervals (the
figure, across repeats, comes from rule repeats)."""

try:  # scripts/_common.py: this checkout's src/ first on sys.path
    from _common import as_list, run_script
except ModuleNotFoundError:  # a remote module (github(...)): the installed adloc
    from adloc.workflow import as_list, run_script


def main(smk):
    from adloc.analysis import gap_table, load_pairs, write_gap_table

    scores = as_list(smk.input.per_class) + as_list(smk.input.unified)
    pairs = load_pairs(as_list(smk.input.metrics), scores)
    boot = smk.params.bootstrap
    df = gap_table(pairs, n_boot=boot["n"], seed=boot["seed"])
    write_gap_table(smk.output.table, df)


run_script(snakemake, main)  # noqa: F821
