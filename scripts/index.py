"""Rule index: scan one class folder once (image paths, labels, defect types, masks, sha256s,
bit depth, reading warnings), checking its layout; every repeat's split and the image cache are
made from this listing, so a bad folder stops one job and no file is hashed twice."""

import logging

try:  # scripts/_common.py: this checkout's src/ first on sys.path
    from _common import run_script
except ModuleNotFoundError:  # a remote module (github(...)): the installed adloc
    from adloc.workflow import run_script

log = logging.getLogger("adloc.index")


def main(smk):
    from adloc.data.content import class_stats
    from adloc.data.mvtec import scan_class
    from adloc.data.splits import make_index
    from adloc.io import write_json

    p = smk.params
    listing = scan_class(p.root, smk.wildcards.cls)
    # stat before hashing: the next DAG build re-hashes only files whose stat moved since
    stats = class_stats(p.root, [r for s in listing.train + listing.test for r in (s.path, s.mask) if r])
    indexed = make_index(listing, bit_depth=p.bit_depth, content=p.content)
    for w in indexed["warnings"]:  # also repeated in the summary's Warnings section
        log.warning("%s", w)
    for n in indexed.get("notes", []):  # how an input was read, exactly (e.g. bit depth from sBIT)
        log.info("%s", n)
    log.info("class %s: %d train/good and %d test images", indexed["class"], len(indexed["train"]), len(indexed["test"]))
    write_json(smk.output.stat, stats)
    write_json(smk.output.index, indexed)


run_script(snakemake, main)  # noqa: F821
