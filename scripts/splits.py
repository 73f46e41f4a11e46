"""Rule splits: scan one class folder and write the study's train/val/test split with sha256s."""

import logging

from _common import run_script

log = logging.getLogger("adloc.splits")


def main(smk):
    from adloc.data.mvtec import scan_class
    from adloc.data.splits import make_splits
    from adloc.io import write_json

    p = smk.params
    index = scan_class(p.root, smk.wildcards.cls)
    splits = make_splits(
        index,
        seed=p.splits["seed"],
        train_fraction=p.splits["train_fraction"],
        val_anomaly_fraction=p.splits["val_anomaly_fraction"],
        stratify_by_defect=p.splits["stratify_by_defect"],
        bit_depth=p.bit_depth,
    )
    for w in splits["warnings"]:  # also repeated in the summary's Warnings section
        log.warning("%s", w)
    write_json(smk.output[0], splits)


run_script(snakemake, main)  # noqa: F821
