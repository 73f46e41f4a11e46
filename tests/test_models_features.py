"""Feature extraction: truncated forward, batching, feature files."""

import pytest
import torch

from adloc.backbones import build_backbone, stage_modules
from adloc.errors import AdlocError
from adloc.features import FeatureExtractor, FeatureSet, concat_features, load_features, save_features

torch.set_num_threads(1)


def test_extract_matches_full_forward_and_batches():
    fx = FeatureExtractor("resnet18", "random", layers=["layer3", "layer2"], seed=1)
    assert fx.layers == ["layer2", "layer3"]
    assert fx.provenance["weights"] == "random" and fx.provenance["layers"] == ["layer2", "layer3"]
    x = torch.randn(5, 3, 64, 64)
    feats = fx.extract(x, batch_size=2)
    assert set(feats) == {"layer2", "layer3"}
    assert feats["layer2"].shape == (5, 128, 8, 8) and feats["layer3"].shape == (5, 256, 4, 4)
    assert feats["layer2"].dtype == torch.float32 and feats["layer2"].device.type == "cpu"
    # same as hooking the full network
    model, _ = build_backbone("resnet18", "random", seed=1)
    seen = {}
    h = stage_modules(model, "resnet18")["layer3"].register_forward_hook(lambda m, i, o: seen.setdefault("o", o))
    with torch.inference_mode():
        model(x)
    h.remove()
    assert torch.allclose(seen["o"], feats["layer3"], atol=1e-5)
    # iterable of batches (tuples, dicts) gives the same result
    it = [(x[:3], "label"), {"image": x[3:]}]
    feats2 = fx.extract(it)
    assert torch.allclose(feats2["layer3"], feats["layer3"], atol=1e-5)


def test_extract_rejects_bad_input():
    fx = FeatureExtractor("resnet18", "random", layers=["layer1"])
    with pytest.raises(AdlocError):
        fx.extract(torch.randn(2, 1, 32, 32))
    with pytest.raises(AdlocError):
        fx.extract([])


@pytest.mark.parametrize("storage", ["float32", "float16"])
def test_feature_file_roundtrip(tmp_path, storage):
    feats = {"layer2": torch.randn(3, 4, 5, 5), "layer3": torch.randn(3, 6, 3, 3)}
    prov = {"backbone": "resnet18", "weights": "random", "seed": 0, "sha256": None, "layers": ["layer2", "layer3"]}
    f = tmp_path / "x" / "train.pt"
    save_features(f, feats, ["a.png", "b.png", "c.png"], prov, 224, storage_dtype=storage)
    fs = load_features(f)
    assert isinstance(fs, FeatureSet) and fs.paths == ["a.png", "b.png", "c.png"] and fs.input_size == 224
    assert fs.provenance == prov and fs.layers["layer3"].dtype == torch.float32
    tol = 0 if storage == "float32" else 1e-2
    assert torch.allclose(fs.layers["layer2"], feats["layer2"], atol=tol, rtol=tol)
    sub = fs.select([2, 0])
    assert sub.paths == ["c.png", "a.png"] and torch.equal(sub.layers["layer2"][0], fs.layers["layer2"][2])
    both = concat_features([fs, sub])
    assert len(both) == 5 and both.layers["layer3"].shape[0] == 5


def test_feature_file_errors(tmp_path):
    feats = {"layer2": torch.randn(3, 4, 5, 5)}
    with pytest.raises(AdlocError, match="paths"):
        save_features(tmp_path / "a.pt", feats, ["only-one"], {}, 224)
    with pytest.raises(AdlocError, match="not found"):
        load_features(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(AdlocError, match="corrupt"):
        load_features(tmp_path / "bad.pt")
    torch.save({"kind": "patchcore"}, tmp_path / "other.pt")
    with pytest.raises(AdlocError, match="not an adloc feature file"):
        load_features(tmp_path / "other.pt")
    a = FeatureSet(feats, ["a", "b", "c"], {"backbone": "resnet18"}, 224)
    b = FeatureSet(feats, ["a", "b", "c"], {"backbone": "resnet50"}, 224)
    with pytest.raises(AdlocError, match="backbone"):
        concat_features([a, b])
