"""Rule score: image scores and anomaly maps of one model on one class's val and test splits."""

import json
import logging
import time

import numpy as np

from _common import run_script

log = logging.getLogger("adloc.score")


def main(smk):
    from adloc.features import load_features
    from adloc.data.splits import read_splits
    from adloc.io import save_npz
    from adloc.models import load_model
    from adloc.pipeline import split_labels
    from adloc.runtime import resolve_device

    splits = read_splits(smk.input.splits)
    model = load_model(smk.wildcards.method, smk.input.model, device=resolve_device(smk.params.device))
    arrays = {"provenance": np.array(json.dumps(model.provenance, sort_keys=True))}
    for split in ("val", "test", "train"):
        if split not in smk.input.keys():
            continue
        fs = load_features(smk.input[split])
        t0 = time.perf_counter()
        scores, maps = model.predict(fs)
        log.info("%s: %d images scored in %.2f s", split, len(fs.paths), time.perf_counter() - t0)
        arrays[f"{split}_scores"] = np.asarray(scores, dtype=np.float32)
        arrays[f"{split}_paths"] = np.asarray(fs.paths, dtype=str)
        arrays[f"{split}_labels"] = split_labels(splits, split, fs.paths)
        if split == "test":
            arrays["test_maps"] = np.asarray(maps, dtype=np.float32)
    save_npz(smk.output[0], **arrays)


run_script(snakemake, main)  # noqa: F821
