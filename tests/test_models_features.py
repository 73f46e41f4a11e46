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
    # a split's rows by path, from the memory-mapped file: equal to selecting after a full load
    picked = load_features(f, paths=["c.png", "a.png"])
    assert picked.paths == sub.paths and picked.layers["layer3"].dtype == torch.float32
    assert all(torch.equal(picked.layers[k], sub.layers[k]) for k in feats)
    kept = load_features(f, keep_dtype=True, paths=["b.png"])
    assert kept.layers["layer2"].dtype == getattr(torch, storage) and kept.paths == ["b.png"]
    with pytest.raises(AdlocError, match=r"1 image.*e\.g\. d\.png.*stale"):
        load_features(f, paths=["a.png", "d.png"])


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


def _uint8_images(n, size, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)


@pytest.mark.parametrize(
    "backbone,layers,size",
    [("resnet18", ["layer1", "layer2", "layer3"], 64), ("efficientnet_lite0", ["layer1", "layer2", "layer3"], 64)],
)
def test_uint8_input_bit_identical_to_float_input(backbone, layers, size):
    """uint8 images normalised inside extract == image_tensor's float images, bit for bit."""
    import numpy as np

    from adloc.data.transforms import Preprocess, image_tensor, image_uint8_tensor

    rng = np.random.default_rng(0)
    pre = Preprocess(size + 8, size)
    raw = [rng.integers(0, 256, (size + 20, size + 12, 3), dtype=np.uint8) for _ in range(5)]
    u8 = torch.stack([image_uint8_tensor(im, pre) for im in raw])
    fl = torch.stack([image_tensor(im, pre) for im in raw])
    assert u8.dtype == torch.uint8 and fl.dtype == torch.float32
    fx = FeatureExtractor(backbone, "random", layers=layers, seed=2)
    a, b = fx.extract(u8, batch_size=2), fx.extract(fl, batch_size=2)
    for k in layers:
        assert a[k].dtype == torch.float32 and a[k].shape[0] == 5
        assert torch.equal(a[k], b[k]), k
    # the iterable form with the same uint8 batches gives the same bits (batch composition can
    # change the last bits of a convolution, so batches of 2 as above)
    c = fx.extract([u8[:2], (u8[2:4], "label"), {"image": u8[4]}])
    assert all(torch.equal(c[k], a[k]) for k in layers)


def test_out_dtype_float16_is_the_float32_result_halved():
    fx = FeatureExtractor("resnet18", "random", layers=["layer2", "layer3"], seed=1)
    x = _uint8_images(5, 64)
    f32 = fx.extract(x, batch_size=2)
    f16 = fx.extract(x, batch_size=2, out_dtype=torch.float16)
    f16s = fx.extract(iter([x[:2], x[2:4], {"image": x[4]}]), out_dtype="float16")  # iterable, 3-D batch
    for k in ("layer2", "layer3"):
        assert f16[k].dtype == torch.float16 and f16[k].device.type == "cpu" and f16[k].is_contiguous()
        assert torch.equal(f16[k], f32[k].half())
        assert torch.equal(f16s[k], f16[k])
    with pytest.raises(AdlocError, match="out_dtype"):
        fx.extract(x, out_dtype="bfloat16")


def test_channels_last_bf16_on_cpu_returns_contiguous_maps():
    """The device-side cast gives contiguous NCHW maps whatever the compute layout."""
    fx = FeatureExtractor("resnet18", "random", layers=["layer2"], channels_last=True, seed=1)
    ref = FeatureExtractor("resnet18", "random", layers=["layer2"], seed=1)
    x = _uint8_images(3, 64)
    a, b = fx.extract(x, out_dtype="float16")["layer2"], ref.extract(x)["layer2"]
    assert a.is_contiguous() and a.dtype == torch.float16
    assert torch.allclose(a.float(), b, atol=1e-2, rtol=1e-2)


def test_bf16_autocast_on_cpu_is_repeatable_and_close_to_float32():
    """features.bf16 on the CPU (the fast path on AVX512-BF16 CPUs): same maps every run, within
    bf16 rounding of the float32 maps, and the provenance says so."""
    x = _uint8_images(4, 64)
    bf = FeatureExtractor("resnet18", "random", layers=["layer2", "layer3"], dtype="bf16", seed=1)
    ref = FeatureExtractor("resnet18", "random", layers=["layer2", "layer3"], seed=1).extract(x)
    a, b = bf.extract(x), bf.extract(x)
    assert bf.provenance["compute_dtype"] == "bf16"
    for k in ref:
        assert torch.equal(a[k], b[k])
        assert a[k].dtype == torch.float32
        assert float((a[k] - ref[k]).norm() / ref[k].norm()) < 3e-2


def test_float16_features_saved_as_they_are(tmp_path):
    fx = FeatureExtractor("resnet18", "random", layers=["layer2"], seed=1)
    x = _uint8_images(3, 64)
    f16 = fx.extract(x, out_dtype="float16")
    save_features(tmp_path / "f.pt", f16, ["a", "b", "c"], fx.provenance, 64, storage_dtype="float16")
    fs = load_features(tmp_path / "f.pt")
    assert fs.layers["layer2"].dtype == torch.float32
    assert torch.equal(fs.layers["layer2"], f16["layer2"].float())
    # the same file as from float32 maps stored as float16
    save_features(tmp_path / "g.pt", fx.extract(x), ["a", "b", "c"], fx.provenance, 64, storage_dtype="float16")
    assert torch.equal(load_features(tmp_path / "g.pt").layers["layer2"], fs.layers["layer2"])


def test_staged_loop_logic_on_cpu(monkeypatch):
    """The CUDA double-buffered loop's bookkeeping (slots, pending batch, partial last batch,
    reallocation when the batch shape changes) run on the CPU with plain buffers and no-op
    events (adloc.staging.PinnedStaging): same result as the plain loop. The real CUDA run is in
    test_models_cuda.py."""
    import adloc.staging as S

    class Event:
        def record(self, stream=None):
            pass

        def synchronize(self):
            pass

    monkeypatch.setattr(S, "pinned_empty", lambda shape, dtype: torch.empty(shape, dtype=dtype))
    monkeypatch.setattr(torch.cuda, "Event", Event)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: None)
    fx = FeatureExtractor("resnet18", "random", layers=["layer1", "layer3"], seed=1)
    x = _uint8_images(7, 64)

    def staged(batches, n, dt):
        res = S.ResultBuffer(fx.layers, n, dt)
        with torch.inference_mode():
            fx.staging.run(lambda b: fx._forward(b, dt), iter(batches), res, dt)
        return res.result()

    for bs in (1, 3, 7):
        ref = fx.extract(x, batch_size=bs, out_dtype="float16")
        got = staged([x[s : s + bs] for s in range(0, 7, bs)], 7, torch.float16)
        assert all(torch.equal(got[k], ref[k]) for k in fx.layers), bs
        assert fx.staging.out_slots.capacity == bs and fx.staging.in_slots.capacity == bs
    # unknown n (iterable), a growing batch (reallocation mid-run), float input between uint8
    batches = [x[:1], x[1:3], x[3:7]]
    ref = fx.extract(batches)
    got = staged(batches, None, torch.float32)
    assert all(torch.equal(got[k], ref[k]) for k in fx.layers)
    assert fx.staging.out_slots.capacity == 4
    from adloc.data.transforms import normalize_images

    got = staged([x[:3], normalize_images(x[3:6]), x[6:]], 7, torch.float32)
    ref = fx.extract([x[:3], x[3:6], x[6:]])
    assert all(torch.equal(got[k], ref[k]) for k in fx.layers)


def test_concat_release_and_float16_files_kept(tmp_path):
    from adloc.pipeline import load_training_set, training_set

    g = torch.Generator().manual_seed(0)
    sets = []
    for k, n in enumerate((3, 2)):
        layers = {"layer2": torch.rand(n, 4, 4, 4, generator=g), "layer3": torch.rand(n, 8, 2, 2, generator=g)}
        save_features(tmp_path / f"c{k}.pt", layers, [f"c{k}/{i}.png" for i in range(n)], {"backbone": "x"}, 16,
                      storage_dtype="float16")
        sets.append(load_features(tmp_path / f"c{k}.pt"))
    assert sets[0].layers["layer2"].dtype == torch.float32
    want = concat_features(sets)  # the inputs stay usable
    assert torch.equal(want.layers["layer3"][3:], sets[1].layers["layer3"])
    merged, sources = load_training_set([tmp_path / "c0.pt", tmp_path / "c1.pt"], ["c0", "c1"])
    assert sources == ["c0"] * 3 + ["c1"] * 2 and merged.paths == want.paths
    for k in ("layer2", "layer3"):
        assert merged.layers[k].dtype == torch.float16 and torch.equal(merged.layers[k].float(), want.layers[k])
    # release=True empties the given sets instead of keeping a second copy
    again, _ = training_set(sets, ["c0", "c1"], release=True)
    assert torch.equal(again.layers["layer2"], want.layers["layer2"]) and all(not s.layers for s in sets)
