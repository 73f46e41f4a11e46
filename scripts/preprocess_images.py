"""Rule preprocess_images: decode and resize/crop every image of one class once (all splits).

Writes the class's image cache (adloc.data.cache), which every extract_features job of the class
reads instead of decoding the images again.
"""

import logging
import time

from _common import run_script

log = logging.getLogger("adloc.preprocess_images")


def main(smk):
    from adloc.data.cache import save_image_cache
    from adloc.data.splits import SPLIT_NAMES, check_unchanged, read_splits, split_entries
    from adloc.data.transforms import Preprocess, load_split_images
    from torchvision.transforms.v2 import functional  # noqa: F401  (import cost outside the timings)

    p = smk.params
    pre = Preprocess.from_config(p.preprocess)
    splits = read_splits(smk.input.splits)
    check_unchanged(p.root, splits, smk.input.splits, keys=("path",))  # the images the split named
    workers = max(1, int(smk.threads))
    images, paths = {}, {}
    total_n, total_s = 0, 0.0
    for name in SPLIT_NAMES:
        entries = split_entries(splits, name)
        t0 = time.perf_counter()
        # uint8 (N, 3, S, S): the tensors extract_features used to decode itself
        images[name], _ = load_split_images(
            p.root, entries, pre, with_masks=False, workers=workers, as_uint8=True,
            bit_depth=splits.get("bit_depth"),
        )
        dt = time.perf_counter() - t0
        total_n, total_s = total_n + len(entries), total_s + dt
        log.info(
            "%s: %d images decoded in %.2f s (%.1f img/s, %d threads)",
            name, len(entries), dt, len(entries) / max(dt, 1e-9), workers,
        )
        paths[name] = [e["path"] for e in entries]
    log.info(
        "class %s: %d images decoded in %.2f s in all (%.1f img/s) at %dx%d",
        splits["class"], total_n, total_s, total_n / max(total_s, 1e-9), pre.output_size, pre.output_size,
    )
    save_image_cache(smk.output[0], images, paths, pre)


run_script(snakemake, main)  # noqa: F821
