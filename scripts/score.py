"""Rules score / score_global: image scores and test anomaly maps of one model on val and test.

``score`` handles one per-class model and its class; ``score_global`` loads the global model
once and writes one scores file per class (outputs, inputs and classes in the same order). A
split's images are the rows of the class's features that the repeat's split file lists.
"""

import logging
import time

import numpy as np

try:  # scripts/_common.py: this checkout's src/ first on sys.path
    from _common import as_list, run_script
except ModuleNotFoundError:  # a remote module (github(...)): the installed adloc
    from adloc.workflow import as_list, run_script

log = logging.getLogger("adloc.score")


def main(smk):
    from adloc.data.splits import read_splits
    from adloc.features import load_features
    from adloc.io import json_text, save_npz
    from adloc.models import load_model
    from adloc.pipeline import split_labels
    from adloc.runtime import device_label, resolve_device

    device = resolve_device(smk.params.device)
    model = load_model(smk.wildcards.method, smk.input.model, device=str(device))
    provenance = np.array(json_text({**model.provenance, "score_device": device_label(device)}, indent=None))
    kw = dict(smk.params.predict)  # the method's predict options (adloc.models.registry)
    for k, out in enumerate(smk.output):
        splits = read_splits(as_list(smk.input.splits)[k])
        features_file = as_list(smk.input.features)[k]
        arrays = {"provenance": provenance}
        for split in smk.params.splits:
            fs = load_features(features_file, paths=[e["path"] for e in splits["splits"][split]])
            t0 = time.perf_counter()
            scores, maps = model.predict(fs, **kw)
            log.info("%s %s: %d images scored in %.2f s", splits["class"], split, len(fs.paths), time.perf_counter() - t0)
            arrays[f"{split}_scores"] = np.asarray(scores, dtype=np.float32)
            arrays[f"{split}_paths"] = np.asarray(fs.paths, dtype=str)
            arrays[f"{split}_labels"] = split_labels(splits, split, fs.paths)
            if split == "test":
                arrays["test_maps"] = np.asarray(maps, dtype=np.float32)
        save_npz(out, **arrays)


run_script(snakemake, main)  # noqa: F821
