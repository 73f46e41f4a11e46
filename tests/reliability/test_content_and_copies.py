"""Issue 24 (data side), at the library entry points rule index reaches: edits that keep the
time stamp (``cp -p``, ``rsync -a``, ``touch -d``) change rule index's ``content`` parameter
(and only a changed sha256 does), masks drawn in their alpha channel, byte-identical images in
two splits, extreme aspect ratios and grey images in a colour class (warnings that the split
files copy for the summary), a dataset root that is a file and the 16-bit warning's figures.

The workflow run of the rerun trigger is in test_real_folder_runs.py.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adloc.errors import DatasetError
from workflow_utils import make_dataset

CLS = "synth_nut"
MASK = f"{CLS}/ground_truth/hole/000_mask.png"
OLD = 1_500_000_000  # a time stamp long before any index (touch -d 2017-07-14)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("contentdata") / "data"
    make_dataset(root, [CLS])
    return root


def copy_of(data, tmp_path) -> Path:
    """A copy whose files carry one old time stamp, as unpacked from an archive."""
    dst = tmp_path / "data"
    shutil.copytree(data, dst)
    for f in dst.rglob("*.png"):
        os.utime(f, (OLD, OLD))
    return dst


# --- content, not time stamps, reruns the class ------------------------------------------------
def _indexed(root: Path, res: Path, content="unindexed"):
    """What rule index writes: the index (made with ``content``) and its stat file."""
    from adloc.data.content import class_stats
    from adloc.data.mvtec import scan_class
    from adloc.data.splits import make_index
    from adloc.io import write_json

    listing = scan_class(root, CLS)
    stats = class_stats(root, [r for s in listing.train + listing.test for r in (s.path, s.mask) if r])
    write_json(res / "index.json", make_index(listing, content=content))
    write_json(res / "stat.json", stats)
    return res / "index.json", res / "stat.json"


@pytest.fixture
def hashed(monkeypatch):
    """The relative paths content_param hashes again (it must hash only files whose stat moved)."""
    import adloc.data.content as content

    seen: list[str] = []
    real = content.sha256_file

    def counting(path, *a, **k):
        seen.append(Path(path).as_posix())
        return real(path, *a, **k)

    monkeypatch.setattr(content, "sha256_file", counting)
    return seen


def _cp_p(src: Path, dst: Path) -> None:
    """``cp -p src dst``: dst gets src's bytes and src's (old) time stamps, in place."""
    shutil.copy2(src, dst)


def _rsync_a(src: Path, dst: Path) -> None:
    """``rsync -a src dst``: a temporary file with src's time stamps renamed over dst."""
    tmp = dst.with_name(f".{dst.name}.rsync")
    shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def _touch_d(dst: Path) -> None:
    """An edit in place, then ``touch -d`` back to an old date."""
    with Image.open(dst) as im:
        a = np.asarray(im).copy()
    a[:4] = 255 - a[:4]
    Image.fromarray(a).save(dst)
    os.utime(dst, (OLD, OLD))


@pytest.mark.parametrize(
    "edit, rel",
    [
        ("cp -p", f"{CLS}/train/good/003.png"),  # train/good: the train and validation splits
        ("rsync -a", f"{CLS}/test/good/001.png"),
        ("touch -d", f"{CLS}/test/hole/000.png"),
        ("cp -p", MASK),
        ("touch -d", MASK),
    ],
)
def test_an_edit_that_keeps_the_time_stamp_changes_the_content_parameter(data, tmp_path, hashed, edit, rel):
    from adloc.data.content import UNINDEXED, content_param

    root = copy_of(data, tmp_path)
    index, stat = _indexed(root, tmp_path)
    assert content_param(root, index, stat) == UNINDEXED and hashed == []  # as made: no file read
    target = root / rel
    before = target.stat().st_mtime_ns
    if edit == "touch -d":
        _touch_d(target)
    else:  # another file of the same kind, with its own (old) time stamp
        other = target.with_name("001_mask.png" if rel == MASK else "000.png")
        (_cp_p if edit == "cp -p" else _rsync_a)(other, target)
    assert target.stat().st_mtime_ns <= before  # Snakemake's time-stamp check sees nothing
    changed = content_param(root, index, stat)
    assert changed != UNINDEXED and hashed == [target.as_posix()]
    # rule index reruns with that value; afterwards nothing differs
    index, stat = _indexed(root, tmp_path, content=changed)
    hashed.clear()
    assert content_param(root, index, stat) == changed and hashed == []


def test_a_new_inode_change_time_without_new_content_reruns_nothing(data, tmp_path, hashed):
    from adloc.data.content import UNINDEXED, content_param

    root = copy_of(data, tmp_path)
    index, stat = _indexed(root, tmp_path)
    img = root / CLS / "train" / "good" / "004.png"
    _rsync_a(img, img)  # the same bytes copied over it: a new inode and ctime
    os.chmod(root / MASK, 0o644)  # ctime only
    assert content_param(root, index, stat) == UNINDEXED  # re-hashed, same sha256: no rerun
    assert sorted(hashed) == sorted([img.as_posix(), (root / MASK).as_posix()])


def test_a_missing_or_malformed_stat_file_leaves_the_rule_to_run(data, tmp_path):
    from adloc.data.content import UNINDEXED, content_param

    root = copy_of(data, tmp_path)
    index, stat = _indexed(root, tmp_path, content="abc")
    assert content_param(root, index, stat) == "abc"
    stat.write_text("[1, 2]")
    assert content_param(root, index, stat) == UNINDEXED
    stat.unlink()
    assert content_param(root, index, stat) == UNINDEXED
    assert content_param(root, tmp_path / "none.json", stat) == UNINDEXED


# --- masks drawn in the alpha channel ----------------------------------------------------------
def _alpha_mask(root: Path, alpha: np.ndarray, rgb: int = 255) -> None:
    rgba = np.dstack([np.full(alpha.shape + (3,), rgb, np.uint8), alpha])
    Image.fromarray(rgba, "RGBA").save(root / MASK)


def test_an_alpha_channel_mask_is_read_from_its_alpha(data, tmp_path):
    from adloc.data.masks import load_mask, mask_warnings

    root = copy_of(data, tmp_path)
    alpha = np.zeros((64, 64), np.uint8)
    alpha[10:20, 10:30] = 255  # 200 defect pixels, drawn opaque on white
    _alpha_mask(root, alpha)
    assert load_mask(root, MASK).sum() == 200  # not 4,096 (white RGB everywhere)
    assert load_mask(root, MASK, grey_threshold=127).sum() == 200  # the study preset's reading too
    (w,) = mask_warnings(root, [MASK])
    assert "1 of 1 mask(s) draw the defect in their alpha channel only" in w and MASK in w
    assert "opaque = defect" in w and "Export the masks as 0/255 greyscale" in w
    _alpha_mask(root, alpha, rgb=0)  # black RGB: read from alpha as well, not as empty
    assert load_mask(root, MASK).sum() == 200


def test_alpha_masks_without_information_in_alpha_are_read_by_colour(data, tmp_path):
    from adloc.data.masks import load_mask

    root = copy_of(data, tmp_path)
    _alpha_mask(root, np.zeros((64, 64), np.uint8))  # white, fully transparent: no defect
    assert load_mask(root, MASK).sum() == 0
    colour = np.zeros((64, 64, 4), np.uint8)
    colour[..., 3] = 255
    colour[5:9, 5:9, :3] = 255  # an opaque RGBA export of a 0/255 mask: the colour is the mask
    Image.fromarray(colour, "RGBA").save(root / MASK)
    assert load_mask(root, MASK).sum() == 16


# --- byte-identical images in two splits -------------------------------------------------------
def test_a_training_image_copied_into_the_test_folder_is_warned_naming_both(data, tmp_path):
    from adloc.data.mvtec import scan_class
    from adloc.data.splits import make_index, splits_from_index

    root = copy_of(data, tmp_path)
    shutil.copy2(root / CLS / "train" / "good" / "007.png", root / CLS / "test" / "good" / "002.png")
    shutil.copy2(root / CLS / "train" / "good" / "001.png", root / CLS / "train" / "good" / "005.png")
    idx = make_index(scan_class(root, CLS))
    leak = [w for w in idx["warnings"] if "test image(s) are byte-identical" in w]
    inner = [w for w in idx["warnings"] if "train/good image(s) are byte-identical" in w]
    assert len(leak) == 1 and f"{CLS}/test/good/002.png = {CLS}/train/good/007.png" in leak[0]
    assert "test metrics are inflated" in leak[0] and "Remove the copies" in leak[0]
    assert len(inner) == 1 and f"{CLS}/train/good/005.png = {CLS}/train/good/001.png" in inner[0]
    # every split file copies the index's warnings: the summary's Warnings section repeats them
    assert leak[0] in splits_from_index(idx, root)["warnings"]


def test_distinct_images_have_no_duplicate_warning(data):
    from adloc.data.mvtec import scan_class
    from adloc.data.splits import make_index

    assert make_index(scan_class(data, CLS))["warnings"] == []


# --- geometry: extreme aspect ratios, grey images in a colour class ------------------------------
def test_extreme_aspect_ratio_and_grey_images_in_a_colour_class_are_warned(data, tmp_path):
    from adloc.data.mvtec import scan_class
    from adloc.data.splits import make_index

    root = copy_of(data, tmp_path)
    strip = f"{CLS}/train/good/002.png"
    Image.fromarray(np.full((1, 64, 3), 90, np.uint8)).save(root / strip)  # 1 pixel high
    grey = f"{CLS}/test/good/003.png"
    Image.open(root / grey).convert("L").save(root / grey)
    ws = make_index(scan_class(root, CLS))["warnings"]
    (wide,) = [w for w in ws if "aspect ratio" in w]
    assert f"class {CLS}: 1 image(s) have an aspect ratio above 4:1 (e.g. {strip}: 1x64 HxW)" in wide
    (g,) = [w for w in ws if "greyscale" in w]
    assert f"class {CLS}: 1 greyscale image(s) (e.g. {grey}, mode L) among 21 colour image(s)" in g
    assert "Convert them" in g


def test_an_all_grey_class_has_no_grey_warning():
    from adloc.data.checks import geometry_warnings
    from adloc.data.imageio import ImageHeader

    heads = {f"a/{i}.png": ImageHeader(64, 64, "L") for i in range(3)}
    assert geometry_warnings("a", heads) == []
    assert geometry_warnings("a", {**heads, "a/x.png": ImageHeader(64, 256, "L")}) == []  # 4:1 is fine


# --- messages ----------------------------------------------------------------------------------
def test_a_dataset_root_that_is_a_file_says_it_is_not_a_folder(tmp_path):
    from adloc.data.mvtec import check_class_folders

    f = tmp_path / "mvtec_anomaly_detection.tar.xz"
    f.write_bytes(b"not a folder")
    with pytest.raises(DatasetError) as err:
        check_class_folders(f, [CLS])
    msg = str(err.value)
    assert f"dataset root {f} is a file, not a folder" in msg and "not found" not in msg
    assert "Set dataset.root to the folder that holds the class folders" in msg


def test_the_16_bit_warning_names_the_scale_it_replaces_only_when_it_does(tmp_path):
    from adloc.data.imageio import class_bit_depth

    for name, peak in (("full.png", 65535), ("twelve.png", 4095)):
        Image.fromarray(np.full((8, 8), peak, np.uint16)).save(tmp_path / name)
    bits, full, _ = class_bit_depth(tmp_path, ["full.png"])
    assert bits == 16 and "read as 16-bit data (scaled by 255/65535)." in full and "not 255/65535" not in full
    bits, twelve, _ = class_bit_depth(tmp_path, ["twelve.png"])
    assert bits == 12 and "(scaled by 255/4095, not 255/65535)." in twelve
