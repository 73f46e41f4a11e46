"""Rule extract_features: backbone stage maps for every image of one class, once per feature set.

The images come preprocessed from the class's image cache (rule preprocess_images), decoded once
for every feature set; "decoded" in the log means read from that cache.
"""

import logging
import time

from _common import run_script

log = logging.getLogger("adloc.extract_features")


def main(smk):
    from adloc.data.cache import check_cache_paths, load_image_cache
    from adloc.data.splits import read_splits
    from adloc.features import FeatureExtractor, save_features
    from adloc.runtime import device_label, resolve_device

    p = smk.params
    cache = load_image_cache(smk.input.images, mmap=True)
    check_cache_paths(cache, read_splits(smk.input.splits), smk.input.splits)
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
    for name in ("train", "val", "test"):
        paths = cache.paths[name]
        t0 = time.perf_counter()
        # uint8 images, normalised on the device; maps come back in the storage dtype
        images = cache.images(name)  # read from the memory-mapped cache
        t1 = time.perf_counter()
        feats = extractor.extract(
            images, batch_size=p.features["batch_size"], out_dtype=p.features["storage_dtype"]
        )
        t2 = time.perf_counter()
        log.info(
            "%s: %d images decoded in %.2f s, extracted in %.2f s (%.1f img/s)",
            name, len(paths), t1 - t0, t2 - t1, len(paths) / max(t2 - t1, 1e-9),
        )
        save_features(
            getattr(smk.output, name),
            feats,
            paths=paths,
            provenance=extractor.provenance,
            input_size=cache.input_size,
            storage_dtype=p.features["storage_dtype"],
        )


run_script(snakemake, main)  # noqa: F821
