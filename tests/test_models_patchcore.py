"""PatchCore: embedding, paper and study scoring, global fitting, model files."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from adloc.errors import ModelError
from adloc.models.patchcore import PatchCore, PatchCoreConfig, patchcore_embedding

torch.set_num_threads(1)


def _feats(n=6, seed=0, c2=6, c3=10):
    g = torch.Generator().manual_seed(seed)
    return {"layer2": torch.rand(n, c2, 8, 8, generator=g), "layer3": torch.rand(n, c3, 4, 4, generator=g)}


def test_embedding_reproduces_reference_pipeline():
    """patchcore-inspection: unfold 3x3 (zero pad) per layer, bilinearly upsample the unfolded
    deeper layer, adaptive-avg-pool each flattened (C,3,3) patch to P, stack, pool to T."""
    feats = _feats()
    p, t = 16, 12
    ours = patchcore_embedding(feats, ["layer2", "layer3"], 3, p, t)  # (N, T, 8, 8)
    per_layer = []
    for name in ["layer2", "layer3"]:
        x = feats[name]
        n, c, h, w = x.shape
        u = F.unfold(x, 3, padding=1).reshape(n, c, 3, 3, h, w)  # (N, C, 3, 3, h, w)
        if (h, w) != (8, 8):
            u = F.interpolate(u.reshape(n, c * 9, h, w), size=(8, 8), mode="bilinear", align_corners=False)
            u = u.reshape(n, c, 3, 3, 8, 8)
        u = u.permute(0, 4, 5, 1, 2, 3).reshape(n * 64, 1, c * 9)
        per_layer.append(F.adaptive_avg_pool1d(u, p).squeeze(1))
    stacked = torch.stack(per_layer, 1).reshape(len(per_layer[0]), 1, -1)
    ref = F.adaptive_avg_pool1d(stacked, t).reshape(6, 8, 8, t).permute(0, 3, 1, 2)
    assert torch.allclose(ours, ref, atol=1e-6)


def test_study_embedding_is_avgpool_upsample_concat():
    feats = _feats()
    ours = patchcore_embedding(feats, ["layer2", "layer3"], 3, None, None)
    a = F.avg_pool2d(feats["layer2"], 3, 1, 1)
    b = F.interpolate(F.avg_pool2d(feats["layer3"], 3, 1, 1), size=(8, 8), mode="bilinear", align_corners=False)
    assert torch.equal(ours, torch.cat([a, b], 1)) and ours.shape[1] == 16


def _tiny_model(scoring, k):
    cfg = PatchCoreConfig(layers=("layer2",), pretrain_embed_dim=None, target_embed_dim=None, patch_size=1,
                          num_neighbors=k, scoring=scoring, blur_sigma=0.0, image_size=4)
    model = PatchCore(cfg)
    model.bank = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [10.0, 10.0]])
    return model


# one image, a 1x2 patch grid: q1 = (3, 0), q2 = (0.2, 0)
_QUERY = {"layer2": torch.tensor([[3.0, 0.2], [0.0, 0.0]]).reshape(1, 2, 1, 2)}


def test_paper_reweighting_hand_computed():
    """q1 = (3,0) has the max patch score: nearest bank entry m* = (1,0), s* = 2.
    N_3(m*) = {(1,0) d=0, (0,0) d=1, (0,2) d=sqrt5}; distances from q1 to them: 2, 3, sqrt(13).
    w = 1 - e^2 / (e^2 + e^3 + e^sqrt13) = 7.389 / (7.389 + 20.086 + 36.803) -> w = 0.885043; s = w * 2 = 1.770086."""
    model = _tiny_model("paper", 3)
    scores, maps = model.predict(_QUERY)
    w = 1 - math.exp(2) / (math.exp(2) + math.exp(3) + math.exp(math.sqrt(13)))
    assert w == pytest.approx(0.885043, abs=1e-6)
    assert scores[0] == pytest.approx(2 * w, rel=1e-6)
    # map: unweighted L2 patch scores (2, 0.2), bilinearly upsampled, no blur here
    grid = torch.tensor([[[2.0, 0.2]]])
    ref = F.interpolate(grid[None], size=(4, 4), mode="bilinear", align_corners=False)[0, 0]
    np.testing.assert_allclose(maps[0], ref.numpy(), rtol=1e-6)


def test_study_scoring_hand_computed():
    """Squared L2 to the query's own 3 nearest entries; patch = d1 * (1 - e^-d1 / (sum e^-di + 1e-8)).
    q1: d = (4, 9, 13): e^-d = (0.018316, 0.000123, 0.000002), w = 1 - 0.993183 = 0.006817, p1 = 0.02726;
    q2: d = (0.04, 0.64, 4.04): e^-d = (0.960789, 0.527292, 0.017597), w = 0.361889, p2 = 0.01448;
    image score = max = p1. (With the study's real squared distances of 100+, e^-d underflows and
    w = 1: the score is plain d1.)"""
    model = _tiny_model("study", 3)
    scores, maps = model.predict(_QUERY)

    def patch(d):
        return d[0] * (1 - math.exp(-d[0]) / (sum(math.exp(-v) for v in d) + 1e-8))

    p1, p2 = patch([4, 9, 13]), patch([0.04, 0.64, 4.04])
    assert p1 == pytest.approx(0.02726, abs=1e-5) and p2 == pytest.approx(0.01448, abs=1e-5)
    assert scores[0] == pytest.approx(max(p1, p2), rel=1e-5)
    assert maps[0, 0, 0] == pytest.approx(p1, rel=1e-5)  # left edge of the upsampled 1x2 grid


def test_study_mode_matches_study_code_on_random_features():
    """Re-statement of the study's MemoryBank.compute_anomaly_scores with faiss (float32 numpy)."""
    import faiss

    train, test = _feats(8, 1), _feats(3, 2)
    cfg = PatchCoreConfig(pretrain_embed_dim=None, target_embed_dim=None, scoring="study", blur_sigma=0,
                          coreset_ratio=0.25, image_size=32)
    model = PatchCore(cfg).fit(train)
    scores, maps = model.predict(test)
    emb = patchcore_embedding(test, ["layer2", "layer3"], 3, None, None)
    q = emb.permute(0, 2, 3, 1).reshape(-1, emb.shape[1]).numpy()
    index = faiss.IndexFlatL2(q.shape[1])
    index.add(model.bank.numpy())
    d, _ = index.search(q, 9)
    e = np.exp(-d)
    ps = d[:, 0] * (1.0 - e[:, 0] / (e.sum(1) + 1e-8))
    grid = ps.reshape(3, 8, 8)
    np.testing.assert_allclose(scores, grid.reshape(3, -1).max(1), rtol=1e-5)
    up = F.interpolate(torch.from_numpy(grid)[:, None], size=(32, 32), mode="bilinear", align_corners=False)[:, 0]
    np.testing.assert_allclose(maps, up.numpy(), rtol=1e-5, atol=1e-6)


def _large_feats(n, seed):
    """Features with large norms (like ResNet-50's), where faiss' float32 rounding is visible."""
    g = torch.Generator().manual_seed(seed)
    return {"layer2": 20 + 10 * torch.rand(n, 64, 8, 8, generator=g),
            "layer3": 20 + 10 * torch.rand(n, 96, 4, 4, generator=g)}


@pytest.mark.parametrize("scoring", ["study", "paper"])
def test_maps_do_not_depend_on_the_batch_size(scoring):
    """The k-NN runs on fixed blocks of query_images images: batch 1, 8 or all give the same bits."""
    cfg = PatchCoreConfig(pretrain_embed_dim=None, target_embed_dim=None, scoring=scoring, blur_sigma=0,
                          coreset_ratio=1.0, image_size=16)
    model = PatchCore(cfg).fit(_large_feats(10, 1))
    test = _large_feats(21, 2)
    ref = model.predict(test, batch_size=21, query_images=8)
    for bs in (1, 8, 5):
        s, m = model.predict(test, batch_size=bs, query_images=8)
        assert np.array_equal(s, ref[0]) and np.array_equal(m, ref[1]), bs
    for q in (None, 21):  # a whole split in one search: the same, whatever the batch
        a, b = model.predict(test, batch_size=4, query_images=q), model.predict(test, batch_size=21, query_images=q)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    with pytest.raises(ModelError, match="query_images"):
        model.predict(test, query_images=0)


def test_study_query_blocks_give_the_study_codes_distances():
    """The study searched faiss 8 images at a time; query_images=8 reproduces those searches."""
    import faiss

    cfg = PatchCoreConfig(pretrain_embed_dim=None, target_embed_dim=None, scoring="study", blur_sigma=0,
                          coreset_ratio=1.0, image_size=16)
    model = PatchCore(cfg).fit(_large_feats(10, 1))
    test = _large_feats(21, 2)
    scores, _ = model.predict(test, query_images=8)
    emb = patchcore_embedding(test, ["layer2", "layer3"], 3, None, None)
    q = emb.permute(0, 2, 3, 1).reshape(-1, emb.shape[1]).numpy()
    index = faiss.IndexFlatL2(q.shape[1])
    index.add(model.bank.numpy())
    d = np.concatenate([index.search(q[s * 64 : (s + 8) * 64], 9)[0] for s in range(0, 21, 8)])
    e = np.exp(-d)
    study = (d[:, 0] * (1.0 - e[:, 0] / (e.sum(1) + 1e-8))).reshape(21, -1).max(1)
    # (one search over all 21 images differs from this by ~0.1 on this machine's BLAS; how much
    # depends on the BLAS kernels, so it is not asserted)
    np.testing.assert_allclose(scores, study, rtol=1e-6, atol=0)


def test_paper_map_is_blurred_l2_nn_distance():
    train, test = _feats(8, 1), _feats(2, 3)
    cfg = PatchCoreConfig(pretrain_embed_dim=8, target_embed_dim=8, coreset_ratio=0.5, image_size=40, blur_sigma=4.0)
    model = PatchCore(cfg).fit(train)
    _, maps = model.predict(test)
    emb = patchcore_embedding(test, ["layer2", "layer3"], 3, 8, 8)
    q = emb.permute(0, 2, 3, 1).reshape(-1, 16 // 2).double()
    nn_d = torch.cdist(q, model.bank.double()).min(1).values.reshape(2, 8, 8)
    up = F.interpolate(nn_d.float()[:, None], size=(40, 40), mode="bilinear", align_corners=False)[:, 0].double().numpy()
    ref = np.stack([ndimage.gaussian_filter(m, 4.0, mode="reflect", truncate=4.0) for m in up])
    np.testing.assert_allclose(maps, ref, rtol=1e-4, atol=1e-5)


def test_global_fit_records_bank_sources_and_save_load_roundtrip(tmp_path):
    feats = _feats(6, 4)
    cfg = PatchCoreConfig(pretrain_embed_dim=16, target_embed_dim=16, coreset_ratio=0.2, image_size=32)
    prov = {"backbone": "resnet18", "weights": "random", "seed": 0, "sha256": None}
    model = PatchCore(cfg).fit(feats, sources=["a", "a", "b", "b", "b", "c"], provenance=prov)
    n_bank = int(6 * 64 * 0.2)
    assert model.bank.shape == (n_bank, 16)
    assert sum(model.bank_sources.values()) == n_bank and set(model.bank_sources) <= {"a", "b", "c"}
    assert model.train_sources == {"a": 2, "b": 3, "c": 1}
    s1, m1 = model.predict(feats)
    f = tmp_path / "models" / "patchcore" / "global.pt"
    model.save(f)
    raw = torch.load(f, weights_only=True)
    assert raw["kind"] == "patchcore" and raw["format_version"] == 1 and raw["provenance"]["backbone"] == "resnet18"
    assert raw["provenance"]["layers"] == ["layer2", "layer3"] and raw["bank_sources"] == model.bank_sources
    loaded = PatchCore.load(f, expect_config=cfg.to_dict())
    s2, m2 = loaded.predict(feats)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(m1, m2)
    assert loaded.bank_sources == model.bank_sources
    # features from another backbone are refused
    with pytest.raises(ModelError, match="backbone"):
        from adloc.features import FeatureSet

        loaded.predict(FeatureSet(feats, [str(i) for i in range(6)], {"backbone": "resnet50"}, 32))


def test_load_errors(tmp_path):
    cfg = PatchCoreConfig(pretrain_embed_dim=None, target_embed_dim=None, coreset_ratio=0.5, image_size=32)
    model = PatchCore(cfg).fit(_feats(3))
    f = tmp_path / "m.pt"
    model.save(f)
    with pytest.raises(ModelError) as err:
        PatchCore.load(f, expect_config={**cfg.to_dict(), "coreset_ratio": 0.1, "scoring": "study"})
    msg = str(err.value)
    assert "coreset_ratio: file has 0.5, expected 0.1" in msg and "scoring" in msg and "delete the file and rerun" in msg.lower()
    # device is a runtime key, not compared
    PatchCore.load(f, expect_config={**cfg.to_dict(), "device": "cpu"})
    with pytest.raises(ModelError, match="not found"):
        PatchCore.load(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"xx")
    with pytest.raises(ModelError, match="corrupt"):
        PatchCore.load(tmp_path / "bad.pt")
    raw = torch.load(f, weights_only=True)
    torch.save({**raw, "kind": "padim"}, tmp_path / "kind.pt")
    with pytest.raises(ModelError, match="'padim' model"):
        PatchCore.load(tmp_path / "kind.pt")
    torch.save({**raw, "format_version": 99}, tmp_path / "ver.pt")
    with pytest.raises(ModelError, match="format_version 99"):
        PatchCore.load(tmp_path / "ver.pt")


def test_config_validation():
    with pytest.raises(ModelError, match="'coreset_ration'"):
        PatchCoreConfig.from_dict({"coreset_ration": 0.1})
    with pytest.raises(ModelError, match="scoring"):
        PatchCoreConfig(scoring="fast")
    with pytest.raises(ModelError, match="coreset_dtype"):
        PatchCoreConfig(coreset_dtype="bfloat16")
    cfg = PatchCoreConfig.from_dict({"layers": ["layer2", "layer3"]})
    assert cfg.layers == ("layer2", "layer3") and PatchCoreConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ModelError, match="not fitted"):
        PatchCore().predict(_feats(1))
    with pytest.raises(ModelError, match="image_size"):
        from adloc.features import FeatureSet

        PatchCore(PatchCoreConfig(image_size=224)).fit(FeatureSet(_feats(2), ["a", "b"], {}, 256))


def test_float16_store_is_the_float32_fit_of_the_rounded_embeddings():
    """embedding_dtype float16 selects the coreset of, and keeps, the float16-rounded patches;
    float16 input features give the same model as their float32 values."""
    feats = _feats(8, seed=3)
    base = dict(layers=("layer2", "layer3"), pretrain_embed_dim=None, target_embed_dim=None,
                coreset_ratio=0.25, blur_sigma=0.0, image_size=16)
    half = PatchCore(PatchCoreConfig(**base, embedding_dtype="float16")).fit(feats)
    emb = patchcore_embedding(feats, ["layer2", "layer3"], 3, None, None)
    rounded = emb.half().float()
    # a float32 fit on a model whose embedding returns the rounded values
    ref = PatchCore(PatchCoreConfig(**base))
    ref._embed = lambda f, s, e: rounded[s:e]
    ref.fit(feats)
    assert half.bank.dtype == torch.float32 and torch.equal(half.bank, ref.bank)
    # float16 features (as a float16 feature file keeps them) fit exactly as their float32 values
    f16 = {k: v.half() for k, v in feats.items()}
    a = PatchCore(PatchCoreConfig(**base)).fit(f16)
    b = PatchCore(PatchCoreConfig(**base)).fit({k: v.float() for k, v in f16.items()})
    assert torch.equal(a.bank, b.bank)
    # release_features empties the caller's container after the embedding; same model
    given = {k: v.clone() for k, v in feats.items()}
    c = PatchCore(PatchCoreConfig(**base)).fit(given, release_features=True)
    assert given == {} and torch.equal(c.bank, PatchCore(PatchCoreConfig(**base)).fit(feats).bank)
    with pytest.raises(ModelError, match="embedding_dtype"):
        PatchCoreConfig(embedding_dtype="bfloat16")
    with pytest.raises(ModelError, match="overflows float16"):
        PatchCore(PatchCoreConfig(**base, embedding_dtype="float16")).fit({k: v * 1e6 for k, v in feats.items()})
