"""Rule shift_cache: the image cache of one class's shifted copy (rule shift_images), as rule
preprocess_images writes the clean one: every shifted image decoded once, keyed by its path under
the shifted root, for every extract_features job of the shifted domain. The copy is the model
input already, so its preprocess is a no-op (adloc.data.shifted.shifted_preprocess)."""

import logging
import time

try:  # scripts/_common.py: this checkout's src/ first on sys.path
    from _common import run_script
except ModuleNotFoundError:  # a remote module (github(...)): the installed adloc
    from adloc.workflow import run_script

log = logging.getLogger("adloc.shift_cache")


def main(smk):
    from adloc.data.cache import ALL, save_image_cache
    from adloc.data.shifted import cache_entries, read_params
    from adloc.data.transforms import Preprocess, load_split_images

    p = smk.params
    pre = Preprocess.from_config(p.preprocess)
    cls = smk.wildcards.cls
    entries = cache_entries(read_params(smk.input.params), cls)
    t0 = time.perf_counter()
    images, _ = load_split_images(p.root, entries, pre, with_masks=False, workers=max(1, int(smk.threads)), as_uint8=True)
    log.info("class %s: %d shifted images decoded in %.2f s", cls, len(entries), time.perf_counter() - t0)
    save_image_cache(smk.output[0], {ALL: images}, {ALL: [e["path"] for e in entries]}, pre)


run_script(snakemake, main)  # noqa: F821
