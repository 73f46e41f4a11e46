"""Rule shift_examples: a few test images of one class clean and shifted, the shifted ground truth,
and every method's per-class and global anomaly maps clean and in each adaptation phase
(adloc.analysis.shift_examples). The images are rule examples' (the same selection, first repeat)."""

from pathlib import Path

import numpy as np

try:  # scripts/_common.py: this checkout's src/ first on sys.path
    from _common import run_script
except ModuleNotFoundError:  # a remote module (github(...)): the installed adloc
    from adloc.workflow import run_script


def main(smk):
    from adloc.analysis import savefig, select_examples
    from adloc.analysis.figures import method_label
    from adloc.analysis.shift import PHASE_LABELS
    from adloc.analysis.shift_examples import shift_examples_figure
    from adloc.data.shifted import shifted_preprocess
    from adloc.data.splits import check_unchanged, read_splits
    from adloc.data.transforms import Preprocess, load_split_masks
    from adloc.errors import AdlocError
    from adloc.io import read_json
    from adloc.pipeline import display_images
    from adloc.scores import read_scores

    p, cls = smk.params, smk.wildcards.cls
    pre, spre = Preprocess.from_config(p.preprocess), Preprocess.from_config(shifted_preprocess(p.preprocess))
    clean_splits, shifted_splits = read_splits(smk.input.splits), read_splits(smk.input.shifted_splits)
    check_unchanged(p.root, clean_splits, smk.input.splits, names=("test",))
    check_unchanged(p.shift_root, shifted_splits, smk.input.shifted_splits, names=("test",))
    loaded = {}

    def scores(path):
        if path not in loaded:
            loaded[path] = read_scores(path)
        return loaded[path]

    lay = p.layout
    first = scores(next(iter(lay.values()))["per_class"]["clean"]["scores"])  # rule examples' choice
    idx = select_examples(first["test_labels"], p.n, seed=0)
    clean_paths = [str(first["test_paths"][i]) for i in idx]
    by_clean = {e["path"]: e for e in clean_splits["splits"]["test"]}
    by_shift = {e["shift_of"]: e for e in shifted_splits["splits"]["test"]}
    chosen, chosen_shifted = [by_clean[q] for q in clean_paths], [by_shift[q] for q in clean_paths]
    maps, values, clean_columns = {}, {}, []
    for m, models in lay.items():
        for model, phases in models.items():
            group = "per-class" if model == "per_class" else "global"
            for phase, files in phases.items():
                d = scores(files["scores"])
                want = clean_paths if phase == "clean" else [e["path"] for e in chosen_shifted]
                if [str(d["test_paths"][i]) for i in idx] != want:
                    raise AdlocError(f"scores file {files['scores']}: its test images are not the split files' (stale); rerun rule shift_splits and what follows.")
                thr = float(read_json(files["metrics"], what="metrics file")["threshold"]["threshold"])
                col = f"{method_label(m)}\n{PHASE_LABELS[phase]}"
                if phase == "clean" and col not in clean_columns:
                    clean_columns.append(col)
                maps.setdefault(group, {})[col] = np.asarray(d["test_maps"])[idx] / thr
                values.setdefault(group, {})[col] = (np.asarray(d["test_scores"])[idx] / thr).tolist()
    fig = shift_examples_figure(
        display_images(p.root, chosen, pre, bit_depth=clean_splits.get("bit_depth")),
        display_images(p.shift_root, chosen_shifted, spre),
        load_split_masks(p.root, chosen, pre),
        load_split_masks(p.shift_root, chosen_shifted, spre),
        maps, values,
        titles=[f"{e['defect']} · {Path(e['path']).name}" for e in chosen],
        clean_columns=clean_columns,
        suptitle=f"{cls} under domain shift (shifted copy {Path(p.shift_root).name})\nclean and shifted test images, "
        "shifted ground truth; per-class and global anomaly maps, clean and by adaptation phase",
    )
    savefig(fig, smk.output[0])


run_script(snakemake, main)  # noqa: F821
