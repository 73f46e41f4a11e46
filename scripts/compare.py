"""Rule compare: finished runs side by side in one table and one figure (a run with several
repeats shows its across-repeat means), with the published reference numbers that apply to
every run (their settings, citations and URLs in published.csv)."""

try:  # scripts/_common.py: this checkout's src/ first on sys.path
    from _common import run_script
except ModuleNotFoundError:  # a remote module (github(...)): the installed adloc
    from adloc.workflow import run_script


def main(smk):
    import logging

    import pandas as pd

    from adloc.analysis.anchors import PREFIX, SOURCE_COLUMNS, anchor_sources, anchors_for, common_dataset
    from adloc.analysis.compare import compare_figure, compare_runs
    from adloc.analysis.repeats import read_repeat_means
    from adloc.io import read_json, write_csv

    runs = list(smk.params.runs)
    tables = {r: read_repeat_means(p) for r, p in zip(runs, smk.input.tables)}  # across-repeat means
    configs = {r: read_json(p, what="run config") if p else None
               for r, p in zip(runs, smk.params.configs)}
    dataset, why = common_dataset(configs)
    anchors = None
    if dataset is None:
        logging.getLogger("adloc").info("compare: no published numbers: %s", why)
    else:
        classes = sorted({c for t in tables.values() for c in t["class"] if c != "macro"})
        anchors = anchors_for(dataset, classes)
    table = compare_runs(tables, anchors=anchors)
    write_csv(smk.output.table, table)
    shown = [c[len(PREFIX):] for c in table.columns if str(c).startswith(PREFIX)]
    sources = anchor_sources(anchors) if anchors is not None else pd.DataFrame(columns=SOURCE_COLUMNS)
    write_csv(smk.output.published, sources[sources["source"].isin(shown)])
    compare_figure(table, runs, smk.output.figure)


run_script(snakemake, main)  # noqa: F821
