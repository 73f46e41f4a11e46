"""SPADE (adloc.models.spade) against a brute-force reference on small random features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from adloc.config import validate_config
from adloc.errors import ModelError
from adloc.models import build_model, load_model
from adloc.models import spade as spade_mod
from adloc.models.common import score_maps
from adloc.models.registry import REGISTRY

LAYERS = ("layer1", "layer2")


def _features(n: int, seed: int, c1: int = 5, c2: int = 7, g: int = 8) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {"layer1": torch.randn(n, c1, g, g, generator=gen),
            "layer2": torch.randn(n, c2, g // 2, g // 2, generator=gen) + 0.3}


def _model(k: int = 3, image_size: int = 8, blur_sigma: float = 0.0, **kw):
    return build_model("spade", {"layers": list(LAYERS), "k": k, "image_size": image_size,
                                 "blur_sigma": blur_sigma, **kw})


def _reference(train, test, k):
    """Brute force in float64: every pairwise distance written out, no blocking."""
    tr_pool = train["layer2"].double().numpy().mean((2, 3))
    te_pool = test["layer2"].double().numpy().mean((2, 3))
    d = np.sqrt(((te_pool[:, None, :] - tr_pool[None, :, :]) ** 2).sum(-1))
    kk = min(k, len(tr_pool))
    nn = np.argsort(d, axis=1, kind="stable")[:, :kk]
    scores = np.take_along_axis(d, nn, 1).mean(1)

    def pyramid(f):
        up = F.interpolate(f["layer2"].float(), size=f["layer1"].shape[-2:], mode="bilinear", align_corners=False)
        return torch.cat([f["layer1"].float(), up], 1).double().numpy()  # (N, D, h, w)

    tr, te = pyramid(train), pyramid(test)
    n, dim, h, w = te.shape
    grids = np.empty((n, h, w))
    for i in range(n):
        gallery = tr[nn[i]].transpose(0, 2, 3, 1).reshape(-1, dim)  # every position of the K images
        q = te[i].transpose(1, 2, 0).reshape(-1, dim)
        grids[i] = np.sqrt(((q[:, None, :] - gallery[None, :, :]) ** 2).sum(-1)).min(1).reshape(h, w)
    return scores, grids, nn


def test_scores_and_maps_match_brute_force():
    train, test = _features(9, 0), _features(6, 1)
    scores, maps = _model(k=4).fit(train).predict(test)
    ref_scores, ref_grids, nn = _reference(train, test, 4)
    np.testing.assert_array_equal(_model(k=4).fit(train).neighbours(test), nn)
    assert scores.dtype == np.float32 and maps.dtype == np.float32 and maps.shape == (6, 8, 8)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(maps, ref_grids, rtol=1e-6, atol=1e-6)


def test_maps_are_upsampled_and_blurred_like_the_other_models():
    train, test = _features(9, 0), _features(3, 1)
    _, maps = _model(k=4, image_size=32, blur_sigma=4.0).fit(train).predict(test)
    _, ref_grids, _ = _reference(train, test, 4)
    ref = score_maps(torch.from_numpy(ref_grids).float(), 32, 4.0, "reflect").numpy()
    np.testing.assert_allclose(maps, ref, rtol=1e-6, atol=1e-6)


def test_k_is_clipped_to_the_training_images():
    train, test = _features(5, 2), _features(4, 3)
    scores, maps = _model(k=50).fit(train).predict(test)
    ref_scores, ref_grids, nn = _reference(train, test, 50)
    assert nn.shape[1] == 5  # all five training images
    np.testing.assert_array_equal(_model(k=50).fit(train).neighbours(test), nn)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(maps, ref_grids, rtol=1e-6, atol=1e-6)
    s5, m5 = _model(k=5).fit(train).predict(test)
    np.testing.assert_array_equal(scores, s5)
    np.testing.assert_array_equal(maps, m5)


def test_a_training_image_scores_zero_with_k_1():
    train = _features(6, 4)
    scores, maps = _model(k=1).fit(train).predict({k: v[2:4] for k, v in train.items()})
    assert np.all(scores == 0) and np.all(maps == 0)


def test_deterministic_and_independent_of_the_query_block():
    train, test = _features(10, 5), _features(7, 6)
    model = _model(k=3, image_size=16, blur_sigma=1.0).fit(train)
    base = model.predict(test, query_images=None)
    for block in (1, 2, 3, 16):
        s, m = model.predict(test, query_images=block)
        np.testing.assert_array_equal(s, base[0])
        np.testing.assert_array_equal(m, base[1])
    again = _model(k=3, image_size=16, blur_sigma=1.0).fit(train).predict(test)
    np.testing.assert_array_equal(again[0], base[0])
    np.testing.assert_array_equal(again[1], base[1])
    # one image scored alone gets exactly what it gets among the others
    s1, m1 = model.predict({k: v[4:5] for k, v in test.items()})
    assert s1[0] == base[0][4] and np.array_equal(m1[0], base[1][4])
    with pytest.raises(ModelError, match="query_images"):
        model.predict(test, query_images=0)


def test_gallery_chunks_bound_the_search_and_keep_the_result(monkeypatch):
    train, test = _features(8, 7), _features(4, 8)
    assert spade_mod.gallery_images(64) == (1 << 26) // 64**2
    monkeypatch.setattr(spade_mod, "GALLERY_BLOCK_ELEMS", 64 * 64 * 2)  # 2 gallery images a block
    assert spade_mod.gallery_images(64) == 2
    scores, maps = _model(k=5).fit(train).predict(test)
    ref_scores, ref_grids, _ = _reference(train, test, 5)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(maps, ref_grids, rtol=1e-6, atol=1e-6)


def test_ties_pick_the_lower_training_index():
    train = _features(4, 9)
    train = {k: torch.cat([v[:1], v[:1], v[1:]]) for k, v in train.items()}  # images 0 and 1 equal
    d, idx = spade_mod.nearest_images(spade_mod.pooled_features(train["layer2"][:1]),
                                      spade_mod.pooled_features(train["layer2"]), 2)
    assert idx.tolist() == [[0, 1]] and d[0, 0] == 0 and d[0, 1] == 0


def test_save_load_round_trip_with_provenance(tmp_path):
    train, test = _features(8, 10), _features(3, 11)
    half = {k: v.half() for k, v in train.items()}  # float16 features are kept as they are
    model = _model(k=3).fit(half, sources=["a"] * 3 + ["b"] * 5, provenance={"backbone": "toy", "weights": "w"})
    assert model.train["layer1"].dtype == torch.float16
    assert model.train_sources == {"a": 3, "b": 5} and model.train_origin.tolist() == [0] * 3 + [1] * 5
    path = tmp_path / "spade.pt"
    model.save(path)
    loaded = load_model("spade", path, expect_config=model.config)
    for a, b in zip(model.predict(test), loaded.predict(test)):
        np.testing.assert_array_equal(a, b)
    assert loaded.provenance == {"backbone": "toy", "weights": "w", "layers": list(LAYERS)}
    assert loaded.train_sources == {"a": 3, "b": 5} and loaded.source_names == ["a", "b"]
    assert loaded.train["layer1"].dtype == torch.float16 and loaded.n_train_images == 8
    with pytest.raises(ModelError, match="k: file has 3, expected 4"):
        load_model("spade", path, expect_config={**model.config.to_dict(), "k": 4})
    with pytest.raises(ModelError, match="holds a 'spade' model"):
        load_model("padim", path)


def test_errors_name_the_fix():
    train = _features(4, 12)
    with pytest.raises(ModelError, match="not fitted"):
        _model().predict(train)
    with pytest.raises(ModelError, match="cannot save an unfitted"):
        _model().save("unused.pt")
    model = _model().fit(train)
    with pytest.raises(ModelError, match="layer1 of shape"):
        model.predict(_features(2, 13, c1=6))
    with pytest.raises(ModelError, match="lack layer"):
        model.predict({"layer1": train["layer1"]})
    with pytest.raises(ModelError, match="'k' must be a positive integer"):
        _model(k=0)
    with pytest.raises(ModelError, match="sources has 2 labels for 4 images"):
        _model().fit(train, sources=["a", "b"])


def test_registered_opt_in_and_described():
    entry = REGISTRY["spade"]
    assert entry.label == "SPADE" and entry.predict_options == {"query_images": ("query_images", "query_images_global")}
    cfg = validate_config({})
    assert "spade" not in cfg["methods"] and cfg["spade"]["k"] == 50
    cfg = validate_config({"methods": ["patchcore", "padim", "spade"], "spade": {"k": 7}})
    text = entry.setup(cfg)
    assert "k = 7" in text and "layer1+layer2+layer3" in text and "pooled layer3" in text
