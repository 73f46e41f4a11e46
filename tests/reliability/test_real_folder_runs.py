"""Real-world folders (issue 13) through the real workflow: tiny data, ``--cores 2``.

* a class missing on disk stops ``snakemake -n`` (the job graph), not its first job;
* a linked ``train/good`` folder: an edit inside it reruns the class, also one that keeps the
  old time stamp (rule index's content parameter); with ``--rerun-triggers mtime`` such an edit
  stops the job that reads the image again, by sha256;
* edits that keep the time stamp (``cp -p``, ``rsync -a``, ``touch -d``) of a train, validation
  or test image or a mask rerun that class's chain and no other class's (each seen by a dry run,
  then undone); a rewrite with the same bytes reruns nothing;
* one full run on a folder as users have them -- ``test/Good``, an EXIF-rotated JPEG, 12-bit
  data in 16-bit PNGs (grey in a colour class), a training image copied into ``test/Good``, a
  4x64 strip, an anti-aliased mask, a second class that duplicates the first's
  training images and has no anomalies (``threshold.on_degenerate: fallback``): warnings in the
  summary, N/A for undefined metrics, macro rows that say how many classes they cover, the
  duplicate class read as covered; then a partial run whose closing message does not claim a summary.

Library-level checks of the same cases are in test_real_folders.py.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from workflow_utils import planned_jobs, snakemake, write_config

from .conftest import CLASS, REFERENCE, adloc_lines, new_workdir, tmp_leftovers
from .test_bad_inputs import check_failure

SPLITS = f"results/tiny/s42-m0/splits/{CLASS}.json"
INDEX = f"results/tiny/index/{CLASS}.json"
IMAGES = f"results/tiny/images/{CLASS}.pt"


@pytest.mark.workflow
@pytest.mark.slow
def test_missing_class_stops_the_dry_run(tmp_path_factory, dataset_cache):
    wd = new_workdir(tmp_path_factory, "dryrun", dataset_cache, classes=[CLASS, "synth_walnut"])
    proc = snakemake(wd, "-n", "--cores", "1", check=False)
    # a dry run prints its error on stdout
    proc = SimpleNamespace(returncode=proc.returncode, stderr=proc.stdout + proc.stderr)
    line = check_failure(wd, proc, ["adloc: dataset error:", "class folder not found: data/synth_walnut",
                                    f"Classes found under data: {CLASS}"], [])
    assert line.startswith("adloc: dataset error:") and not (wd / "results").exists()


@pytest.mark.workflow
@pytest.mark.slow
def test_linked_folder_edits_rerun_and_stale_images_stop(tmp_path_factory, dataset_cache):
    wd = new_workdir(tmp_path_factory, "links", dataset_cache)
    shared = wd / "shared_storage" / "train_good"
    shared.parent.mkdir()
    good = wd / "data" / CLASS / "train" / "good"
    good.rename(shared)
    good.symlink_to(shared, target_is_directory=True)
    snakemake(wd, "--cores", "2", SPLITS)
    assert planned_jobs(wd, SPLITS) == []
    # an edit inside the linked folder reruns the class's split (links are followed)
    img = shared / "003.png"
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(img)
    planned = planned_jobs(wd, SPLITS)
    assert ("index", {"cls": CLASS}) in planned and ("splits", {"cls": CLASS, "repeat": "s42-m0"}) in planned
    snakemake(wd, "--cores", "2", SPLITS)
    # replaced again, keeping the old time stamp (cp -p, rsync -a): the sha256 tells (issue 24)
    st = img.stat()
    Image.fromarray(np.full((64, 64, 3), 7, np.uint8)).save(img)
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns))
    planned = planned_jobs(wd, SPLITS)
    assert ("index", {"cls": CLASS}) in planned and ("splits", {"cls": CLASS, "repeat": "s42-m0"}) in planned
    # with time stamps as the only trigger, the job that reads the image again stops by sha256
    assert planned_jobs(wd, SPLITS, "--rerun-triggers", "mtime") == []
    proc = snakemake(wd, "--cores", "2", IMAGES, "--forcerun", "preprocess_images",
                     "--rerun-triggers", "mtime", check=False)
    check_failure(wd, proc, [f"file(s) of class {CLASS} changed since the class index {INDEX}",
                             f"{CLASS}/train/good/003.png", "snakemake --forcerun index"], [IMAGES])


def _same_time_edits(data: Path, splits: dict):
    """(what, edit) pairs, each keeping or restoring an old time stamp: cp -p, rsync -a (a copy
    renamed over the file) and touch -d, on a train, a validation and a test image and a mask."""
    cls = data / CLASS

    def cp_p(src, dst):
        return lambda: shutil.copy2(src, dst)

    def rsync_a(src, dst):
        def run():
            tmp = dst.with_name(f".{dst.name}.tmp")
            shutil.copy2(src, tmp)
            os.replace(tmp, dst)
        return run

    def touch_d(dst):
        def run():
            a = np.asarray(Image.open(dst)).copy()
            a[:4] = 255 - a[:4]
            Image.fromarray(a).save(dst)
            os.utime(dst, (1_500_000_000, 1_500_000_000))
        return run

    train = data / splits["splits"]["train"][0]["path"]
    val = data / next(e["path"] for e in splits["splits"]["val"] if e["label"] == 0)
    other = next(p for p in sorted((cls / "train" / "good").iterdir()) if p not in (train, val))
    test, test_src = cls / "test" / "good" / "001.png", cls / "test" / "good" / "000.png"
    masks = sorted((cls / "ground_truth").rglob("*_mask.png"))
    return [("train image, cp -p", cp_p(other, train)), ("val image, rsync -a", rsync_a(other, val)),
            ("test image, touch -d", touch_d(test)), ("test image, cp -p", cp_p(test_src, test)),
            ("mask, rsync -a", rsync_a(masks[1], masks[0])), ("mask, touch -d", touch_d(masks[0]))]


@pytest.mark.workflow
@pytest.mark.slow
def test_edits_that_keep_the_time_stamp_rerun_that_class_only(tmp_path_factory, dataset_cache):
    import json

    wd = new_workdir(tmp_path_factory, "sametime", dataset_cache, classes=[CLASS, "synth_copy"])
    shutil.copytree(wd / "data" / CLASS, wd / "data" / "synth_copy")
    for f in (wd / "data").rglob("*.png"):  # as unpacked from an archive: old time stamps
        os.utime(f, (1_400_000_000, 1_400_000_000))
    targets = [SPLITS, SPLITS.replace(CLASS, "synth_copy")]
    snakemake(wd, "--cores", "1", *targets)
    assert planned_jobs(wd, *targets) == []
    rewritten = wd / "data" / CLASS / "train" / "good" / "004.png"
    os.replace(shutil.copy2(rewritten, rewritten.with_name("new.tmp")), rewritten)  # same bytes, new inode
    assert planned_jobs(wd, *targets) == []  # re-hashed, same sha256: nothing reruns
    chain = [("index", {"cls": CLASS}), ("splits", {"cls": CLASS, "repeat": "s42-m0"})]
    splits = json.loads((wd / SPLITS).read_text())
    originals = {f: (f.read_bytes(), f.stat()) for f in (wd / "data" / CLASS).rglob("*.png")}
    for what, edit in _same_time_edits(wd / "data", splits):
        edit()
        assert sorted(planned_jobs(wd, *targets)) == chain, what
        # put the old bytes and time stamps back (new inode change times): nothing to rerun,
        # so each edit is seen against the same indexed state without a run in between
        for f, (data, st) in originals.items():
            if f.read_bytes() != data:
                f.write_bytes(data)
                os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert planned_jobs(wd, *targets) == [], what


def _real_world_folder(root: Path) -> None:
    """synth_nut as users have it, plus synth_copy: its training images, no anomalies."""
    cls = root / CLASS
    copy = root / "synth_copy"
    shutil.copytree(cls / "train", copy / "train")
    shutil.copytree(cls / "test" / "good", copy / "test" / "good")
    (cls / "test" / "good").rename(cls / "test" / "Good")
    upright = np.asarray(Image.open(cls / "test" / "Good" / "000.png").convert("RGB"))
    (cls / "test" / "Good" / "000.png").unlink()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned, to be shown rotated by 90 degrees
    Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90).save(
        cls / "test" / "Good" / "000.jpg", quality=95, exif=exif)
    for name in ("001.png", "002.png"):  # 12-bit camera data in 16-bit PNGs
        p = cls / "test" / "Good" / name
        grey = np.asarray(Image.open(p).convert("L")).astype(np.int64) * 4095 // 255
        grey[0, 0] = 4095  # one highlight: the class's largest value sets its bit depth
        Image.fromarray(grey.astype(np.uint16)).save(p)
    # issue 24: a training image copied into the test folder, and a 4x64 strip
    shutil.copy2(cls / "train" / "good" / "000.png", cls / "test" / "Good" / "003.png")
    Image.fromarray(np.full((4, 64, 3), 100, np.uint8)).save(cls / "test" / "Good" / "004.png")
    mask = next((cls / "ground_truth").rglob("*_mask.png"))  # an anti-aliased rim, as drawn
    m = np.asarray(Image.open(mask).convert("L")).copy()
    rim = (m == 0) & np.roll(m > 0, 1, axis=0)
    m[rim] = 128
    Image.fromarray(m).save(mask)


@pytest.mark.workflow
@pytest.mark.slow
def test_real_world_folder_full_run(tmp_path_factory, dataset_cache):
    over = {"classes": [CLASS, "synth_copy"], "methods": ["patchcore"],
            "threshold": {"on_degenerate": "fallback"}}
    wd = new_workdir(tmp_path_factory, "realworld", dataset_cache, **over)
    _real_world_folder(wd / "data")
    proc = snakemake(wd, "--cores", "2")
    assert "adloc: done. Summary: results/tiny/summary.md" in proc.stdout + proc.stderr
    res = wd / "results" / "tiny"
    summary = (res / "summary.md").read_text()
    warnings = summary.split("## Warnings", 1)[1].split("## Results", 1)[0]
    assert f"class {CLASS}: 1 image(s) carry an EXIF orientation" in warnings
    assert f"{CLASS}/test/Good/000.jpg: rotated 90°" in warnings
    assert f"class {CLASS}: 2 16-bit image(s)" in warnings and "read as 12-bit data" in warnings
    assert f"class {CLASS}: 1 of 8 mask(s) are not two-valued" in warnings and "grey > 127" in warnings
    assert f"class {CLASS}: 1 test image(s) are byte-identical to train/good images" in warnings
    assert f"{CLASS}/test/Good/003.png = {CLASS}/train/good/000.png" in warnings
    assert f"class {CLASS}: 1 image(s) have an aspect ratio above 4:1 (e.g. {CLASS}/test/Good/004.png" in warnings
    assert f"class {CLASS}: 2 greyscale image(s) (e.g. {CLASS}/test/Good/001.png, mode I;16)" in warnings
    mt = pd.read_csv(res / "tables" / "metrics.csv")
    nut = mt[mt["class"] == CLASS]
    assert (nut["n_test_normal"] == 5).all()  # test/Good is normal, not a defect type
    copy = mt[mt["class"] == "synth_copy"]
    assert set(copy["scope"]) == {"per_class", "global", "unified_abs", "routed"}
    assert copy["f1"].isna().all() and copy["auroc"].isna().all()  # N/A, not 0
    # the pooled split has synth_nut's anomalies; routed may use synth_nut's threshold
    own = copy[~copy["scope"].isin(["unified_abs", "routed"])]
    assert own["threshold_fallback"].notna().all()
    macro = mt[mt["class"] == "macro"]
    assert (macro["n_classes"] == 2).all() and (macro["n_classes_f1"] == 1).all()
    assert (macro["n_classes_accuracy"] == 2).all()
    assert "macro (2 classes)" in summary and "(1/2)" in summary
    bank = pd.read_csv(res / "tables" / "memory_bank_composition.csv")
    dup = bank[bank["class"] == "synth_copy"].iloc[0]
    assert dup["duplicate_train_images"] == 8 and dup["duplicate_of"] == CLASS
    assert "synth_copy: 0 bank entries, but its 8 training images are byte-identical to" in summary
    assert "whose entries already cover their patches" in summary
    # a partial run: the closing message does not claim a summary it did not build
    part = snakemake(wd, "--cores", "2", SPLITS, "--forcerun", "splits")
    text = part.stdout + part.stderr
    assert "Summary:" not in text and f"built {SPLITS}" in text and "was not built by this run" in text
    assert adloc_lines(part.stderr) == [] and tmp_leftovers(wd) == []
