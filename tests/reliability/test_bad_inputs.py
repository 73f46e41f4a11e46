"""Bad-input catalogue, each case run through the real workflow (tiny data, one class).

Every case must give: a non-zero exit; exactly ONE adloc line on stderr (``adloc error: ...``
from a job, or ``adloc: invalid configuration: ...`` from the start-up check) that names the
offending file or config key and says how to fix it; no traceback; none of the failed rule's
outputs; no ``*.tmp*`` file under results/. A few cases that need no workflow run to show their
point are checked at the library entry point the workflow reaches first (bottom of the file);
ImageNet weights missing from $TORCH_HOME is in test_no_network.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from workflow_utils import make_dataset, snakemake, write_config

from .conftest import CLASS, REFERENCE, adloc_lines, new_workdir, tmp_leftovers


FSET = "efficientnet_lite0-imagenet"
REP = "results/tiny/s42-m0"  # the one repeat of the default config (split seed 42, model seed 0)
FEATURES = [f"results/tiny/features/{FSET}/{CLASS}.pt"]  # every image of the class, once
SPLITS = [f"{REP}/splits/{CLASS}.json"]
IMAGES = f"results/tiny/images/{CLASS}.pt"
CFG_ERROR = "adloc: invalid configuration:"


# --- how each case breaks the input -----------------------------------------------------------
def no_dataset(wd):
    shutil.rmtree(wd / "data")


def dataset_root_is_a_file(wd):  # dataset.root pointing at the archive, not its folder
    shutil.rmtree(wd / "data")
    (wd / "data").write_bytes(b"an archive")


def rename_class(wd):
    (wd / "data" / CLASS).rename(wd / "data" / "synth_walnut")


def flat_train_folder(wd):  # images directly in train/, no train/good/
    good = wd / "data" / CLASS / "train" / "good"
    for p in good.iterdir():
        p.rename(good.parent / p.name)
    good.rmdir()


def truncate_image(wd):
    p = wd / "data" / CLASS / "train" / "good" / "003.png"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def remove_mask(wd):
    (wd / "data" / CLASS / "ground_truth" / "crack" / "001_mask.png").unlink()


def small_mask(wd):
    Image.fromarray(np.full((32, 32), 255, np.uint8)).save(
        wd / "data" / CLASS / "ground_truth" / "hole" / "000_mask.png"
    )


def jpeg_mask(wd):  # a mask exported lossily
    png = wd / "data" / CLASS / "ground_truth" / "hole" / "000_mask.png"
    Image.open(png).convert("L").save(png.with_suffix(".jpg"), quality=75)
    png.unlink()


def ok_test_folder(wd):  # normal test images in test/OK (another tool's name for good)
    (wd / "data" / CLASS / "test" / "good").rename(wd / "data" / CLASS / "test" / "OK")


def one_train_image(wd):  # int(0.8 * 1) = 0 training images
    shutil.rmtree(wd / "data")
    make_dataset(wd / "data", [CLASS], counts={"train_good": 1, "test_good": 2, "anomalies": 4})


def corrupt_weights(wd):
    (wd / "bad.pth").write_bytes(b"PK\x03\x04 this is not a state dict")


def corrupt_file(rel):
    def f(wd):
        p = wd / rel
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 3])

    return f


SCORES = f"{REP}/scores/patchcore/{CLASS}/{CLASS}.npz"
TRAIN_FEATURES = FEATURES[0]

# id: (break the input, config overrides, snakemake args, substrings of the adloc line,
#      files that must not exist afterwards, needs the reference run's results)
CASES = {
    "missing dataset root": (
        no_dataset, {}, [],
        ["adloc: dataset error: dataset root not found: data", "Set dataset.root"], SPLITS, False,
    ),
    "dataset root is a file": (
        dataset_root_is_a_file, {}, [],
        ["adloc: dataset error: dataset root data is a file, not a folder", "Set dataset.root"], SPLITS, False,
    ),
    "class folder missing": (
        rename_class, {}, [],
        ["adloc: dataset error:", f"class folder not found: data/{CLASS}", "synth_walnut",
         "Fix the config key classes"],
        SPLITS, False,
    ),
    "wrong layout (no train/good)": (
        flat_train_folder, {}, [],
        [f"missing training folder data/{CLASS}/train/good", "Move the class's training images"],
        SPLITS, False,
    ),
    "truncated PNG": (
        truncate_image, {}, [],
        [f"{CLASS}/train/good/003.png (under data)", "truncated", "Replace the file",
         f"results/tiny/logs/preprocess_images/{CLASS}.log"],
        [IMAGES] + FEATURES, False,
    ),
    "defect image without mask": (
        remove_mask, {}, [],
        [f"defect image {CLASS}/test/crack/001.png has no mask",
         f"{CLASS}/ground_truth/crack/001_mask.png", "Add the mask"],
        SPLITS, False,
    ),
    "mask size differs from image": (
        small_mask, {}, [],
        [f"mask {CLASS}/ground_truth/hole/000_mask.png", "32x32", "64x64", "resize the mask"],
        SPLITS, False,
    ),
    "lossy mask (JPEG)": (
        jpeg_mask, {}, [],
        [f"mask {CLASS}/ground_truth/hole/000_mask.jpg", "is a JPEG", "Export the masks losslessly"],
        SPLITS, False,
    ),
    "normal-looking test folder (test/OK)": (
        ok_test_folder, {}, [],
        [f"test folder {CLASS}/test/OK", "looks like a folder of normal images",
         f"Rename it to {CLASS}/test/good"],
        SPLITS, False,
    ),
    "class name with a non-ASCII letter": (
        None, {"classes": ["café"]}, [],
        [CFG_ERROR, "config key classes.0", "'café'", "rename the class folder (e.g. café -> cafe)"],
        [], False,
    ),
    "empty train split": (
        one_train_image, {}, [],
        ["train split is empty", f"{CLASS}/train/good", "raise splits.train_fraction"],
        SPLITS, False,
    ),
    "unknown class": (
        None, {"dataset": {"generate": True}, "classes": [CLASS, "synth_bogus"]}, [],
        [CFG_ERROR, "'synth_bogus'", "config key classes", "allowed classes are"], [], False,
    ),
    "unknown key": (
        None, {"patchcore": {"coreset_ration": 0.1}}, [],
        [CFG_ERROR, "unknown config key patchcore.coreset_ration", "allowed keys under patchcore"],
        [], False,
    ),
    "wrong type": (
        None, {"evaluation": {"bootstrap": {"n": "many"}}}, [],
        [CFG_ERROR, "config key evaluation.bootstrap.n", "must be of type integer", "'many'"],
        [], False,
    ),
    "weights file missing": (
        None, {"patchcore": {"weights": "/nonexistent/x.pth"}}, [],
        [CFG_ERROR, "config key patchcore.weights", "/nonexistent/x.pth", "Give the path"],
        [], False,
    ),
    "weights file corrupt": (
        corrupt_weights, {"methods": ["patchcore"], "patchcore": {"weights": "bad.pth"}}, [],
        ["weights file bad.pth", "cannot be read", "Replace the file"],
        [f.replace(FSET, "efficientnet_lite0-file-bad") for f in FEATURES], False,
    ),
    "results file corrupted between runs (scores .npz)": (
        corrupt_file(SCORES), {},
        # the first reader of a scores file is the calibrate rule (evaluate reads its threshold)
        [f"{REP}/metrics/patchcore/{CLASS}/{CLASS}.json", "--forcerun", "calibrate"],
        [f"scores file is corrupt: {SCORES}", "Delete it and rerun"],
        [f"{REP}/thresholds/patchcore/{CLASS}/{CLASS}.json"], True,
    ),
    "results file corrupted between runs (image cache .pt)": (
        corrupt_file(IMAGES), {},
        [TRAIN_FEATURES, "--forcerun", "extract_features"],
        [f"image cache is corrupt or not a torch file: {IMAGES}", "Delete it and rerun"],
        FEATURES, True,
    ),
    "results file corrupted between runs (features .pt)": (
        corrupt_file(TRAIN_FEATURES), {},
        [f"{REP}/models/patchcore/{CLASS}.pt", "--forcerun", "fit_class"],
        [f"feature file is corrupt or not a torch file: {TRAIN_FEATURES}", "Delete it and rerun"],
        [f"{REP}/models/patchcore/{CLASS}.pt"], True,
    ),
}


def check_failure(wd: Path, proc, expect, absent) -> str:
    assert proc.returncode != 0, proc.stderr[-3000:]
    lines = adloc_lines(proc.stderr)
    assert len(lines) == 1, "expected exactly one adloc line:\n" + "\n".join(lines) + proc.stderr[-3000:]
    line = lines[0]
    for s in expect:
        assert s in line, f"{s!r} not in: {line}"
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr[-3000:]
    for f in absent:
        assert not (wd / f).exists(), f"partial target left behind: {f}"
    assert tmp_leftovers(wd) == []
    print(f"\n[seen] {line}")  # the catalogue's messages, with pytest -s
    return line


@pytest.mark.workflow
@pytest.mark.slow
@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, marks=pytest.mark.shared_run("reference_run")) if CASES[c][5] else c
        for c in CASES
    ],
)
def test_bad_input(case, tmp_path_factory, dataset_cache, request):
    breaker, overrides, args, expect, absent, needs_results = CASES[case]
    if needs_results:  # a finished run, copied: corrupt one of its files, rerun a consumer
        ref = request.getfixturevalue("reference_run")[0]
        wd = tmp_path_factory.mktemp("corrupt")
        shutil.copytree(ref, wd, symlinks=True, dirs_exist_ok=True)
    else:
        wd = new_workdir(tmp_path_factory, "bad", dataset_cache, **overrides)
    if breaker:
        breaker(wd)
    proc = snakemake(wd, "--cores", "2", *args, check=False)
    line = check_failure(wd, proc, expect, absent)
    if line.startswith((CFG_ERROR, "adloc: dataset error:")):  # stopped at start: nothing computed
        assert not (wd / "results").exists()


@pytest.mark.workflow
@pytest.mark.slow
def test_cuda_requested_but_absent(tmp_path_factory, dataset_cache):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    wd = new_workdir(tmp_path_factory, "cuda", dataset_cache, device="cuda", methods=["patchcore"])
    proc = snakemake(wd, "--cores", "2", check=False)
    check_failure(wd, proc, ["config key device is 'cuda'", "no CUDA device", "set device: cpu"], FEATURES)


@pytest.mark.workflow
@pytest.mark.slow
def test_no_anomalies_in_val_error_then_fallback(tmp_path_factory, dataset_cache):
    """threshold.on_degenerate: error stops with CalibrationError; fallback runs and records it."""
    # int(0.01 x 8 anomalies) = 0 anomalous validation images (the schema requires > 0)
    over = {"methods": ["patchcore"], "splits": {"val_anomaly_fraction": 0.01}}
    wd = new_workdir(tmp_path_factory, "degenerate", dataset_cache, **over)
    target = f"{REP}/metrics/patchcore/{CLASS}/{CLASS}.json"
    proc = snakemake(wd, "--cores", "2", target, check=False)
    check_failure(
        wd, proc,
        [f"class {CLASS}, patchcore per_class model ({SCORES})",
         "cannot calibrate an F1 threshold", "no anomalous images",
         "raise splits.val_anomaly_fraction to at least 0.125", "set threshold.on_degenerate: fallback"],
        [target],
    )
    assert f"{REP}/logs/calibrate/patchcore/{CLASS}.log" in adloc_lines(proc.stderr)[0]
    write_config(wd, **{**REFERENCE, **over, "threshold": {"on_degenerate": "fallback"}})
    snakemake(wd, "--cores", "2", f"{REP}/tables/metrics.csv")
    df = pd.read_csv(wd / REP / "tables" / "metrics.csv")
    rows = df[df["class"] == CLASS]
    # per-class, global (model-unified), unified_abs (one pooled threshold) and routed (the
    # predicted class's threshold: its fallback names the classes whose thresholds it used)
    assert len(rows) == 4
    own = rows[rows["scope"] != "routed"]
    assert (own["threshold_fallback"] == "no_anomalies_in_val: max normal score").all()
    assert tmp_leftovers(wd) == []


# --- library entry points (no workflow run needed to make the point) ---------------------------
def test_unreadable_image_names_the_file(tmp_path):
    from adloc.data.mvtec import load_image
    from adloc.errors import DatasetError

    (tmp_path / "c" / "test" / "good").mkdir(parents=True)
    (tmp_path / "c" / "test" / "good" / "000.png").write_bytes(b"not a png at all")
    with pytest.raises(DatasetError) as err:
        load_image(tmp_path, "c/test/good/000.png")
    msg = str(err.value)
    assert "c/test/good/000.png" in msg and "unreadable" in msg and "Replace the file" in msg


def test_resolve_device_cuda_without_cuda_is_a_config_error(monkeypatch):
    import torch

    from adloc.errors import ConfigError
    from adloc.runtime import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="config key device is 'cuda'.*set device: cpu"):
        resolve_device("cuda")
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="allowed values: 'cpu', 'cuda', 'auto'"):
        resolve_device("gpu")
