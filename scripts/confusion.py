"""Rule confusion: class A's global-model threshold applied to class B's normals, every pair."""

from pathlib import Path

from _common import as_list, run_script


def main(smk):
    from adloc.analysis import confusion_matrix, normal_scores_from_npz, plot_confusion, savefig, write_confusion
    from adloc.io import load_npz, read_json

    thresholds, normals = {}, {}
    for mf, sf in zip(as_list(smk.input.metrics), as_list(smk.input.scores)):
        cls = Path(mf).stem
        assert Path(sf).stem == cls, (mf, sf)
        thresholds[cls] = float(read_json(mf, what="metrics file")["threshold"]["threshold"])
        normals[cls] = normal_scores_from_npz(load_npz(sf, what="scores file"), smk.params.normals)
    df = confusion_matrix(thresholds, normals)
    write_confusion(smk.output.table, df)
    savefig(plot_confusion(df, smk.wildcards.method, smk.params.normals), smk.output.figure)


run_script(snakemake, main)  # noqa: F821
