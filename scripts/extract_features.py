"""Rule extract_features: backbone stage maps for every image of one class, once per feature set
(keyed by image: every split and repeat selects its rows by relative path).

The images come preprocessed from the class's image cache (rule preprocess_images), decoded once
for every feature set; "decoded" in the log means read from that cache. They are extracted in
the first repeat's split order, batches restarting at each split (train, val, test), as the
study's code batched them: a CPU convolution's last bits depend on which images share a batch.
"""

import logging

try:  # scripts/_common.py: this checkout's src/ first on sys.path
    from _common import run_script
except ModuleNotFoundError:  # a remote module (github(...)): the installed adloc
    from adloc.workflow import run_script

log = logging.getLogger("adloc.extract_features")


def main(smk):
    from adloc.data.cache import load_image_cache
    from adloc.data.splits import read_splits
    from adloc.features import FeatureExtractor, extract_groups, extraction_groups, save_features
    from adloc.runtime import device_label, resolve_device

    p = smk.params
    cache = load_image_cache(smk.input.images, mmap=True)
    groups = extraction_groups(cache, smk.input.images, read_splits(smk.input.order), smk.input.order)
    listed = [path for g in groups for path in g]
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
    # uint8 images, normalised on the device; maps in the storage dtype
    feats, read_s, extract_s = extract_groups(extractor, cache, groups, p.features["batch_size"],
                                              p.features["storage_dtype"])
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
