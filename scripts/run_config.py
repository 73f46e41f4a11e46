"""Rule run_config: results/<run>/config.json, the run's validated config (rule compare reads
it to tell which dataset each run is on)."""

try:  # scripts/_common.py: this checkout's src/ first on sys.path
    from _common import run_script
except ModuleNotFoundError:  # a remote module (github(...)): the installed adloc
    from adloc.workflow import run_script


def main(smk):
    from adloc.io import write_json

    write_json(smk.output[0], dict(smk.params.config))


run_script(snakemake, main)  # noqa: F821
