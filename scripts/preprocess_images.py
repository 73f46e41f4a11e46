"""Rule preprocess_images: decode and resize/crop every image of one class once (the class's
index: train/good, then every test folder; independent of any split or repeat).

Writes the class's image cache (adloc.data.cache), which every extract_features job of the class
reads instead of decoding the images again.
"""

import logging
import time

try:  # scripts/_common.py: this checkout's src/ first on sys.path
    from _common import run_script
except ModuleNotFoundError:  # a remote module (github(...)): the installed adloc
    from adloc.workflow import run_script

log = logging.getLogger("adloc.preprocess_images")


def main(smk):
    from adloc.data.cache import ALL, save_image_cache
    from adloc.data.splits import check_index_unchanged, index_entries, read_index
    from adloc.data.transforms import Preprocess, load_split_images
    from torchvision.transforms.v2 import functional  # noqa: F401  (import cost outside the timings)

    p = smk.params
    pre = Preprocess.from_config(p.preprocess)
    indexed = read_index(smk.input.index)
    check_index_unchanged(p.root, indexed, smk.input.index)  # the images the index hashed
    entries = index_entries(indexed)
    workers = max(1, int(smk.threads))
    t0 = time.perf_counter()
    # uint8 (N, 3, S, S): the tensors extract_features used to decode itself
    images, _ = load_split_images(
        p.root, entries, pre, with_masks=False, workers=workers, as_uint8=True, bit_depth=indexed["bit_depth"]
    )
    dt = time.perf_counter() - t0
    log.info(
        "class %s: %d images decoded in %.2f s (%.1f img/s, %d threads) at %dx%d",
        smk.wildcards.cls, len(entries), dt, len(entries) / max(dt, 1e-9), workers, pre.output_size, pre.output_size,
    )
    save_image_cache(smk.output[0], {ALL: images}, {ALL: [e["path"] for e in entries]}, pre)


run_script(snakemake, main)  # noqa: F821
