"""Real-world folders (issue 13), checked at the library entry point the workflow reaches.

The workflow runs of the same cases (message, exit code, nothing partial left behind) are in
test_bad_inputs.py; these pin the exact interpretation: which folder is normal, what a JPEG
mask, an anti-aliased, 0/1 or empty mask, an EXIF orientation, a 12-bit image (with or without
a PNG sBIT chunk), a linked folder, an edited file, an undefined metric and a duplicated class
turn into.
"""

from __future__ import annotations

import math
import os
import shutil
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image, ImageOps

from adloc.errors import DatasetError
from workflow_utils import make_dataset

CLS = "synth_nut"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("realdata") / "data"
    make_dataset(root, [CLS])
    return root


def not_grey(warnings):
    """The warnings but the grey-among-colour one (16-bit grey images in a colour class)."""
    return [w for w in warnings if "greyscale image(s)" not in w]


def copy_of(data, tmp_path):
    dst = tmp_path / "data"
    shutil.copytree(data, dst)
    return dst


# --- 1. lossy masks ---------------------------------------------------------------------------
def test_jpeg_mask_is_refused_with_the_fix(data, tmp_path):
    from adloc.data.mvtec import scan_class

    root = copy_of(data, tmp_path)
    png = root / CLS / "ground_truth" / "hole" / "000_mask.png"
    Image.open(png).convert("L").save(png.with_suffix(".jpg"), quality=75)
    png.unlink()
    with pytest.raises(DatasetError) as err:
        scan_class(root, CLS)
    msg = str(err.value)
    assert f"mask {CLS}/ground_truth/hole/000_mask.jpg" in msg and "is a JPEG" in msg
    assert "Export the masks losslessly" in msg and "_mask.png" in msg


# --- 3. the normal folder's case and look-alikes ----------------------------------------------
def test_good_in_any_case_is_the_normal_folder(data, tmp_path):
    from adloc.data.mvtec import scan_class

    root = copy_of(data, tmp_path)
    (root / CLS / "test" / "good").rename(root / CLS / "test" / "Good")
    (root / CLS / "train" / "good").rename(root / CLS / "train" / "GOOD")
    idx = scan_class(root, CLS)
    normal = [s for s in idx.test if s.label == 0]
    assert len(normal) == 4 and all(s.defect == "good" and "/test/Good/" in s.path for s in normal)
    assert "Good" not in idx.defects and len(idx.train) == 10


def test_good_and_Good_together_are_ambiguous(data, tmp_path):
    from adloc.data.mvtec import scan_class

    root = copy_of(data, tmp_path)
    shutil.copytree(root / CLS / "test" / "good", root / CLS / "test" / "Good")
    with pytest.raises(DatasetError, match=f"{CLS}/test/Good, {CLS}/test/good differ only in case"):
        scan_class(root, CLS)


@pytest.mark.parametrize("name", ["OK", "ok", "Normal", "good_2", "no-defect", "Defect Free"])
def test_a_normal_looking_test_folder_stops_the_scan(data, tmp_path, name):
    from adloc.data.mvtec import scan_class

    root = copy_of(data, tmp_path)
    (root / CLS / "test" / "good").rename(root / CLS / "test" / name)
    with pytest.raises(DatasetError) as err:
        scan_class(root, CLS)
    msg = str(err.value)
    assert f"test folder {CLS}/test/{name}" in msg and "looks like a folder of normal images" in msg
    assert f"Rename it to {CLS}/test/good" in msg


# --- 4. EXIF orientation and 16-bit data ------------------------------------------------------
def _exif_jpeg(upright: np.ndarray, path, orientation: int = 6) -> None:
    """Store ``upright`` as a camera would: pixels turned, EXIF saying how to turn them back."""
    inverse = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270, 3: Image.Transpose.ROTATE_180}
    stored = Image.fromarray(upright).transpose(inverse[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(path, quality=100, subsampling=0, exif=exif)


def test_exif_orientation_is_applied_to_images_and_reported(data, tmp_path):
    from adloc.data.mvtec import image_size, load_image, scan_class
    from adloc.data.splits import make_splits

    root = copy_of(data, tmp_path)
    upright = np.zeros((48, 64, 3), np.uint8)
    upright[:8, :, 0] = 255  # a red band along the top edge of the displayed image
    img = root / CLS / "test" / "hole" / "000.png"
    img.unlink()
    _exif_jpeg(upright, img.with_suffix(".jpg"))
    mask = np.zeros((48, 64), np.uint8)
    mask[:8] = 255  # drawn on the displayed image
    Image.fromarray(mask).save(root / CLS / "ground_truth" / "hole" / "000_mask.png")
    rel = f"{CLS}/test/hole/000.jpg"
    got = load_image(root, rel)
    assert got.shape == (48, 64, 3) and image_size(root, rel) == (48, 64)
    assert got[:8, :, 0].mean() > 250 and got[8:, :, 0].mean() < 5  # band on top, as displayed
    with Image.open(root / rel) as im:
        assert np.array_equal(got, np.asarray(ImageOps.exif_transpose(im).convert("RGB")))
    s = make_splits(scan_class(root, CLS))  # the mask's size check uses the upright size
    assert any("1 image(s) carry an EXIF orientation" in w and rel in w and "rotated 90°" in w
               for w in s["warnings"])


def test_12_bit_data_in_16_bit_pngs_keeps_its_grey_levels(data, tmp_path):
    from adloc.data.mvtec import load_image, scan_class
    from adloc.data.splits import make_splits

    root = copy_of(data, tmp_path)
    ramp = (np.arange(64 * 64).reshape(64, 64) % 4096).astype(np.uint16)  # 12-bit values
    for i in range(2):
        Image.fromarray(ramp).save(root / CLS / "test" / "good" / f"00{i}.png")
    s = make_splits(scan_class(root, CLS))
    assert s["bit_depth"] == 12
    assert any("read as 12-bit data" in w and "largest value is 4095" in w and "dataset.bit_depth" in w
               for w in s["warnings"])
    img = load_image(root, f"{CLS}/test/good/000.png", bit_depth=s["bit_depth"])
    assert img.max() == 255 and len(np.unique(img)) == 256  # 255/65535 would leave 17 levels
    assert len(np.unique(load_image(root, f"{CLS}/test/good/000.png"))) == 17  # the container
    declared = make_splits(scan_class(root, CLS), bit_depth=10)
    assert declared["bit_depth"] == 10 and not_grey(declared["warnings"]) == []
    with pytest.raises(DatasetError, match="values up to 4095, above the 10-bit range.*dataset.bit_depth"):
        load_image(root, f"{CLS}/test/good/000.png", bit_depth=10)


def test_8_bit_classes_have_no_bit_depth_and_no_warning(data):
    from adloc.data.mvtec import scan_class
    from adloc.data.splits import make_splits

    s = make_splits(scan_class(data, CLS))
    assert s["bit_depth"] is None and s["warnings"] == []


# --- 2. links and files edited after the split ------------------------------------------------
def test_class_files_follow_links_once(data, tmp_path):
    from adloc.data.mvtec import class_files, scan_class

    root = copy_of(data, tmp_path)
    shared = tmp_path / "shared_train"
    (root / CLS / "train" / "good").rename(shared)
    (root / CLS / "train" / "good").symlink_to(shared, target_is_directory=True)
    (shared / "loop").symlink_to(shared, target_is_directory=True)  # a loop ends
    files = class_files(root / CLS)
    linked = [f for f in files if "/train/good/" in f and "/loop/" not in f]
    assert len(linked) == 10 and all(os.path.isfile(f) for f in files)
    assert len(scan_class(root, CLS).train) == 10


def test_a_file_edited_after_the_split_is_caught(data, tmp_path):
    from adloc.data.mvtec import scan_class
    from adloc.data.splits import check_unchanged, make_splits

    root = copy_of(data, tmp_path)
    s = make_splits(scan_class(root, CLS))
    check_unchanged(root, s)  # nothing changed
    mask = next(e["mask"] for e in s["splits"]["test"] if e["mask"])
    p = root / mask
    st = p.stat()
    Image.fromarray(np.full((64, 64), 255, np.uint8)).save(p)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))  # same time stamp: Snakemake sees nothing
    check_unchanged(root, s, keys=("path",))  # the images are still the split's
    with pytest.raises(DatasetError) as err:
        check_unchanged(root, s, "results/x/splits/synth_nut.json", names=("test",), keys=("mask",))
    msg = str(err.value)
    assert "1 file(s) of class synth_nut changed since the split file results/x/splits/synth_nut.json" in msg
    assert mask in msg and "snakemake --forcerun index" in msg


# --- 7. degenerate validation splits: a fix that can work -------------------------------------
def _split_counts(n_val_anom, n_test_anom, fraction, stratify=False, per_defect=None):
    counts = {"val": {"anomalous": n_val_anom}, "test": {"anomalous": n_test_anom}}
    for k, v in (per_defect or {}).items():
        counts["test"][k] = v
    return {"class": CLS, "counts": counts,
            "protocol": {"val_anomaly_fraction": fraction, "stratify_by_defect": stratify}}


def test_val_anomaly_advice_fits_the_counts():
    from adloc.data.splits import val_anomaly_advice
    from adloc.errors import CalibrationError
    from adloc.metrics import calibrate_threshold

    one = val_anomaly_advice(_split_counts(0, 1, 0.3))
    assert "1 anomalous image" in one and "int(f x 1) = 0" in one and "at least 4" in one
    assert "raise splits.val_anomaly_fraction" not in one and "on_degenerate: fallback" in one
    many = val_anomaly_advice(_split_counts(0, 8, 0.1))
    assert "raise splits.val_anomaly_fraction to at least 0.125" in many
    strat = val_anomaly_advice(_split_counts(0, 8, 0.1, True, {"hole": 5, "crack": 3}))
    assert "at least 0.2" in strat and "largest defect type" in strat
    assert "no anomalous images at all" in val_anomaly_advice(_split_counts(0, 0, 0.3))
    with pytest.raises(CalibrationError, match="Fix: class synth_nut has 1 anomalous image"):
        calibrate_threshold([0, 0, 0], [0.1, 0.2, 0.3], advice=one)


# --- 5. undefined metrics and macro rows ------------------------------------------------------
def _metrics(cls, auroc, f1):
    return {"method": "patchcore", "scope": "per_class", "class": cls,
            "threshold": {"threshold": 0.5, "mode": "exact"},
            "test": {"auroc": auroc, "auprc": auroc, "f1": f1, "accuracy": 0.9, "n": 10,
                     "n_anomalous": 5 if f1 is not None else 0, "n_normal": 5},
            "pixel": {"pixel_auroc": None, "au_pro": None}}


def test_macro_rows_say_how_many_classes_each_mean_covers():
    from adloc.analysis.tables import display_table, metrics_table

    df = metrics_table([_metrics("a", 0.9, 0.8), _metrics("b", 0.7, 0.6),
                        _metrics("c", None, None), _metrics("d", None, None)])
    macro = df[df["class"] == "macro"].iloc[0]
    assert macro["n_classes"] == 4 and macro["n_classes_auroc"] == 2 and macro["n_classes_f1"] == 2
    assert macro["n_classes_accuracy"] == 4 and macro["n_classes_pixel_auroc"] == 0
    assert macro["auroc"] == pytest.approx(0.8) and macro["f1"] == pytest.approx(0.7)
    assert df.loc[df["class"] == "a", "n_classes"].isna().all()
    shown = display_table(df)
    row = shown[shown["class"].str.startswith("macro")].iloc[0]
    assert row["class"] == "macro (4 classes)"
    assert row["F1"] == "0.7000 (2/4)" and row["accuracy"] == "0.9000" and row["AU-PRO"] == "N/A"
    assert shown.loc[shown["class"] == "c", "F1"].item() == "N/A"


def test_a_test_split_without_anomalies_has_f1_na():
    from adloc.metrics import image_metrics

    m = image_metrics([0, 0, 0], [0.1, 0.5, 0.9], threshold=0.4)  # two false alarms
    assert m["fp"] == 2 and math.isnan(m["f1"]) and math.isnan(m["recall"])
    assert m["specificity"] == pytest.approx(1 / 3)


# --- 9. duplicated classes in the memory bank -------------------------------------------------
def test_a_duplicated_class_reads_as_covered_not_missing():
    from adloc.analysis.tsne import covered_sentences, duplicate_train_images, memory_bank_composition

    dups = duplicate_train_images({"a": ["h1", "h2", "h3"], "b": ["h1", "h2", "h3"], "c": ["h9"]})
    assert dups == {"a": (3, ["b"]), "b": (3, ["a"]), "c": (0, [])}
    df = memory_bank_composition(["a", "a", "c"], {"a": 30, "b": 30, "c": 10}, dups)
    b = df[df["class"] == "b"].iloc[0]
    assert b["bank_entries"] == 0 and b["duplicate_train_images"] == 3 and b["duplicate_of"] == "a"
    text = " ".join(covered_sentences(df))
    assert "b: 0 bank entries, but its 3 training images are byte-identical to training images of a" in text
    assert "already cover" in text and "c:" not in text
    assert "a: 3 of its training images are byte-identical to training images of b; its 2 bank" in text


# --- 6 / 8. config from the command line, messages after partial runs --------------------------
def test_tilde_in_dataset_root_is_expanded(monkeypatch, tmp_path):
    from adloc.config import validate_config

    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = validate_config({"dataset": {"root": "~/mvtec", "generate": False}, "classes": ["a"]})
    assert cfg["dataset"]["root"] == str(tmp_path / "mvtec")


def test_a_non_ascii_class_name_says_how_to_fix_it():
    from adloc.config import validate_config
    from adloc.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        validate_config({"dataset": {"generate": False}, "classes": ["café"]})
    msg = str(err.value)
    assert "config key classes.0" in msg and "'café'" in msg and "rename the class folder" in msg


def test_done_message_names_the_summary_only_when_this_run_has_it(tmp_path):
    from adloc.workflow import done_message

    results = tmp_path / "results" / "run"
    t0 = time.time()
    assert "Summary:" not in done_message(str(results), {"results/run/splits/a.json"}, t0)
    results.mkdir(parents=True)
    (results / "summary.md").write_text("old")
    old = t0 - 3600
    os.utime(results / "summary.md", (old, old))
    partial = done_message(str(results), {"results/run/splits/a.json"}, t0)
    assert "Summary:" not in partial and "was not built by this run" in partial
    assert "results/run/splits/a.json" in partial
    assert "Summary:" in done_message(str(results), set(), t0)  # the default target: up to date
    os.utime(results / "summary.md")
    assert "Summary:" in done_message(str(results), {"results/run/summary.md"}, t0)


# --- 10. masks that are not two-valued, and empty masks ---------------------------------------
MASK = f"{CLS}/ground_truth/hole/000_mask.png"


def _soft_mask(root) -> np.ndarray:
    """A 0/255 square with an anti-aliased rim (levels 64 and 192), as drawing tools export."""
    m = np.zeros((64, 64), np.uint8)
    m[18:46, 18:46] = 64
    m[19:45, 19:45] = 192
    m[20:44, 20:44] = 255
    Image.fromarray(m).save(root / MASK)
    return m


def test_anti_aliased_masks_are_reported_with_both_thresholds(data, tmp_path):
    from adloc.data.mvtec import load_mask, scan_class
    from adloc.data.splits import make_index

    root = copy_of(data, tmp_path)
    m = _soft_mask(root)
    idx = make_index(scan_class(root, CLS))
    text = " ".join(w for w in idx["warnings"] if "two-valued" in w)
    nonzero, between, kept = (m > 0).sum(), ((m > 0) & (m < 255)).sum(), (m > 127).sum()
    assert f"class {CLS}: 1 of 8 mask(s) are not two-valued" in text and MASK in text
    assert "3 levels above 0, up to 255" in text and f"{between / nonzero:.1%} of their non-zero" in text
    assert "by default as value > 0" in text and "grey > 127 after PIL convert('L')" in text
    assert f"keeps {kept / nonzero:.1%}" in text and "Export the masks as strict 0/255" in text
    # the sentences say what the readers do
    assert load_mask(root, MASK).sum() == nonzero and load_mask(root, MASK, grey_threshold=127).sum() == kept


def test_two_valued_masks_have_no_mask_warning(data):
    from adloc.data.masks import STUDY_MASK_THRESHOLD, mask_warnings
    from adloc.data.mvtec import scan_class
    from adloc.data.transforms import Preprocess

    masks = [s.mask for s in scan_class(data, CLS).test if s.mask]
    assert len(masks) == 8 and mask_warnings(data, masks) == []
    assert Preprocess.study().mask_threshold == STUDY_MASK_THRESHOLD  # the threshold the text names
    assert Preprocess.paper().mask_threshold is None  # default reading: > 0


def test_0_1_and_colour_masks_say_the_study_threshold_reads_them_empty(data, tmp_path):
    from adloc.data.masks import mask_warnings
    from adloc.data.mvtec import load_mask

    root = copy_of(data, tmp_path)
    m = (np.asarray(Image.open(root / MASK)) > 0).astype(np.uint8)  # 0/1, as numpy exports
    Image.fromarray(m).save(root / MASK)
    red = f"{CLS}/ground_truth/hole/001_mask.png"
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[..., 0] = np.asarray(Image.open(root / red)) > 0
    rgb[..., 0] *= 255  # drawn in red: grey 76 after convert("L")
    Image.fromarray(rgb).save(root / red)
    (text,) = mask_warnings(root, [MASK, red])
    assert "2 of 2 mask(s) mark defects with a value read differently" in text and f"e.g. {MASK}: value 1" in text
    assert f"by default as value > 0 ({m.sum()} defect pixels)" in text and "(0); 2 of them are empty" in text
    assert not load_mask(root, red, grey_threshold=127).any() and load_mask(root, red).sum() > 0


def test_an_empty_mask_of_an_anomalous_image_is_reported(data, tmp_path):
    from adloc.data.mvtec import scan_class
    from adloc.data.splits import make_splits

    root = copy_of(data, tmp_path)
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(root / MASK)
    (w,) = make_splits(scan_class(root, CLS))["warnings"]
    assert f"class {CLS}: 1 anomalous image(s) have an empty mask" in w and MASK in w
    assert "counts as normal in the pixel metrics" in w and "move the image to test/good" in w


# --- 11. the PNG sBIT chunk of 16-bit images --------------------------------------------------
def _with_chunk(path, cid: bytes, payload: bytes, crc: int | None = None) -> None:
    """Insert a chunk right after IHDR (length, type, data, CRC-32 of type + data: PNG spec 5.3)."""
    raw = path.read_bytes()
    end = 8 + 8 + 13 + 4  # signature, IHDR's length + type, its 13 data bytes, its CRC
    assert raw[12:16] == b"IHDR"
    crc = zlib.crc32(cid + payload) if crc is None else crc
    path.write_bytes(raw[:end] + struct.pack(">I", len(payload)) + cid + payload + struct.pack(">I", crc) + raw[end:])


def _16_bit(root, names, peak: int, sbit: dict[str, int]):
    ramp = (np.arange(64 * 64).reshape(64, 64) % (peak + 1)).astype(np.uint16)
    for name in names:
        p = root / CLS / "test" / "good" / name
        Image.fromarray(ramp).save(p)
        if name in sbit:
            _with_chunk(p, b"sBIT", bytes([sbit[name]]))


def test_sbit_sets_the_bit_depth_without_a_warning(data, tmp_path):
    from adloc.data.mvtec import load_image, scan_class
    from adloc.data.splits import make_index

    root = copy_of(data, tmp_path)
    _16_bit(root, ["000.png", "001.png"], 1000, {"000.png": 12, "001.png": 12})  # inference: 10
    idx = make_index(scan_class(root, CLS))
    assert idx["bit_depth"] == 12 and not_grey(idx["warnings"]) == []
    assert idx["notes"] == [f"class {CLS}: 2 16-bit image(s) read as 12-bit data, as their PNG sBIT "
                            "chunks declare (scaled by 255/4095)."]
    assert load_image(root, f"{CLS}/test/good/000.png", bit_depth=12).max() == round(1000 * 255 / 4095)
    declared = make_index(scan_class(root, CLS), bit_depth=14)  # dataset.bit_depth still wins
    assert declared["bit_depth"] == 14 and not_grey(declared["warnings"]) == declared["notes"] == []


def test_sbit_below_the_data_or_differing_between_images_stops_the_index(data, tmp_path):
    from adloc.data.mvtec import scan_class
    from adloc.data.splits import make_index

    root = copy_of(data, tmp_path)
    _16_bit(root, ["000.png", "001.png"], 4095, {"000.png": 10, "001.png": 12})
    with pytest.raises(DatasetError) as err:
        make_index(scan_class(root, CLS))
    msg = str(err.value)
    assert f"16-bit image {CLS}/test/good/000.png" in msg and "values up to 4095, above the 10-bit range" in msg
    assert "sBIT chunk declares" in msg and "Set dataset.bit_depth (16 for scaled samples" in msg
    _16_bit(root, ["000.png", "001.png"], 1000, {"000.png": 10, "001.png": 12})
    with pytest.raises(DatasetError) as err:
        make_index(scan_class(root, CLS))
    msg = str(err.value)
    assert "declare different significant bits" in msg and "snakemake --forcerun index" in msg
    assert f"{CLS}/test/good/000.png: 10, {CLS}/test/good/001.png: 12" in msg and "Set dataset.bit_depth" in msg
    assert make_index(scan_class(root, CLS), bit_depth=12)["bit_depth"] == 12  # the fix works


def test_partial_sbit_keeps_the_inferred_warning(data, tmp_path):
    from adloc.data.mvtec import scan_class
    from adloc.data.splits import make_index

    root = copy_of(data, tmp_path)
    _16_bit(root, ["000.png", "001.png"], 1000, {"000.png": 12})
    idx = make_index(scan_class(root, CLS))
    (w,) = not_grey(idx["warnings"])
    assert idx["bit_depth"] == 12 and idx["notes"] == []  # not lower than the sBIT declared
    assert "largest value is 1000" in w and f"Only 1 of them declare 12 significant bits in a PNG sBIT chunk (e.g. {CLS}/test/good/000.png)" in w


def test_png_significant_bits_reads_the_chunk_by_the_spec(tmp_path):
    from adloc.data.imageio import png_significant_bits

    grey = tmp_path / "grey.png"
    Image.fromarray(np.zeros((4, 4), np.uint16)).save(grey)
    assert png_significant_bits(grey) is None  # no sBIT chunk
    rgb = tmp_path / "rgb.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(rgb)
    _with_chunk(rgb, b"sBIT", bytes([5, 6, 5]))  # RGB: one byte per channel, the largest counts
    assert png_significant_bits(rgb) == 6
    jpg = tmp_path / "a.jpg"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(jpg)
    assert png_significant_bits(jpg) is None
    for name, payload, crc in [("crc.png", bytes([12]), 0), ("big.png", bytes([17]), None),
                               ("long.png", bytes([12, 12]), None)]:
        p = tmp_path / name
        Image.fromarray(np.zeros((4, 4), np.uint16)).save(p)
        _with_chunk(p, b"sBIT", payload, crc)
        with pytest.raises(DatasetError, match=f"image {p} has a malformed PNG chunk.*dataset.bit_depth"):
            png_significant_bits(p)
