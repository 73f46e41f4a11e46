"""Rule shift_images: the shifted copy of every image of one class (adloc.data.shift), from the
decoded originals the class index lists, seeded per image; writes the copy in MVTec layout
(train/good, test/<defect>, ground_truth/<defect>, all PNG) and the table of every parameter
drawn per image beside it."""

import logging
import time

try:  # scripts/_common.py: this checkout's src/ first on sys.path
    from _common import run_script
except ModuleNotFoundError:  # a remote module (github(...)): the installed adloc
    from adloc.workflow import run_script

log = logging.getLogger("adloc.shift_images")


def main(smk):
    from adloc.data.shift import ShiftSpec, params_frame, shift_class
    from adloc.data.splits import check_index_unchanged, index_entries, read_index
    from adloc.io import write_csv

    p = smk.params
    spec = ShiftSpec.from_config(p.shift)
    indexed = read_index(smk.input.index)
    check_index_unchanged(p.root, indexed, smk.input.index)
    entries = index_entries(indexed)
    cls = smk.wildcards.cls
    t0 = time.perf_counter()
    rows = shift_class(
        p.root, cls, entries, spec, smk.output.images, bit_depth=indexed["bit_depth"],
        mask_threshold=p.mask_threshold, workers=max(1, int(smk.threads)),
    )
    log.info(
        "class %s: %d images shifted (%s variant, seed %d) in %.2f s (%d threads) at %dx%d",
        cls, len(entries), spec.variant, spec.seed, time.perf_counter() - t0, smk.threads, spec.crop, spec.crop,
    )
    write_csv(smk.output.params, params_frame(rows))


run_script(snakemake, main)  # noqa: F821
