"""Rule shift_splits: one repeat's split file of a class mapped onto its shifted copy (the same
images, shifted, in the same splits and order; adloc.data.shifted.shifted_splits)."""

try:  # scripts/_common.py: this checkout's src/ first on sys.path
    from _common import run_script
except ModuleNotFoundError:  # a remote module (github(...)): the installed adloc
    from adloc.workflow import run_script


def main(smk):
    from adloc.data.shifted import read_params, shifted_splits
    from adloc.data.splits import read_splits
    from adloc.io import write_json

    rows = read_params(smk.input.params)
    out = shifted_splits(read_splits(smk.input.splits), rows, smk.params.root, smk.input.params)
    write_json(smk.output[0], out)


run_script(snakemake, main)  # noqa: F821
