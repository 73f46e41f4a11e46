"""PaDiM: statistics and Mahalanobis distances against numpy/scipy, model files."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage
from scipy.spatial.distance import mahalanobis

from adloc.errors import ModelError
from adloc.models.padim import (
    MIN_ROWS,
    Padim,
    PadimConfig,
    padim_embedding,
    resolve_n_features,
)
from adloc.models.padim_stats import RowEmbedding, invert_in_place, padim_statistics

torch.set_num_threads(1)


def _feats(n, seed):
    g = torch.Generator().manual_seed(seed)
    return {"layer1": torch.randn(n, 4, 4, 4, generator=g), "layer2": torch.rand(n, 3, 2, 2, generator=g) * 2}


def _numpy_embedding(feats, idx):
    up = feats["layer2"].numpy().repeat(2, axis=2).repeat(2, axis=3)  # nearest x2
    cat = np.concatenate([feats["layer1"].numpy(), up], axis=1).astype(np.float64)
    return cat[:, idx]  # (N, D, 4, 4)


def test_distances_match_scipy_mahalanobis():
    train, test = _feats(12, 0), _feats(3, 1)
    cfg = PadimConfig(layers=("layer1", "layer2"), n_features=5, covariance_eps=0.01, image_size=16, blur_sigma=2.0)
    model = Padim(cfg).fit(train)
    idx = model.idx.numpy()
    assert len(idx) == 5 and len(set(idx)) == 5 and idx.max() < 7
    tr, te = _numpy_embedding(train, idx), _numpy_embedding(test, idx)
    ref = np.zeros((3, 4, 4))
    for i in range(4):
        for j in range(4):
            x = tr[:, :, i, j]
            cov = np.cov(x, rowvar=False, ddof=1) + 0.01 * np.eye(5)  # unbiased, like anomalib
            vi = np.linalg.inv(cov)
            mu = x.mean(0)
            for k in range(3):
                ref[k, i, j] = mahalanobis(te[k, :, i, j], mu, vi)
    ours = model.distances(test).numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5)
    # maps: bilinear upsample + Gaussian blur; image score = max of the blurred map
    scores, maps = model.predict(test)
    up = F.interpolate(torch.from_numpy(ref).float()[:, None], size=(16, 16), mode="bilinear", align_corners=False)[:, 0]
    blurred = np.stack([ndimage.gaussian_filter(m, 2.0, mode="reflect", truncate=4.0) for m in up.double().numpy()])
    np.testing.assert_allclose(maps, blurred, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(scores, maps.reshape(3, -1).max(1), rtol=1e-6)


def test_channel_subset_is_seeded_and_n_features_resolves():
    train = _feats(4, 2)
    a = Padim(PadimConfig(layers=("layer1", "layer2"), n_features=3, seed=5, image_size=16)).fit(train)
    b = Padim(PadimConfig(layers=("layer1", "layer2"), n_features=3, seed=5, image_size=16)).fit(train)
    c = Padim(PadimConfig(layers=("layer1", "layer2"), n_features=3, seed=6, image_size=16)).fit(train)
    assert torch.equal(a.idx, b.idx) and not torch.equal(a.idx, c.idx)
    # release_features empties the caller's dict; the model is the same; float16 maps fit as
    # their float32 values
    given = {k: v.clone() for k, v in train.items()}
    r = Padim(PadimConfig(layers=("layer1", "layer2"), n_features=3, seed=5, image_size=16))
    r.fit(given, release_features=True)
    assert given == {} and torch.equal(r.inv_covariance, a.inv_covariance)
    half = {k: v.half() for k, v in train.items()}
    h1 = Padim(PadimConfig(layers=("layer1", "layer2"), n_features=3, seed=5, image_size=16)).fit(half)
    h2 = Padim(PadimConfig(layers=("layer1", "layer2"), n_features=3, seed=5, image_size=16)).fit(
        {k: v.float() for k, v in half.items()})
    assert torch.equal(h1.mean, h2.mean) and torch.equal(h1.inv_covariance, h2.inv_covariance)
    assert resolve_n_features(None, "wide_resnet50_2", 1792) == 550
    assert resolve_n_features(None, "resnet50_timm", 1792) == 100
    assert resolve_n_features(None, "efficientnet_lite0", 176) == 100
    assert resolve_n_features(None, None, 7) == 7
    with pytest.raises(ModelError, match="out of range"):
        resolve_n_features(8, "resnet18", 7)
    auto = Padim(PadimConfig(layers=("layer1", "layer2"), n_features=None, image_size=16)).fit(train)
    assert auto.n_features == 7


def test_save_load_roundtrip_and_errors(tmp_path):
    train, test = _feats(6, 3), _feats(2, 4)
    cfg = PadimConfig(layers=("layer1", "layer2"), n_features=4, image_size=16, blur_mode="mirror")
    model = Padim(cfg).fit(train, sources=["x"] * 4 + ["y"] * 2, provenance={"backbone": "resnet18", "weights": "random"})
    assert model.train_sources == {"x": 4, "y": 2}
    s1, m1 = model.predict(test)
    f = tmp_path / "padim.pt"
    model.save(f)
    raw = torch.load(f, weights_only=True)
    assert raw["kind"] == "padim" and raw["provenance"]["backbone"] == "resnet18" and raw["n_features"] == 4
    loaded = Padim.load(f, expect_config=cfg)
    s2, m2 = loaded.predict(test)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(m1, m2)
    with pytest.raises(ModelError, match="covariance_eps: file has 0.01, expected 0.1"):
        Padim.load(f, expect_config={**cfg.to_dict(), "covariance_eps": 0.1})
    with pytest.raises(ModelError, match="'patchcore'"):
        from adloc.models.patchcore import PatchCore

        PatchCore.load(f)
    with pytest.raises(ModelError, match="unknown PadimConfig key"):
        PadimConfig.from_dict({"n_feature": 3})
    with pytest.raises(ModelError, match="at least 2"):
        Padim(cfg).fit(_feats(1, 0))


def test_loaded_model_is_a_private_mapping_of_its_file(tmp_path):
    """Model files load memory-mapped (adloc.models.common.load_model_file): writing into a loaded
    model's tensors changes that model only, never the file or a second load of it."""
    cfg = PadimConfig(layers=("layer1", "layer2"), n_features=4, image_size=16)
    f = tmp_path / "padim.pt"
    Padim(cfg).fit(_feats(6, 3)).save(f)
    before = f.read_bytes()
    a = Padim.load(f)
    ref = a.inv_covariance.clone()
    a.inv_covariance.mul_(2.0)
    a.mean.zero_()
    b = Padim.load(f)
    assert torch.equal(b.inv_covariance, ref) and not torch.equal(a.inv_covariance, ref)
    assert f.read_bytes() == before


def test_fitted_inverse_covariance_is_symmetric_and_matches_numpy():
    """The in-place inverse (Cholesky, triangular solve, L^-T L^-1), across position chunks."""
    train = _feats(20, 3)
    cfg = PadimConfig(layers=("layer1", "layer2"), n_features=6, covariance_eps=0.01, image_size=16, blur_sigma=0)
    model = Padim(cfg)
    model.position_chunk = 3  # 16 positions: 5 full chunks and a partial one
    model.fit(train)
    inv = model.inv_covariance
    assert torch.equal(inv, inv.transpose(1, 2))
    emb = _numpy_embedding(train, model.idx.numpy()).reshape(20, 6, 16)
    for p in range(16):
        cov = np.cov(emb[:, :, p], rowvar=False) + 0.01 * np.eye(6)
        np.testing.assert_allclose(inv[p].numpy(), np.linalg.inv(cov), rtol=1e-4, atol=1e-4)


def _odd_feats(n, seed, dtype=torch.float32):
    """Three stages on a 7x7 grid: 4x4 and 2x2 deeper maps (nearest ratios 4/7 and 2/7)."""
    g = torch.Generator().manual_seed(seed)
    return {
        "layer1": torch.randn(n, 6, 7, 7, generator=g).to(dtype),
        "layer2": (torch.rand(n, 8, 4, 4, generator=g) * 2).to(dtype),
        "layer3": (torch.randn(n, 10, 2, 2, generator=g) + 1).to(dtype),
    }


ODD = PadimConfig(layers=("layer1", "layer2", "layer3"), n_features=15, covariance_eps=0.01, image_size=28,
                  blur_sigma=2.0)


def test_position_chunks_gather_exactly_the_embedding():
    """RowEmbedding (chunks that split grid rows, deeper stages at non-integer ratios) gives the
    values of padim_embedding: centred output + returned mean reproduce (emb - mean) exactly."""
    feats = _odd_feats(9, 5, torch.float16)
    idx = torch.randperm(24, generator=torch.Generator().manual_seed(1))[:15].sort().values
    emb = padim_embedding({k: v.float() for k, v in feats.items()}, list(ODD.layers), idx).reshape(9, 15, 49)
    rows = RowEmbedding(feats, list(ODD.layers), idx, (7, 7))
    for start, stop in ((0, 5), (5, 13), (13, 14), (40, 49), (0, 49)):
        out = torch.empty(stop - start, 9, 15)
        mean = rows.centred(start, stop, out)
        ref_mean = (emb[:, :, start:stop].double().sum(0) / 9).float().t()
        assert torch.equal(mean, ref_mean)
        assert torch.equal(out, (emb[:, :, start:stop] - ref_mean.t()).permute(2, 0, 1))


@pytest.mark.parametrize("chunk_positions", [1, 5, 7, 49])
def test_fit_matches_a_float64_numpy_reference(chunk_positions):
    """Mean, covariance (unbiased + eps I) and its inverse against numpy in float64: mean to
    1e-6, covariance to 1e-5 and inverse to 1e-4 relative (Frobenius, per position; float32
    rounding); every position-chunk size gives bit-identical statistics."""
    train = _odd_feats(40, 7)
    model = Padim(ODD)
    model.stat_chunk_bytes = 4 * 40 * 15 * chunk_positions
    model.position_chunk = 4
    model.fit(train)
    idx = model.idx.numpy()
    emb = padim_embedding(train, list(ODD.layers), model.idx).double().numpy().reshape(40, 15, 49)
    mean_ref = emb.mean(0)
    np.testing.assert_allclose(model.mean.numpy(), mean_ref, rtol=1e-6, atol=1e-6)
    mean, scatter = padim_statistics(train, list(ODD.layers), model.idx, (7, 7), "cpu", model.stat_chunk_bytes)
    assert torch.equal(mean, model.mean)
    for p in range(49):
        cov_ref = np.cov(emb[:, :, p], rowvar=False, ddof=1)
        cov = scatter[p].double().numpy() / 39
        assert np.linalg.norm(cov - cov_ref) <= 1e-5 * np.linalg.norm(cov_ref)
        inv_ref = np.linalg.inv(cov_ref + 0.01 * np.eye(15))
        inv = model.inv_covariance[p].double().numpy()
        assert np.linalg.norm(inv - inv_ref) <= 1e-4 * np.linalg.norm(inv_ref)
    assert len(idx) == 15
    one = Padim(ODD)
    one.stat_chunk_bytes = 4 * 40 * 15 * 49
    one.fit(train)
    assert torch.equal(one.mean, model.mean) and torch.equal(one.inv_covariance, model.inv_covariance)


def test_two_fits_are_bit_identical():
    train = _odd_feats(30, 8, torch.float16)
    a, b = Padim(ODD).fit(train), Padim(ODD).fit(train)
    assert torch.equal(a.mean, b.mean) and torch.equal(a.inv_covariance, b.inv_covariance)


def test_scores_and_maps_do_not_depend_on_the_batch_size():
    """The same images scored 1, 5 and 16 at a time (and all at once) give bit-identical
    distances, maps and scores. 64-d on an 8x8 grid, so the products run through MKL's gemm
    (which computes products of fewer than 5 rows by another kernel: hence MIN_ROWS)."""
    g = torch.Generator().manual_seed(9)
    def feats(n):
        return {"layer1": torch.randn(n, 40, 8, 8, generator=g), "layer2": torch.rand(n, 48, 4, 4, generator=g)}
    cfg = PadimConfig(layers=("layer1", "layer2"), n_features=64, image_size=32, blur_sigma=2.0)
    model = Padim(cfg).fit(feats(80))
    test = feats(16)
    ref_d = model.distances(test, batch_size=16)
    ref_s, ref_m = model.predict(test, batch_size=16)
    assert MIN_ROWS >= 5
    for bs in (1, 5, 7, 100):
        assert torch.equal(model.distances(test, batch_size=bs), ref_d)
        s, m = model.predict(test, batch_size=bs)
        np.testing.assert_array_equal(s, ref_s)
        np.testing.assert_array_equal(m, ref_m)


@pytest.mark.parametrize("inference", [True, False])
def test_inverse_is_the_same_for_any_number_of_workers(inference):
    """invert_in_place shares chunks among Python threads, each running torch single-threaded:
    1, 2 or 3 workers give bit-identical inverses (and torch's thread count is restored)."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(23, 60, 40, generator=g)
    with torch.inference_mode(inference):
        cov = torch.bmm(x.transpose(1, 2), x) / 59 + 0.01 * torch.eye(40)
        out = {}
        for workers in (1, 2, 3):
            out[workers] = cov.clone()
            invert_in_place(out[workers], 4, workers=workers)
    assert torch.get_num_threads() == 1
    assert torch.equal(out[1], out[2]) and torch.equal(out[1], out[3])
    ref = np.linalg.inv(cov.double().numpy())
    assert np.abs(out[2].double().numpy() - ref).max() <= 1e-4 * np.abs(ref).max()
    singular = torch.zeros(3, 5, 5)
    with pytest.raises(ModelError, match="grid position 0 is singular"):
        invert_in_place(singular, 2, workers=2)
