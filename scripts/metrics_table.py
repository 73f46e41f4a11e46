"""Rule metrics_table: one row per method x scope x class, plus macro averages."""

try:  # scripts/_common.py: this checkout's src/ first on sys.path
    from _common import as_list, run_script
except ModuleNotFoundError:  # a remote module (github(...)): the installed adloc
    from adloc.workflow import as_list, run_script


def main(smk):
    from adloc.analysis import write_metrics_table
    from adloc.io import read_json

    write_metrics_table(smk.output[0], [read_json(f, what="metrics file") for f in as_list(smk.input)])


run_script(snakemake, main)  # noqa: F821
