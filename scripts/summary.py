"""Rule summary: results/<run>/summary.md, the run as a short results section: the first
repeat's tables, and the across-repeat intervals and paired tests."""

try:  # scripts/_common.py: this checkout's src/ first on sys.path
    from _common import as_list, run_script
except ModuleNotFoundError:  # a remote module (github(...)): the installed adloc
    from adloc.workflow import as_list, run_script


def main(smk):
    from pathlib import Path

    from adloc.analysis.routing import read_routing_accuracy
    from adloc.analysis import (
        default_figures,
        embedded_class_map,
        read_bank_composition,
        read_confusion,
        read_gap_table,
        read_metrics_table,
        side_by_side,
        read_gap_across,
        read_metrics_across,
        write_summary,
    )
    from adloc.data.splits import read_splits
    from adloc.io import read_json

    cfg = smk.params.config
    repeats = list(smk.params.repeats)
    first = repeats[0]
    mt = read_metrics_table(smk.input.metrics)  # the first repeat's tables
    gap = read_gap_table(smk.input.gap)
    splits, warnings = {}, []
    for f in as_list(smk.input.splits):
        sp = read_splits(f)
        warnings += sp.get("warnings", [])
        c = sp["counts"]
        splits[Path(f).stem] = {
            "train": c["train"]["total"],
            "val_normal": c["val"]["normal"],
            "val_anomalous": c["val"]["anomalous"],
            "test_normal": c["test"]["normal"],
            "test_anomalous": c["test"]["anomalous"],
        }
    warnings += read_json(smk.input.tsne_notes, what="t-SNE notes")["warnings"]
    ctx = {
        "config": cfg,
        "metrics_table": mt,
        "gap_table": gap,
        "repeats": repeats,
        "metrics_across": read_metrics_across(smk.input.metrics_across),
        "gap_across": read_gap_across(smk.input.gap_across),
        "routing": {f: read_routing_accuracy(t) for f, t in zip(smk.params.routing_fsets, as_list(smk.input.routing))},
        "confusion": {m: read_confusion(f) for m, f in zip(cfg["methods"], as_list(smk.input.confusion))},
        "bank_composition": read_bank_composition(smk.input.composition) if smk.input.composition else None,
        "splits": splits,
        "figures": default_figures(cfg, first),
        "warnings": warnings,
    }
    if smk.input.get("shift"):  # domain shift on: rule shift_tables' lines
        ctx["shift_lines"] = Path(smk.input.shift).read_text().strip("\n").splitlines()
    if cfg["study_reference"]:
        ctx["side_by_side"] = side_by_side(mt, class_map=embedded_class_map())
    write_summary(smk.output[0], ctx)


run_script(snakemake, main)  # noqa: F821
