"""Preprocessing: study vs paper geometry, normalisation, mask alignment, split loading."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from adloc.data.mvtec import scan_class
from adloc.data.splits import make_splits
from adloc.data.synthetic import generate_class
from adloc.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Preprocess,
    image_tensor,
    image_uint8_tensor,
    load_split_images,
    mask_array,
)
from adloc.errors import DatasetError


def test_output_sizes():
    assert Preprocess().output_size == 224 and Preprocess() == Preprocess.paper()
    assert Preprocess.study() == Preprocess(resize=224, crop=None, resize_backend="pil")
    assert Preprocess.study().output_size == 224
    assert Preprocess(resize=64, crop=None).as_dict() == {"resize": 64, "crop": None, "resize_backend": "torchvision"}
    for d in (Preprocess.study().as_dict(), Preprocess(64, 48).as_dict()):
        assert Preprocess.from_config(d).as_dict() == d
    assert Preprocess.from_config({"resize": 64, "crop": None}) == Preprocess(64, None)
    with pytest.raises(DatasetError):
        Preprocess(resize=100, crop=120)
    with pytest.raises(DatasetError, match="resize_backend"):
        Preprocess(resize=100, crop=None, resize_backend="cv2")


@pytest.mark.parametrize("pre", [Preprocess(256, 224), Preprocess(224, None), Preprocess(40, 32)])
def test_image_tensor_shape_and_normalisation(pre):
    img = np.zeros((300, 300, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 0, 128, 255
    t = image_tensor(img, pre)
    s = pre.output_size
    assert t.shape == (3, s, s) and t.dtype == torch.float32
    for c, v in enumerate((0, 128, 255)):
        want = (v / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        assert torch.allclose(t[c], torch.full((s, s), want), atol=1e-5)


def test_study_resize_matches_pil_bilinear():
    """The study resized PIL images with BILINEAR (antialiased): agree within 1 grey level."""
    img = np.random.default_rng(0).integers(0, 256, (100, 100, 3), dtype=np.uint8)
    t = image_tensor(img, Preprocess(resize=64, crop=None))
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    back = ((t * std + mean) * 255).permute(1, 2, 0).numpy()
    pil = np.asarray(Image.fromarray(img).resize((64, 64), Image.BILINEAR)).astype(np.float64)
    assert np.abs(back - pil).max() <= 1.01


@pytest.mark.parametrize("shape", [(300, 260, 3), (97, 131, 3)])
def test_pil_backend_is_the_studys_input_bit_for_bit(shape):
    """resize_backend='pil': the study's CleanDomainTransform (torchvision's functional resize of
    the PIL image, BILINEAR, then to_tensor and normalize), restated, gives the same tensor."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TFv1

    img = np.random.default_rng(shape[0]).integers(0, 256, shape, dtype=np.uint8)
    pre = Preprocess(224, None, resize_backend="pil")
    pil = TFv1.resize(Image.fromarray(img), [224, 224], interpolation=InterpolationMode.BILINEAR)
    study = TFv1.normalize(TFv1.to_tensor(pil), mean=IMAGENET_MEAN, std=IMAGENET_STD)
    assert torch.equal(image_uint8_tensor(img, pre), torch.from_numpy(np.array(pil)).permute(2, 0, 1))
    assert torch.equal(image_tensor(img, pre), study)
    # the torchvision backend differs from it (by up to one grey level)
    tv = image_uint8_tensor(img, Preprocess(224, None)).int()
    diff = (tv - image_uint8_tensor(img, pre).int()).abs()
    assert 0 < int(diff.max()) <= 1


def test_pil_backend_reads_masks_as_the_study_did(tmp_path):
    """Grey levels 1-127 are normal for the study (convert('L'), nearest resize, > 0.5 after /255)
    and anomalous for adloc's default (> 0); 0/255 masks give the same mask either way."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TFv1

    from adloc.data.transforms import load_split_masks

    img = np.zeros((40, 50, 3), np.uint8)
    grey = np.zeros((40, 50), np.uint8)
    grey[5:15, 5:20], grey[20:30, 25:45], grey[32:36, 2:8] = 100, 200, 128
    Image.fromarray(img).save(tmp_path / "a.png")
    Image.fromarray(grey).save(tmp_path / "a_mask.png")
    entries = [{"path": "a.png", "label": 1, "mask": "a_mask.png"}]
    pil, tv = Preprocess(32, None, resize_backend="pil"), Preprocess(32, None)
    got = load_split_masks(tmp_path, entries, pil)[0]
    m = TFv1.resize(Image.open(tmp_path / "a_mask.png").convert("L"), [32, 32], interpolation=InterpolationMode.NEAREST)
    study = (TFv1.to_tensor(m) > 0.5)[0].numpy()
    assert np.array_equal(got, study) and got.any()
    assert load_split_masks(tmp_path, entries, tv)[0].sum() > got.sum()
    Image.fromarray(np.where(grey > 0, 255, 0).astype(np.uint8)).save(tmp_path / "a_mask.png")
    assert np.array_equal(load_split_masks(tmp_path, entries, tv)[0], load_split_masks(tmp_path, entries, pil)[0])


def test_center_crop_and_mask_alignment():
    # a bright square and its mask must land on the same pixels after resize + crop
    img = np.zeros((128, 128, 3), np.uint8)
    mask = np.zeros((128, 128), bool)
    img[40:80, 48:96] = 255
    mask[40:80, 48:96] = True
    for pre in (Preprocess(64, 48), Preprocess(64, None), Preprocess(256, 224)):
        t = image_tensor(img, pre)
        m = mask_array(mask, pre)
        s = pre.output_size
        assert m.shape == (s, s) and m.dtype == bool
        bright = (t[0] > 0.5).numpy()  # normalised 255 ~ 2.2, 0 ~ -2.1
        assert (bright == m).mean() > 0.99, pre
    # crop: 16x16 -> resize 16 -> crop 8 keeps the central 8x8 exactly (nearest, no scaling)
    m = np.zeros((16, 16), bool)
    m[4:8, 4:8] = True
    out = mask_array(m, Preprocess(16, 8))
    assert out.shape == (8, 8) and out[:4, :4].all() and out.sum() == 16


def test_mask_nearest_is_pixel_centre_aligned():
    # 2x upsampling with pixel-centre nearest: every source pixel becomes a 2x2 block
    m = np.zeros((4, 4), bool)
    m[1, 2] = True
    out = mask_array(m, Preprocess(8, None))
    assert out.sum() == 4 and out[2:4, 4:6].all()


def test_load_split_images(tmp_path):
    generate_class(
        tmp_path,
        "synth_zipper",
        {"train_good": 4, "test_good": 2, "anomalies": 4},
        image_size=48,
        seed=3,
    )
    s = make_splits(scan_class(tmp_path, "synth_zipper"), hash_files=False)
    pre = Preprocess(40, 32)
    x, m = load_split_images(tmp_path, s["splits"]["test"], pre)
    n = len(s["splits"]["test"])
    assert x.shape == (n, 3, 32, 32) and x.dtype == torch.float32
    assert m.shape == (n, 32, 32) and m.dtype == bool
    labels = np.array([e["label"] for e in s["splits"]["test"]])
    assert not m[labels == 0].any() and m[labels == 1].reshape(int(labels.sum()), -1).any(1).all()
    # grayscale zipper -> three identical channels (before normalisation)
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    raw = x[0] * std + mean
    assert torch.allclose(raw[0], raw[1], atol=1e-5) and torch.allclose(raw[1], raw[2], atol=1e-5)
    # train split: no masks; with_masks=False: no masks
    assert load_split_images(tmp_path, s["splits"]["train"], pre)[1] is None
    assert load_split_images(tmp_path, s["splits"]["test"], pre, with_masks=False)[1] is None
    # deterministic
    assert torch.equal(x, load_split_images(tmp_path, s["splits"]["test"], pre)[0])


def test_load_split_images_without_ground_truth(tmp_path):
    generate_class(
        tmp_path, "synth_nut", {"train_good": 3, "test_good": 2, "anomalies": 3}, image_size=32
    )
    shutil.rmtree(tmp_path / "synth_nut" / "ground_truth")
    s = make_splits(scan_class(tmp_path, "synth_nut"), hash_files=False)
    x, m = load_split_images(tmp_path, s["splits"]["test"], Preprocess(32, None))
    assert m is None and x.shape[0] == len(s["splits"]["test"])


def test_mask_size_mismatch_names_the_mask(tmp_path):
    generate_class(
        tmp_path, "synth_carpet", {"train_good": 3, "test_good": 1, "anomalies": 3}, image_size=32
    )
    s = make_splits(scan_class(tmp_path, "synth_carpet"), hash_files=False)
    e = next(e for e in s["splits"]["test"] if e["label"] == 1)
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / e["mask"])
    with pytest.raises(DatasetError) as err:
        load_split_images(tmp_path, s["splits"]["test"], Preprocess(32, None))
    msg = str(err.value)
    assert e["mask"] in msg and "20x20" in msg and "32x32" in msg


def test_pil_mask_geometry_equals_torchvision_nearest_exact():
    """Masks use PIL NEAREST (torch-free); it must equal torchvision's NEAREST_EXACT + crop."""
    import torch
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    from adloc.data.transforms import Preprocess, mask_array

    rng = np.random.default_rng(3)
    for size, pre in [(100, Preprocess(256, 224)), (1024, Preprocess(256, 224)), (90, Preprocess(224, None)), (300, Preprocess(64, 56))]:
        m = rng.random((size, size)) > 0.7
        t = torch.from_numpy(m.astype(np.uint8))[None]
        t = TF.resize(t, [pre.resize, pre.resize], interpolation=InterpolationMode.NEAREST_EXACT)
        if pre.crop:
            t = TF.center_crop(t, [pre.crop, pre.crop])
        np.testing.assert_array_equal(mask_array(m, pre), t[0].numpy() > 0)


def test_evaluation_imports_no_torch():
    """Rules that only evaluate or draw must not pay for importing torch."""
    import subprocess
    import sys

    code = (
        "import sys, adloc.pipeline, adloc.data.transforms, adloc.data.splits, adloc.metrics, adloc.analysis;"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_parallel_decoding_equals_sequential(tmp_path):
    from adloc.data.splits import split_entries
    from adloc.data.transforms import Preprocess, load_split_images

    generate_class(tmp_path, "synth_carpet", counts={"train_good": 6, "test_good": 2, "anomalies": 6}, image_size=64, seed=0)
    entries = split_entries(make_splits(scan_class(tmp_path, "synth_carpet")), "test")
    pre = Preprocess(64, 56)
    a, ma = load_split_images(tmp_path, entries, pre, workers=1)
    b, mb = load_split_images(tmp_path, entries, pre, workers=4)
    assert torch.equal(a, b)
    np.testing.assert_array_equal(ma, mb)


@pytest.mark.parametrize("pre", [Preprocess(256, 224), Preprocess(64, None), Preprocess(40, 32)])
def test_image_tensor_is_uint8_geometry_then_normalize(pre):
    from adloc.data.transforms import image_uint8_tensor, normalize_images

    img = np.random.default_rng(1).integers(0, 256, (90, 70, 3), dtype=np.uint8)
    u = image_uint8_tensor(img, pre)
    s = pre.output_size
    assert u.shape == (3, s, s) and u.dtype == torch.uint8 and u.is_contiguous()
    assert torch.equal(normalize_images(u), image_tensor(img, pre))
    # a batch is normalised element by element: same bits as one image at a time
    batch = torch.stack([u, u.flip(-1)])
    assert torch.equal(normalize_images(batch)[1], normalize_images(u.flip(-1).contiguous()))
    with pytest.raises(DatasetError):
        normalize_images(u.float())


def test_load_split_images_as_uint8(tmp_path):
    from adloc.data.transforms import normalize_images

    generate_class(tmp_path, "synth_carpet", {"train_good": 4, "test_good": 2, "anomalies": 3}, image_size=48, seed=1)
    s = make_splits(scan_class(tmp_path, "synth_carpet"), hash_files=False)
    pre = Preprocess(40, 32)
    x, m = load_split_images(tmp_path, s["splits"]["test"], pre)
    u, mu = load_split_images(tmp_path, s["splits"]["test"], pre, as_uint8=True, workers=2)
    assert u.dtype == torch.uint8 and u.shape == x.shape
    assert torch.equal(normalize_images(u), x)
    np.testing.assert_array_equal(m, mu)
