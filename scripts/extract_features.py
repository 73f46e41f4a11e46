"""Rule extract_features: backbone stage maps for every image of one class, once per feature set."""

import logging
import time

from _common import run_script

log = logging.getLogger("adloc.extract_features")


def main(smk):
    from adloc.data.splits import read_splits, split_entries
    from adloc.data.transforms import Preprocess, load_split_images
    from adloc.features import FeatureExtractor, save_features
    from adloc.runtime import resolve_device

    p = smk.params
    pre = Preprocess(resize=p.preprocess["resize"], crop=p.preprocess["crop"])
    splits = read_splits(smk.input.splits)
    extractor = FeatureExtractor(
        p.spec["backbone"],
        p.spec["weights"],
        p.spec["layers"],
        device=resolve_device(p.device),
        dtype="bf16" if p.features["bf16"] else None,
        channels_last=p.features["channels_last"],
        seed=p.seed,
    )
    for name in ("train", "val", "test"):
        entries = split_entries(splits, name)
        t0 = time.perf_counter()
        # uint8 images, normalised on the device; maps come back in the storage dtype
        images, _ = load_split_images(p.root, entries, pre, with_masks=False, as_uint8=True)
        t1 = time.perf_counter()
        feats = extractor.extract(
            images, batch_size=p.features["batch_size"], out_dtype=p.features["storage_dtype"]
        )
        t2 = time.perf_counter()
        log.info(
            "%s: %d images decoded in %.2f s, extracted in %.2f s (%.1f img/s)",
            name, len(entries), t1 - t0, t2 - t1, len(entries) / max(t2 - t1, 1e-9),
        )
        save_features(
            getattr(smk.output, name),
            feats,
            paths=[e["path"] for e in entries],
            provenance=extractor.provenance,
            input_size=pre.output_size,
            storage_dtype=p.features["storage_dtype"],
        )


run_script(snakemake, main)  # noqa: F821
