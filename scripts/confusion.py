"""Rule confusion: class A's global-model threshold applied to class B's normals, every pair, plus
the absolute-unified row (one threshold from the pooled validation split of every class)."""

from pathlib import Path

try:  # scripts/_common.py: this checkout's src/ first on sys.path
    from _common import as_list, run_script
except ModuleNotFoundError:  # a remote module (github(...)): the installed adloc
    from adloc.workflow import as_list, run_script


def main(smk):
    from adloc.analysis import confusion_matrix, normal_scores_from_npz, plot_confusion, savefig, write_confusion
    from adloc.io import load_npz
    from adloc.pipeline import read_threshold

    thresholds, normals = {}, {}
    for tf, sf in zip(as_list(smk.input.thresholds), as_list(smk.input.scores)):
        cls = Path(tf).stem
        assert Path(sf).stem == cls, (tf, sf)
        thresholds[cls] = float(read_threshold(tf)["threshold"]["threshold"])
        normals[cls] = normal_scores_from_npz(load_npz(sf, what="scores file"), smk.params.normals)
    pooled = float(read_threshold(smk.input.pooled)["threshold"]["threshold"])
    df = confusion_matrix(thresholds, normals, pooled=pooled)
    write_confusion(smk.output.table, df)
    savefig(plot_confusion(df, smk.wildcards.method, smk.params.normals), smk.output.figure)


run_script(snakemake, main)  # noqa: F821
