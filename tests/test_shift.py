"""The shift recipe (adloc.data.shift): masks stay aligned, the per-image seed rule, recorded
parameters reproduce the image bit for bit, and the study / paper illumination variants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from adloc.data import shift as sh
from adloc.errors import ConfigError


def _spec(**kw):
    return sh.ShiftSpec(**{"seed": 3, "resize": 64, "crop": 48, **kw})


def test_known_square_defect_lands_where_the_affine_says():
    """A 10x10 defect in a 64x64 image: its shifted mask's centroid and area follow the recorded
    affine (about the centre, then the centre crop), and the image's bright square matches it."""
    spec = _spec()
    img = np.zeros((64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), dtype=bool)
    mask[14:24, 36:46] = True
    img[mask] = 255
    for index in range(6):
        row = sh.sample_params(spec, index, 64, 64)
        out = sh.geometric(__import__("torch").from_numpy(img).permute(2, 0, 1).float() / 255, row)
        m = sh.geometric(__import__("torch").from_numpy(mask.astype(np.float32)), row, nearest=True).numpy() > 0.5
        a = math.radians(row["angle"])
        fwd = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]]) @ np.diag([row["sx"], row["sy"]])
        c = np.array([31.5, 31.5])
        q = np.array([40.5, 18.5])  # the square's centre (x, y)
        p = c + np.array([row["tx"] * 64, row["ty"] * 64]) + fwd @ (q - c) - 8  # crop offset (64-48)/2
        ys, xs = np.nonzero(m)
        assert abs(xs.mean() - p[0]) < 0.5 and abs(ys.mean() - p[1]) < 0.5, (index, p, xs.mean(), ys.mean())
        assert abs(m.sum() - 100 * row["sx"] * row["sy"]) <= 12
        bright = out[0].numpy() > 0.5
        assert (bright & m).sum() / (bright | m).sum() > 0.8


def test_sampled_parameters_are_in_range_and_complete():
    spec = _spec()
    rows = [sh.sample_params(spec, i, 50, 64) for i in range(200)]
    for r in rows:
        assert list(r) == list(sh.PARAM_COLUMNS)
        assert -10 <= r["angle"] <= 10 and -0.1 <= r["tx"] <= 0.1 and -0.1 <= r["ty"] <= 0.1
        assert 0.9 <= r["sx"] <= 1.0 and 0.9 <= r["sy"] <= 1.0 and 0.7 <= r["jitter"] <= 1.3
        assert r["blur_kernel"] in (3, 5) and 0.1 <= r["blur_sigma"] <= 2.0
        assert 0.01 <= r["noise_sigma"] <= 0.05 and 0.4 <= r["illumination_strength"] <= 0.7
        assert (r["resize_h"], r["resize_w"], r["pad_top"], r["pad_bottom"]) == (50, 64, 7, 7)
        assert sorted(r["jitter_order"]) == ["b", "c", "s"]
    assert rows[0]["sx"] != rows[0]["sy"]  # scale x and y drawn independently
    for flag in ("blur", "noise", "illumination"):
        assert 70 <= sum(r[flag] for r in rows) <= 130  # p 0.5 (paper)


def test_study_and_paper_illumination_differ_as_specified():
    paper = [sh.sample_params(_spec(variant="paper"), i, 64, 64) for i in range(200)]
    study = [sh.sample_params(_spec(variant="study"), i, 64, 64) for i in range(200)]
    assert all(r["illumination"] and r["illumination_mode"] == "radial" for r in study)  # p 1.0
    assert all(r["illumination_direction"] is None for r in study)  # from the top
    assert all(r["illumination_mode"] == "linear" for r in paper)
    assert 70 <= sum(r["illumination"] for r in paper) <= 130  # p 0.5
    dirs = np.array([r["illumination_direction"] for r in paper])
    assert dirs.min() < 45 and dirs.max() > 315  # random direction in [0, 360)
    # every other parameter is the same draw in both variants (one stream, fixed order)
    keep = set(sh.PARAM_COLUMNS) - {"illumination", "illumination_mode", "illumination_direction", "resize_antialias"}
    assert all({k: p[k] for k in keep} == {k: s[k] for k in keep} for p, s in zip(paper, study))
    assert all(r["resize_antialias"] for r in paper) and not any(r["resize_antialias"] for r in study)
    # the gain: study darkens with the distance from the top centre, paper along its direction
    flat = np.full((64, 64, 3), 200, dtype=np.uint8)
    still = {"blur": False, "noise": False, "jitter": 1.0, "illumination_sigma": 0.0}
    out = sh.apply_shift(flat, None, dict(study[0], **still))[0][0].numpy().astype(int)
    assert out[0, 23] == out.max() and out[-1, 0] < out[0, 23] - 75  # strength >= 0.4 of 200
    assert np.array_equal(out, out[:, ::-1])
    smooth = sh.apply_shift(flat, None, dict(study[0], **{**still, "illumination_sigma": 80.0}))[0][0]
    assert np.all(np.diff(smooth.numpy()[:, 23].astype(int)) <= 0)  # still darker downwards
    lin = dict(paper[0], illumination=True, illumination_direction=0.0, **still)
    out = sh.apply_shift(flat, None, lin)[0][0].numpy().astype(int)
    assert np.all(np.diff(out[24]) <= 0) and out[24, 0] - out[24, -1] > 75  # left to right
    assert np.array_equal(out, np.tile(out[:1], (48, 1)))


def _dataset(tmp_path, n_train=4, extra=False):
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    entries = []
    for i in range(n_train):
        rel = f"c/train/good/{i:03d}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)).save(root / rel)
        entries.append({"path": rel, "label": 0, "defect": "good", "mask": None})
    rel, mrel = "c/test/hole/000.png", "c/ground_truth/hole/000_mask.png"
    for p in (rel, mrel):
        (root / p).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)).save(root / rel)
    m = np.zeros((40, 52), dtype=np.uint8)
    m[10:20, 20:30] = 255
    Image.fromarray(m).save(root / mrel)
    entries.append({"path": rel, "label": 1, "defect": "hole", "mask": mrel})
    if extra:  # another image of another size, listed last
        rel = "c/test/hole/001.png"
        Image.fromarray(rng.integers(0, 256, (70, 30, 3), dtype=np.uint8)).save(root / rel)
        Image.fromarray(np.zeros((70, 30), dtype=np.uint8)).save(root / "c/ground_truth/hole/001_mask.png")
        entries.append({"path": rel, "label": 1, "defect": "hole", "mask": "c/ground_truth/hole/001_mask.png"})
    return root, entries


def _png(path):
    with Image.open(path) as im:
        return np.asarray(im)


def test_recorded_parameters_reproduce_the_image_bit_for_bit(tmp_path):
    from adloc.data.mvtec import load_image, load_mask
    from adloc.io import write_csv

    root, entries = _dataset(tmp_path)
    spec = _spec(variant="study", blur_p=1.0, noise_p=1.0)  # every step on
    out = tmp_path / "shift" / "c"
    rows = sh.shift_class(root, "c", entries, spec, out, workers=2)
    assert [r["shifted"] for r in rows][-1] == "test/hole/000.png"
    assert rows[-1]["shifted_mask"] == "ground_truth/hole/000_mask.png" and rows[0]["shifted_mask"] is None
    assert not (out / "ground_truth" / "good").exists()
    write_csv(tmp_path / "c_params.csv", sh.params_frame(rows))
    back = sh.read_params(tmp_path / "c_params.csv")
    assert back == rows  # every value as drawn, floats to the last bit
    for e, r in zip(entries, back):
        img = load_image(root, e["path"])
        m = load_mask(root, e["mask"]) if e["mask"] else None
        again, mask = sh.apply_shift(img, m, r)
        assert np.array_equal(again.permute(1, 2, 0).numpy(), _png(out / r["shifted"]))
        assert again.shape == (3, 48, 48)
        if m is not None:
            assert np.array_equal(mask * np.uint8(255), _png(out / r["shifted_mask"]))
            assert mask.any()
    paper = sh.shift_class(root, "c", entries, _spec(), tmp_path / "paper" / "c", workers=1)
    assert paper[0]["illumination_mode"] == "linear"


def test_image_i_does_not_depend_on_which_other_images_exist(tmp_path):
    root, entries = _dataset(tmp_path, extra=True)
    spec = _spec()
    full = sh.shift_class(root, "c", entries, spec, tmp_path / "a" / "c", workers=3)
    part = sh.shift_class(root, "c", entries[:5], spec, tmp_path / "b" / "c", workers=1)
    assert len(full) == 6 and len(part) == 5
    for i in range(5):
        assert full[i] == part[i] == {**part[i], **sh.sample_params(spec, i, 40, 52)}
        rel = full[i]["shifted"]
        assert np.array_equal(_png(tmp_path / "a" / "c" / rel), _png(tmp_path / "b" / "c" / rel))
    assert full[5]["seed"] == spec.seed + 5 and full[5]["resize_h"] == 64  # its own size only
    # a rerun writes the same bits
    again = sh.shift_class(root, "c", entries, spec, tmp_path / "c" / "c", workers=2)
    assert again == full
    for r in full:
        assert (tmp_path / "a" / "c" / r["shifted"]).read_bytes() == (tmp_path / "c" / "c" / r["shifted"]).read_bytes()


def test_config_resolution_and_errors():
    cfg = {"preprocess": {"resize": 256, "crop": 224}, "shift": {"enabled": True, "seed": 1}}
    spec = sh.check_shift_config(cfg)
    assert (spec.resize, spec.crop, spec.seed, spec.variant) == (268, 224, 1, "paper")
    small = sh.check_shift_config({"preprocess": {"resize": 64, "crop": None}, "shift": {}})
    assert (small.resize, small.crop) == (77, 64)
    with pytest.raises(ConfigError, match="shift.crop"):
        sh.check_shift_config({"preprocess": {"resize": 256, "crop": 224}, "shift": {"crop": 200}})
    with pytest.raises(ConfigError, match="shift.rotation"):
        sh.ShiftSpec(rotation=(5.0, -5.0))
    with pytest.raises(ConfigError, match="shift.blur_kernels"):
        sh.ShiftSpec(blur_kernels=(4,))
    assert sh.shift_folder_name({"variant": "study", "seed": 7}) == "study-s7"


def test_each_repeat_has_its_own_shift_seed_whose_draws_never_overlap():
    # default: shift.seed + SEED_STRIDE x repeat index (one repeat: shift.seed, as a single run)
    assert sh.repeat_shift_seeds({"seed": 3}, 1) == [3]
    assert sh.repeat_shift_seeds({"seed": 3, "seeds": None}, 3) == [3, 100_003, 200_003]
    assert sh.SEED_STRIDE == 100_000
    # given: one per repeat, a seed may repeat (its copy is made once)
    assert sh.repeat_shift_seeds({"seed": 0, "seeds": [5, 5, 9000]}, 3) == [5, 5, 9000]
    with pytest.raises(ConfigError, match=r"shift.seeds has 2 seed\(s\) for 3 repeat"):
        sh.repeat_shift_seeds({"seed": 0, "seeds": [1, 2]}, 3)
    # image i draws from seed + i: seed 1's image 0 IS seed 0's image 1, so they are refused
    a = sh.sample_params(sh.ShiftSpec(seed=1), 0, 64, 64)
    b = sh.sample_params(sh.ShiftSpec(seed=0), 1, 64, 64)
    assert {k: v for k, v in a.items()} == {k: v for k, v in b.items()}
    sh.check_seed_spacing([0, 0, 100, 200], 100, "class c")  # 100 images: 100 apart is enough
    with pytest.raises(ConfigError, match="seeds 100 and 150 are 50 apart but class c has 100 images"):
        sh.check_seed_spacing([0, 100, 150], 100, "class c")
