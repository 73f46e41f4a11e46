"""Rule gap: per-class minus global model, with paired bootstrap intervals, table + figure."""

from pathlib import Path

from _common import as_list, run_script


def main(smk):
    from adloc.analysis import gap_table, load_pair, plot_gap, savefig, write_gap_table

    def by_name(files):
        return {Path(f).parent.parent.name + "/" + Path(f).parent.name + "/" + Path(f).stem: f for f in files}

    metrics = by_name(as_list(smk.input.metrics))
    scores = by_name(as_list(smk.input.per_class) + as_list(smk.input.unified))
    pairs = []
    for key in sorted(metrics):
        method, scope, cls = key.split("/")
        if scope != cls:
            continue
        g = f"{method}/global/{cls}"
        pairs.append(load_pair(metrics[key], metrics[g], scores[key], scores[g]))
    boot = smk.params.bootstrap
    df = gap_table(pairs, n_boot=boot["n"], seed=boot["seed"])
    write_gap_table(smk.output.table, df)
    savefig(plot_gap(df), smk.output.figure)


run_script(snakemake, main)  # noqa: F821
