"""Rule extract_features: backbone stage maps for every image of one class, once per feature set
(keyed by image: every split and repeat selects its rows by relative path).

The images come preprocessed from the class's image cache (rule preprocess_images), decoded once
for every feature set; "decoded" in the log means read from that cache. They are extracted in
the first repeat's split order, batches restarting at each split (train, val, test), as the
study's code batched them: a CPU convolution's last bits depend on which images share a batch.
"""

import logging
import time

try:  # scripts/_common.py: this checkout's src/ first on sys.path
    from _common import run_script
except ModuleNotFoundError:  # a remote module (github(...)): the installed adloc
    from adloc.workflow import run_script

log = logging.getLogger("adloc.extract_features")


def main(smk):
    import torch

    from adloc.data.cache import ALL, load_image_cache
    from adloc.data.splits import SPLIT_NAMES, read_splits
    from adloc.errors import DatasetError
    from adloc.features import FeatureExtractor, save_features
    from adloc.runtime import device_label, resolve_device

    p = smk.params
    cache = load_image_cache(smk.input.images, mmap=True)
    if ALL not in cache.paths:
        raise DatasetError(f"image cache {smk.input.images} has no {ALL!r} group; delete it and rerun")
    splits = read_splits(smk.input.order)
    groups = [[e["path"] for e in splits["splits"][name]] for name in SPLIT_NAMES]
    listed = [path for g in groups for path in g]
    if sorted(listed) != sorted(cache.paths[ALL]):
        raise DatasetError(
            f"image cache {smk.input.images} and split file {smk.input.order} list different images "
            f"({len(cache.paths[ALL])} vs {len(listed)}); delete both and rerun the workflow"
        )
    extractor = FeatureExtractor(
        p.spec["backbone"],
        p.spec["weights"],
        p.spec["layers"],
        device=resolve_device(p.device),
        dtype="bf16" if p.features["bf16"] else None,
        channels_last=p.features["channels_last"],
        seed=p.seed,
    )
    extractor.provenance["extract_device"] = device_label(extractor.device)
    read_s, extract_s, parts = 0.0, 0.0, []
    for paths in groups:  # uint8 images, normalised on the device; maps in the storage dtype
        if paths:
            t0 = time.perf_counter()
            images = cache.rows(ALL, paths)  # only these rows are read from the memory-mapped cache
            t1 = time.perf_counter()
            parts.append(extractor.extract(images, batch_size=p.features["batch_size"], out_dtype=p.features["storage_dtype"]))
            read_s, extract_s = read_s + t1 - t0, extract_s + time.perf_counter() - t1
    feats = {k: torch.cat([part[k] for part in parts]) for k in parts[0]}
    log.info(
        "%d images decoded in %.2f s, extracted in %.2f s (%.1f img/s)",
        len(listed), read_s, extract_s, len(listed) / max(extract_s, 1e-9),
    )
    save_features(
        smk.output[0],
        feats,
        paths=listed,
        provenance=extractor.provenance,
        input_size=cache.input_size,
        storage_dtype=p.features["storage_dtype"],
    )


run_script(snakemake, main)  # noqa: F821
