"""Embedded dataset generator: layout, exact masks, determinism, independence, atomicity."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adloc.data import synthetic as sy
from adloc.data.synthetic import primitives, writer
from adloc.data.mvtec import load_image, load_mask, scan_class
from adloc.errors import DatasetError

SMALL = {"train_good": 4, "test_good": 2, "anomalies": 5}


def _hashes(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_sources_ship_with_scikit_image():
    for name in sy.SOURCES:  # must load offline (no pooch download)
        img = primitives.source(name)
        assert img.ndim == 2 and img.size > 10_000 and 0.0 <= img.min() <= img.max() <= 1.0


def test_api_constants():
    # the study's three classes first, then one class per other MVTec AD class
    assert list(sy.EMBEDDED_CLASSES)[:3] == list(sy.STUDY_CLASSES) == [
        "synth_nut", "synth_carpet", "synth_zipper"
    ]
    assert [sy.EMBEDDED_CLASSES[c] for c in sy.STUDY_CLASSES] == ["object", "texture", "structure"]
    mirrored = sorted(row[2] for row in sy.CLASS_TABLE.values())
    assert mirrored == sorted(sy.MVTEC_COUNTS) and len(mirrored) == 15
    assert sum(sy.mvtec_counts(c)["train_good"] for c in sy.EMBEDDED_CLASSES) == 3629
    assert sy.mvtec_counts("synth_toothbrush") == {"train_good": 60, "test_good": 12, "anomalies": 30}
    assert sy.DEFAULT_COUNTS == {"train_good": 50, "test_good": 12, "anomalies": 30}
    assert sy.mvtec_counts("synth_nut") == {"train_good": 391, "test_good": 40, "anomalies": 70}
    assert sy.mvtec_counts("synth_carpet") == {"train_good": 280, "test_good": 28, "anomalies": 89}
    assert sy.mvtec_counts("zipper") == {"train_good": 240, "test_good": 32, "anomalies": 119}
    assert all(len(d) >= 3 for d in sy.DEFECTS.values())
    # config value dataset.synthetic.counts -> counts
    assert sy.resolve_counts("mvtec", "synth_zipper") == sy.mvtec_counts("zipper")
    assert sy.resolve_counts({"train_good": 7}, "synth_nut") == dict(
        sy.DEFAULT_COUNTS, train_good=7
    )
    assert sy.resolve_counts(None, "synth_nut") == sy.DEFAULT_COUNTS
    assert sy.resolve_counts("mvtec", "widget", kind="texture")["train_good"] == 280
    with pytest.raises(DatasetError):
        sy.resolve_counts("lots", "synth_nut")


@pytest.mark.parametrize("cls", list(sy.EMBEDDED_CLASSES))
def test_masks_cover_exactly_the_changed_pixels(cls):
    kind, style = sy.kind_of(cls), sy.style_of(cls)
    for i, defect in enumerate(sy.DEFECTS[kind] * 2):
        good, bad, mask = sy.render_pair(kind, 96, np.random.default_rng([11, i]), defect, style)
        assert good.shape == bad.shape and mask.shape == (96, 96) and mask.dtype == bool
        diff = np.abs(good.astype(np.int16) - bad.astype(np.int16))
        if diff.ndim == 3:
            diff = diff.max(axis=2)
        assert (diff[~mask] == 0).all(), defect
        assert (diff[mask] >= sy.MIN_DELTA).all(), defect
        assert 0.0005 < mask.mean() < 0.08, (defect, mask.mean())


def test_generated_layout_and_reader(tmp_path):
    out = sy.generate_class(tmp_path, "synth_nut", SMALL, image_size=32, seed=0)
    assert out == tmp_path / "synth_nut"
    idx = scan_class(tmp_path, "synth_nut")
    assert idx.has_masks and len(idx.train) == 4 and len(idx.test) == 7
    # round-robin over defect types: crack gets anomalies 0 and 4
    assert sorted(s.path for s in idx.test if s.label) == sorted(
        [
            "synth_nut/test/crack/000.png",
            "synth_nut/test/crack/001.png",
            "synth_nut/test/cut/000.png",
            "synth_nut/test/hole/000.png",
            "synth_nut/test/print/000.png",
        ]
    )
    s = next(s for s in idx.test if s.label)
    img = load_image(tmp_path, s.path)
    m = load_mask(tmp_path, s.mask, shape=img.shape)
    assert img.shape == (32, 32, 3) and m.any()
    raw = np.asarray(Image.open(tmp_path / s.mask))
    assert raw.dtype == np.uint8 and set(np.unique(raw)) <= {0, 255}
    meta = json.loads((out / "synthetic.json").read_text())
    assert meta["kind"] == "object" and meta["counts"] == SMALL and meta["image_size"] == 32


def test_zipper_is_single_channel(tmp_path):
    sy.generate_class(tmp_path, "synth_zipper", SMALL, image_size=32)
    im = Image.open(tmp_path / "synth_zipper" / "train" / "good" / "000.png")
    assert im.mode == "L"
    defect_png = next(
        p for p in (tmp_path / "synth_zipper" / "test").glob("*/000.png") if p.parent.name != "good"
    )
    assert Image.open(defect_png).mode == "L"
    assert load_image(defect_png).shape == (32, 32, 3)  # read back as RGB


def test_deterministic_bytes_and_class_independence(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    sy.generate_class(a, "synth_carpet", SMALL, image_size=40, seed=5)
    sy.generate_class(b, "synth_nut", SMALL, image_size=40, seed=5)  # another class first
    sy.generate_class(b, "synth_carpet", SMALL, image_size=40, seed=5)
    ha = _hashes(a / "synth_carpet")
    assert ha == _hashes(b / "synth_carpet")
    # regenerating a class in place gives the same bytes, leaves no temporary folders and
    # does not touch its neighbour
    hn = _hashes(b / "synth_nut")
    sy.generate_class(b, "synth_carpet", SMALL, image_size=40, seed=5)
    assert _hashes(b / "synth_carpet") == ha and _hashes(b / "synth_nut") == hn
    assert sorted(p.name for p in b.iterdir()) == ["synth_carpet", "synth_nut"]
    # another seed changes the images; more images keep the first ones unchanged
    sy.generate_class(b, "synth_carpet", SMALL, image_size=40, seed=6)
    assert _hashes(b / "synth_carpet")["train/good/000.png"] != ha["train/good/000.png"]
    more = dict(SMALL, train_good=6)
    sy.generate_class(b, "synth_carpet", more, image_size=40, seed=5)
    hm = _hashes(b / "synth_carpet")
    assert all(hm[k] == ha[k] for k in ha if k.startswith(("train/", "test/", "ground_truth/")))


def test_styles_differ_and_custom_classes_use_the_default_style(tmp_path):
    rng = lambda: np.random.default_rng([3, 0])  # noqa: E731
    looks = {
        c: sy.render_pair(sy.kind_of(c), 48, rng(), style=sy.style_of(c))[0].astype(float)
        for c in sy.EMBEDDED_CLASSES
    }
    names = list(looks)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if looks[a].shape == looks[b].shape:
                assert np.abs(looks[a] - looks[b]).mean() > 3, (a, b)
    assert sy.style_of("widget", "object") == "nut" and sy.style_of("synth_pill") == "pill"
    assert sy.style_of("synth_pill", "texture") == "carpet"  # another kind: that kind's default
    with pytest.raises(DatasetError, match="unknown style"):
        sy.render_pair("object", 16, rng(), style="carpet")
    sy.generate_class(tmp_path, "synth_wood", SMALL, image_size=24)
    meta = json.loads((tmp_path / "synth_wood" / "synthetic.json").read_text())
    assert meta["style"] == "wood" and meta["analogue"] == "wood" and meta["kind"] == "texture"
    sy.generate_class(tmp_path, "synth_carpet", SMALL, image_size=24)
    assert "style" not in json.loads((tmp_path / "synth_carpet" / "synthetic.json").read_text())


def test_good_images_vary(tmp_path):
    for kind in sy.KINDS:
        imgs = [
            sy.render_pair(kind, 64, np.random.default_rng([1, i]))[0].astype(float)
            for i in range(3)
        ]
        assert np.abs(imgs[0] - imgs[1]).mean() > 2 and np.abs(imgs[1] - imgs[2]).mean() > 2


def test_failed_generation_leaves_previous_class(tmp_path, monkeypatch):
    sy.generate_class(tmp_path, "synth_nut", SMALL, image_size=32)
    before = _hashes(tmp_path / "synth_nut")
    calls = {"n": 0}
    real = writer.save_png

    def boom(path, arr):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt("killed")
        real(path, arr)

    monkeypatch.setattr(writer, "save_png", boom)
    with pytest.raises(KeyboardInterrupt):
        sy.generate_class(tmp_path, "synth_nut", SMALL, image_size=48)
    assert _hashes(tmp_path / "synth_nut") == before
    assert [p.name for p in tmp_path.iterdir()] == ["synth_nut"]


def test_custom_class_name_and_errors(tmp_path):
    sy.generate_class(
        tmp_path,
        "widget",
        {"train_good": 2, "test_good": 1, "anomalies": 3},
        image_size=24,
        kind="structure",
    )
    assert scan_class(tmp_path, "widget").defects == sorted(sy.DEFECTS["structure"][:3])
    with pytest.raises(DatasetError, match="unknown embedded class"):
        sy.generate_class(tmp_path, "widget2", SMALL)
    with pytest.raises(DatasetError, match="unknown count"):
        sy.generate_class(tmp_path, "synth_nut", {"train": 3})
    with pytest.raises(DatasetError, match="train_good"):
        sy.generate_class(tmp_path, "synth_nut", {"train_good": 0})


def test_cli(tmp_path, capsys):
    rc = sy.main(
        [
            "--root",
            str(tmp_path),
            "--classes",
            "synth_carpet",
            "--image-size",
            "24",
            "--train-good",
            "2",
            "--test-good",
            "1",
            "--anomalies",
            "2",
        ]
    )
    assert rc == 0 and "synth_carpet" in capsys.readouterr().out
    assert len(scan_class(tmp_path, "synth_carpet").test) == 3
    assert sy.main(["--root", str(tmp_path), "--classes", "nope"]) == 2
