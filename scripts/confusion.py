"""Rule confusion: class A's global-model threshold applied to class B's normals, every pair, plus
the absolute-unified row (one threshold from the pooled validation split of every class)."""

try:  # scripts/_common.py: this checkout's src/ first on sys.path
    from _common import as_list, run_script
except ModuleNotFoundError:  # a remote module (github(...)): the installed adloc
    from adloc.workflow import as_list, run_script


def main(smk):
    from adloc.analysis import confusion_matrix, plot_confusion, savefig, write_confusion
    from adloc.analysis.confusion import confusion_inputs
    from adloc.pipeline import read_threshold

    thresholds, normals = confusion_inputs(as_list(smk.input.thresholds), as_list(smk.input.scores),
                                           smk.params.normals)
    pooled = float(read_threshold(smk.input.pooled)["threshold"]["threshold"])
    df = confusion_matrix(thresholds, normals, pooled=pooled)
    write_confusion(smk.output.table, df)
    savefig(plot_confusion(df, smk.wildcards.method, smk.params.normals), smk.output.figure)


run_script(snakemake, main)  # noqa: F821
