"""Rule fetch_weights: download one backbone's ImageNet weights into the library's cache."""

try:  # scripts/_common.py: this checkout's src/ first on sys.path
    from _common import run_script
except ModuleNotFoundError:  # a remote module (github(...)): the installed adloc
    from adloc.workflow import run_script


def main(smk):
    from adloc.io import write_json
    from adloc.weights import fetch_imagenet_weights

    write_json(smk.output[0], fetch_imagenet_weights(smk.wildcards.backbone))


run_script(snakemake, main)  # noqa: F821
