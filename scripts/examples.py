"""Rule examples: a few test images of one class with masks and every model's anomaly map."""

from pathlib import Path

import numpy as np

try:  # scripts/_common.py: this checkout's src/ first on sys.path
    from _common import as_list, run_script
except ModuleNotFoundError:  # a remote module (github(...)): the installed adloc
    from adloc.workflow import as_list, run_script


def main(smk):
    from adloc.analysis import examples_figure, savefig, select_examples
    from adloc.analysis.figures import method_label
    from adloc.data.splits import check_unchanged, read_splits
    from adloc.data.transforms import Preprocess, load_split_masks
    from adloc.io import read_json
    from adloc.pipeline import display_images
    from adloc.scores import read_scores

    p = smk.params
    cls = smk.wildcards.cls
    pre = Preprocess.from_config(p.preprocess)
    runs, thresholds = {}, {}
    for f, mf in zip(as_list(smk.input.scores), as_list(smk.input.metrics)):
        method, scope = Path(f).parent.parent.name, Path(f).parent.name
        label = f"{method_label(method)} {'global' if scope == 'global' else 'per-class'}"
        runs[label] = read_scores(f)
        thresholds[label] = read_json(mf, what="metrics file")["threshold"]["threshold"]
    first = next(iter(runs.values()))
    idx = select_examples(first["test_labels"], p.n, seed=0)
    paths = [str(first["test_paths"][i]) for i in idx]
    splits = read_splits(smk.input.splits)
    check_unchanged(p.root, splits, smk.input.splits, names=("test",))  # images and masks drawn
    entries = {e["path"]: e for e in splits["splits"]["test"]}
    chosen = [entries[q] for q in paths]
    fig = examples_figure(
        display_images(p.root, chosen, pre, bit_depth=splits.get("bit_depth")),
        load_split_masks(p.root, chosen, pre),
        {k: v["test_maps"][idx] for k, v in runs.items()},
        titles=[f"{e['defect']} · {Path(e['path']).name}" for e in chosen],
        scores={k: np.asarray(v["test_scores"])[idx].tolist() for k, v in runs.items()},
        suptitle=f"{cls}: test images, ground truth, per-class and global anomaly maps (score / threshold)",
        thresholds=thresholds,
    )
    savefig(fig, smk.output[0])


run_script(snakemake, main)  # noqa: F821
