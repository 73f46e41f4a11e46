"""MVTec-format reader: layout validation, clear errors naming the file, image/mask decoding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adloc.data.mvtec import ClassIndex, Sample, list_classes, load_image, load_mask, scan_class
from adloc.errors import DatasetError


def _png(path: Path, arr: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode=mode).save(path) if mode else Image.fromarray(arr).save(path)
    return path


def _rgb(seed: int, size: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def make_class(
    root: Path,
    cls: str = "widget",
    n_train: int = 3,
    test: dict | None = None,
    masks: bool = True,
    size: int = 16,
) -> Path:
    """A tiny MVTec-format class; ``test`` maps folder -> number of images."""
    test = {"good": 2, "scratch": 2, "dent": 1} if test is None else test
    for i in range(n_train):
        _png(root / cls / "train" / "good" / f"{i:03d}.png", _rgb(i, size))
    for folder, n in test.items():
        for i in range(n):
            _png(root / cls / "test" / folder / f"{i:03d}.png", _rgb(100 + i, size))
            if masks and folder != "good":
                m = np.zeros((size, size), np.uint8)
                m[2:6, 3:9] = 255
                _png(root / cls / "ground_truth" / folder / f"{i:03d}_mask.png", m)
    return root / cls


def test_scan_lists_relative_sorted_paths(tmp_path):
    make_class(tmp_path)
    idx = scan_class(tmp_path, "widget")
    assert isinstance(idx, ClassIndex) and idx.name == "widget" and idx.has_masks
    assert [s.path for s in idx.train] == [f"widget/train/good/{i:03d}.png" for i in range(3)]
    assert all(s == Sample(s.path, 0, "good", None) for s in idx.train)
    # test: sorted by folder (dent < good < scratch) then file name
    assert [(s.defect, Path(s.path).name) for s in idx.test] == [
        ("dent", "000.png"),
        ("good", "000.png"),
        ("good", "001.png"),
        ("scratch", "000.png"),
        ("scratch", "001.png"),
    ]
    dent = idx.test[0]
    assert dent.label == 1 and dent.mask == "widget/ground_truth/dent/000_mask.png"
    assert all(s.mask is None and s.label == 0 for s in idx.test if s.defect == "good")
    assert idx.defects == ["dent", "scratch"]
    assert list_classes(tmp_path) == ["widget"]


def test_extensions_case_insensitive_and_junk_ignored(tmp_path):
    make_class(tmp_path, n_train=1, test={"good": 1}, masks=False)
    d = tmp_path / "widget" / "train" / "good"
    Image.fromarray(_rgb(5)).save(d / "001.JPG", format="JPEG")
    Image.fromarray(_rgb(6)).save(d / "002.Bmp", format="BMP")
    (d / "notes.txt").write_text("x")
    (d / ".hidden.png").write_bytes(b"")
    idx = scan_class(tmp_path, "widget")
    assert [Path(s.path).name for s in idx.train] == ["000.png", "001.JPG", "002.Bmp"]
    assert load_image(tmp_path, idx.train[1].path).shape == (16, 16, 3)


def test_class_without_ground_truth(tmp_path):
    make_class(tmp_path, masks=False)
    idx = scan_class(tmp_path, "widget")
    assert idx.has_masks is False
    assert all(s.mask is None for s in idx.test)
    assert sum(s.label for s in idx.test) == 3


def test_missing_root(tmp_path):
    with pytest.raises(DatasetError, match="dataset root not found") as e:
        scan_class(tmp_path / "nope", "widget")
    assert str(tmp_path / "nope") in str(e.value)


def test_missing_class_lists_found_classes(tmp_path):
    make_class(tmp_path, "alpha")
    make_class(tmp_path, "beta")
    with pytest.raises(DatasetError) as e:
        scan_class(tmp_path, "gamma")
    msg = str(e.value)
    assert str(tmp_path / "gamma") in msg and "alpha, beta" in msg


def test_missing_and_empty_train_good(tmp_path):
    (tmp_path / "widget" / "test" / "good").mkdir(parents=True)
    with pytest.raises(DatasetError) as e:
        scan_class(tmp_path, "widget")
    assert str(tmp_path / "widget" / "train" / "good") in str(e.value)
    (tmp_path / "widget" / "train" / "good").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no training images") as e:
        scan_class(tmp_path, "widget")
    assert str(tmp_path / "widget" / "train" / "good") in str(e.value)


def test_no_test_images(tmp_path):
    make_class(tmp_path, test={}, masks=False)
    with pytest.raises(DatasetError) as e:  # no test/ folder at all
        scan_class(tmp_path, "widget")
    assert str(tmp_path / "widget" / "test") in str(e.value)
    (tmp_path / "widget" / "test" / "good").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no test images") as e:
        scan_class(tmp_path, "widget")
    assert str(tmp_path / "widget" / "test") in str(e.value)


def test_defect_without_mask_names_image_and_expected_mask(tmp_path):
    make_class(tmp_path)
    (tmp_path / "widget" / "ground_truth" / "scratch" / "001_mask.png").unlink()
    with pytest.raises(DatasetError) as e:
        scan_class(tmp_path, "widget")
    msg = str(e.value)
    assert "widget/test/scratch/001.png" in msg and "001_mask.png" in msg


def test_orphan_mask_is_reported(tmp_path):
    make_class(tmp_path)
    _png(
        tmp_path / "widget" / "ground_truth" / "scratch" / "009_mask.png",
        np.zeros((16, 16), np.uint8),
    )
    with pytest.raises(DatasetError) as e:
        scan_class(tmp_path, "widget")
    assert "widget/ground_truth/scratch/009_mask.png" in str(e.value)


def test_load_image_modes_to_rgb(tmp_path):
    g = np.arange(256, dtype=np.uint8).reshape(16, 16)
    _png(tmp_path / "gray.png", g)
    rgba = np.dstack([_rgb(1), np.full((16, 16), 7, np.uint8)])
    _png(tmp_path / "rgba.png", rgba)
    Image.fromarray(_rgb(2)).convert("P").save(tmp_path / "pal.png")
    g16 = g.astype(np.uint16) * 257
    Image.fromarray(g16).save(tmp_path / "g16.png")  # 16-bit grayscale PNG

    out = load_image(tmp_path, "gray.png")
    assert out.dtype == np.uint8 and out.shape == (16, 16, 3)
    assert (out == g[..., None]).all()
    assert (load_image(tmp_path, "rgba.png") == rgba[..., :3]).all()  # alpha dropped
    assert load_image(tmp_path / "pal.png").shape == (16, 16, 3)  # single full-path form
    out16 = load_image(tmp_path, "g16.png")
    assert out16.dtype == np.uint8 and (out16[..., 0] == g).all()


def test_truncated_png_raises_naming_file(tmp_path):
    p = _png(tmp_path / "widget" / "test" / "good" / "000.png", _rgb(0, 64))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="truncated") as e:
        load_image(tmp_path, "widget/test/good/000.png")
    assert "widget/test/good/000.png" in str(e.value)


def test_unreadable_and_missing_files(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"this is not an image")
    with pytest.raises(DatasetError) as e:
        load_image(tmp_path, "junk.png")
    assert "junk.png" in str(e.value)
    with pytest.raises(DatasetError, match="not found") as e:
        load_mask(tmp_path, "gone_mask.png")
    assert "gone_mask.png" in str(e.value)


def test_load_mask_binarises_and_checks_size(tmp_path):
    m = np.zeros((10, 12), np.uint8)
    m[1:3, 2:5] = 255
    m[5, 5] = 1  # 0/1 style value: > 0 counts
    _png(tmp_path / "m_mask.png", m)
    out = load_mask(tmp_path, "m_mask.png", shape=(10, 12, 3))
    assert out.dtype == bool and out.sum() == 7
    with pytest.raises(DatasetError) as e:
        load_mask(tmp_path, "m_mask.png", shape=(16, 16))
    msg = str(e.value)
    assert "m_mask.png" in msg and "10x12" in msg and "16x16" in msg
