"""Image cache (rule preprocess_images): round trip, byte stability, clear errors, bit-identical features."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from adloc.data.cache import (
    IMAGES_FORMAT_VERSION,
    load_image_cache,
    save_image_cache,
)
from adloc.data.mvtec import scan_class
from adloc.data.splits import SPLIT_NAMES, make_splits
from adloc.data.synthetic import generate_class
from adloc.data.transforms import Preprocess, load_split_images
from adloc.errors import AdlocError, DatasetError
from adloc.io import save_torch

torch.set_num_threads(1)

PRE = Preprocess(40, 32)


@pytest.fixture(scope="module")
def klass(tmp_path_factory):
    """(dataset root, split dict, decoded uint8 images per split, paths per split)."""
    root = tmp_path_factory.mktemp("cache_data")
    generate_class(root, "synth_carpet", {"train_good": 5, "test_good": 2, "anomalies": 4}, image_size=48, seed=2)
    splits = make_splits(scan_class(root, "synth_carpet"), hash_files=False)
    images, paths = {}, {}
    for name in SPLIT_NAMES:
        entries = splits["splits"][name]
        images[name], _ = load_split_images(root, entries, PRE, with_masks=False, as_uint8=True, workers=2)
        paths[name] = [e["path"] for e in entries]
    return root, splits, images, paths


@pytest.fixture()
def cache_file(tmp_path, klass):
    _, _, images, paths = klass
    f = tmp_path / "images" / "synth_carpet.pt"
    save_image_cache(f, images, paths, PRE)
    return f


@pytest.mark.parametrize("mmap", [False, True])
def test_round_trip_equals_decoded_images(cache_file, klass, mmap):
    _, splits, images, paths = klass
    c = load_image_cache(cache_file, pre=PRE, mmap=mmap)
    assert c.preprocess == PRE and c.input_size == 32 and c.path == str(cache_file)
    for name in SPLIT_NAMES:
        got = c.rows(name, c.paths[name])
        assert got.dtype == torch.uint8 and got.shape == (len(paths[name]), 3, 32, 32)
        assert torch.equal(got, images[name])
        assert c.paths[name] == paths[name]
    raw = torch.load(cache_file, weights_only=True)
    assert raw["kind"] == "images" and raw["format_version"] == IMAGES_FORMAT_VERSION
    assert raw["preprocess"] == {"resize": 40, "crop": 32, "resize_backend": "torchvision"} and "adloc_version" in raw
    assert not list(cache_file.parent.glob("*.tmp*"))  # atomic write left no temporary


@pytest.mark.parametrize("mmap", [False, True])
def test_rows_by_path(cache_file, klass, mmap):
    """A split's images selected by relative path, in the order asked, equal the decoded ones."""
    _, _, images, paths = klass
    c = load_image_cache(cache_file, pre=PRE, mmap=mmap)
    order = [2, 0, 1]
    got = c.rows("test", [paths["test"][i] for i in order])
    assert got.dtype == torch.uint8 and torch.equal(got, images["test"][order])
    with pytest.raises(DatasetError, match=r"lacks 1 image\(s\) asked for \(e\.g\. nope\.png\)"):
        c.rows("test", [paths["test"][0], "nope.png"])


def test_byte_stable(tmp_path, klass):
    _, _, images, paths = klass
    a, b = tmp_path / "a" / "x.pt", tmp_path / "b" / "other_name.pt"
    save_image_cache(a, images, paths, PRE)
    save_image_cache(b, {k: v.clone() for k, v in images.items()}, paths, PRE)
    assert a.read_bytes() == b.read_bytes()


def test_features_from_cache_equal_features_from_decoded_images(cache_file, klass):
    """What extract_features now reads (the cache) gives the features it made before, bit for bit."""
    from adloc.features import FeatureExtractor

    root, splits, _, _ = klass
    fx = FeatureExtractor("resnet18", "random", layers=["layer1", "layer2"], seed=0)
    c = load_image_cache(cache_file, mmap=True)
    for name in ("train", "test"):
        before, _ = load_split_images(root, splits["splits"][name], PRE, with_masks=False, as_uint8=True)
        want = fx.extract(before, batch_size=4)
        got = fx.extract(c.rows(name, c.paths[name]), batch_size=4)
        assert all(torch.equal(got[k], want[k]) for k in want)


def _message(path, **kwargs) -> str:
    with pytest.raises(DatasetError) as err:
        load_image_cache(path, **kwargs)
    msg = str(err.value)
    assert str(path) in msg and "Delete it and rerun" in msg, msg
    return msg


@pytest.mark.parametrize("mmap", [False, True])
def test_corrupt_file(cache_file, mmap):
    cache_file.write_bytes(cache_file.read_bytes()[: cache_file.stat().st_size // 3])
    assert "image cache is corrupt or not a torch file" in _message(cache_file, mmap=mmap)
    cache_file.write_bytes(b"not a torch file")
    assert "image cache is corrupt or not a torch file" in _message(cache_file, mmap=mmap)


def test_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="image cache not found"):
        load_image_cache(tmp_path / "nope.pt")


def test_foreign_file(tmp_path):
    f = tmp_path / "features.pt"
    save_torch(f, {"kind": "features", "format_version": 1, "layers": {}})
    assert "is not an adloc image cache" in _message(f)
    save_torch(f, [1, 2, 3])
    assert "is not an adloc image cache" in _message(f)


def test_other_format_version(cache_file):
    obj = torch.load(cache_file, weights_only=True)
    obj["format_version"] = 0
    save_torch(cache_file, obj)
    msg = _message(cache_file)
    assert "format version 0" in msg and f"reads version {IMAGES_FORMAT_VERSION}" in msg


@pytest.mark.parametrize(
    "damage",
    [
        lambda o: o["splits"].update(train=o["splits"]["train"].float()),
        lambda o: o["paths"].update(val=o["paths"]["val"][:-1]),
        lambda o: o["paths"].pop("test"),
        lambda o: o.update(preprocess={"resize": 40}),
    ],
    ids=["float images", "paths short", "split missing", "preprocess malformed"],
)
def test_malformed(cache_file, damage):
    obj = torch.load(cache_file, weights_only=True)
    damage(obj)
    save_torch(cache_file, obj)
    assert "is malformed" in _message(cache_file)


def test_other_preprocess(cache_file):
    msg = _message(cache_file, pre=Preprocess(64, None))
    assert "'resize': 40, 'crop': 32" in msg and "'resize': 64, 'crop': None" in msg
    # another resize implementation is another cache (the study preset's PIL resize)
    msg = _message(cache_file, pre=Preprocess(40, 32, resize_backend="pil"))
    assert "'resize_backend': 'torchvision'" in msg and "'resize_backend': 'pil'" in msg


def test_cache_without_resize_backend_was_made_with_torchvision(cache_file):
    """Caches written before the key existed were made with torchvision's resize."""
    obj = torch.load(cache_file, weights_only=True)
    del obj["preprocess"]["resize_backend"]
    save_torch(cache_file, obj)
    assert load_image_cache(cache_file, pre=PRE).preprocess == PRE
    assert "was made with preprocess" in _message(cache_file, pre=Preprocess(40, 32, resize_backend="pil"))


def test_save_rejects_bad_input(tmp_path, klass):
    _, _, images, paths = klass
    with pytest.raises(AdlocError, match="uint8"):
        save_image_cache(tmp_path / "x.pt", {**images, "val": images["val"].float()}, paths, PRE)
    with pytest.raises(AdlocError, match="paths"):
        save_image_cache(tmp_path / "x.pt", images, {**paths, "val": paths["val"][:1]}, PRE)
    with pytest.raises(AdlocError, match=r"\(N, 3, 64, 64\)"):
        save_image_cache(tmp_path / "x.pt", images, paths, Preprocess(64, None))
    assert not (tmp_path / "x.pt").exists()


def test_import_needs_neither_snakemake_nor_torch():
    code = (
        "import sys, adloc.data.cache; "
        "assert 'snakemake' not in sys.modules and 'torch' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
