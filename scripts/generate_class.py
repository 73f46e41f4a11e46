"""Rule generate_class: write one class of the embedded synthetic MVTec-format dataset."""

from pathlib import Path

try:  # scripts/_common.py: this checkout's src/ first on sys.path
    from _common import run_script
except ModuleNotFoundError:  # a remote module (github(...)): the installed adloc
    from adloc.workflow import run_script


def main(smk):
    from adloc.data.synthetic import generate_class, resolve_counts

    out = Path(smk.output[0])
    syn = smk.params.synthetic
    cls = smk.wildcards.cls
    generate_class(
        out.parent,
        cls,
        counts=resolve_counts(syn["counts"], cls),
        image_size=syn["image_size"],
        seed=syn["seed"],
    )


run_script(snakemake, main)  # noqa: F821
