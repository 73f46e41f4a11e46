"""Rule splits: the study's train/val/test split of one class for the split seed of one repeat,
drawn from the class's index (rule index: its sha256s, bit depth and warnings are copied)."""

try:  # scripts/_common.py: this checkout's src/ first on sys.path
    from _common import run_script
except ModuleNotFoundError:  # a remote module (github(...)): the installed adloc
    from adloc.workflow import run_script


def main(smk):
    from adloc.data.splits import read_index, splits_from_index
    from adloc.io import write_json

    p = smk.params
    splits = splits_from_index(
        read_index(smk.input.index),
        p.root,
        seed=p.seed,  # the repeat's split seed
        train_fraction=p.splits["train_fraction"],
        val_anomaly_fraction=p.splits["val_anomaly_fraction"],
        stratify_by_defect=p.splits["stratify_by_defect"],
    )
    write_json(smk.output[0], splits)


run_script(snakemake, main)  # noqa: F821
