"""Rule fetch_dataset: download, verify and extract a public dataset archive once."""

try:  # scripts/_common.py: this checkout's src/ first on sys.path
    from _common import run_script
except ModuleNotFoundError:  # a remote module (github(...)): the installed adloc
    from adloc.workflow import run_script


def main(smk):
    from adloc.data.fetch import fetch_dataset

    p = smk.params
    fetch_dataset(
        p.source,
        p.root,
        downloads=p.downloads,
        classes=p.classes,
        url=p.url,
        sha256=p.sha256,
        mirrors=p.mirrors,
        offline=p.offline,
    )


run_script(snakemake, main)  # noqa: F821
