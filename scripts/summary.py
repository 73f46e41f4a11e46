"""Rule summary: results/summary.md, the run as a short results section."""

from _common import as_list, run_script


def main(smk):
    from pathlib import Path

    from adloc.analysis import (
        default_figures,
        embedded_class_map,
        read_bank_composition,
        read_confusion,
        read_gap_table,
        read_metrics_table,
        side_by_side,
        write_summary,
    )
    from adloc.data.splits import read_splits

    cfg = smk.params.config
    mt = read_metrics_table(smk.input.metrics)
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
    ctx = {
        "config": cfg,
        "metrics_table": mt,
        "gap_table": read_gap_table(smk.input.gap),
        "confusion": {m: read_confusion(f) for m, f in zip(cfg["methods"], as_list(smk.input.confusion))},
        "bank_composition": read_bank_composition(smk.input.composition) if smk.input.composition else None,
        "splits": splits,
        "figures": default_figures(cfg),
        "warnings": warnings,
    }
    if cfg["study_reference"]:
        ctx["side_by_side"] = side_by_side(mt, class_map=embedded_class_map())
    write_summary(smk.output[0], ctx)


run_script(snakemake, main)  # noqa: F821
