"""adloc.analysis.tsne: deterministic t-SNE, per-class subsampling, memory-bank composition."""

import numpy as np
import pytest

from adloc.analysis.figures import savefig
from adloc.analysis.tsne import (
    BACKBONE_TITLE, BANK_TITLE, embed_view, memory_bank_composition, plot_tsne,
    subsample_per_class, tsne_embed,
)
from adloc.errors import AdlocError


def _data(n_per=25, d=64, seed=0):
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(3 * i, 1, (n_per, d)) for i in range(3)])
    return x, np.repeat(["a", "b", "c"], n_per)


def test_same_seed_same_output():
    x, _ = _data(n_per=12)
    e1 = tsne_embed(x, seed=3, perplexity=8, max_iter=250)
    e2 = tsne_embed(x, seed=3, perplexity=8, max_iter=250)
    assert e1.shape == (36, 2)
    np.testing.assert_array_equal(e1, e2)


def test_small_sets_and_bad_input():
    x, _ = _data(n_per=2, d=5)  # 6 points: perplexity capped
    assert tsne_embed(x, seed=0, perplexity=30, max_iter=250).shape == (6, 2)
    with pytest.raises(AdlocError, match="at least 4"):
        tsne_embed(x[:3])
    with pytest.raises(AdlocError, match="NaN"):
        tsne_embed(np.full((5, 2), np.nan))


def test_subsampling():
    labels = np.array(["a"] * 10 + ["b"] * 3 + ["c"] * 7)
    idx = subsample_per_class(labels, 4, seed=0)
    assert list(np.unique(labels[idx], return_counts=True)[1]) == [4, 3, 4]
    assert np.all(np.diff(idx) > 0)
    np.testing.assert_array_equal(idx, subsample_per_class(labels, 4, seed=0))
    assert not np.array_equal(idx, subsample_per_class(labels, 4, seed=1))
    np.testing.assert_array_equal(subsample_per_class(labels, None), np.arange(20))
    x, lab = _data(n_per=30, d=8)
    coords, kept = embed_view(x, lab, seed=0, perplexity=5, max_points_per_class=10,
                              max_iter=250)
    assert coords.shape == (30, 2) and sorted(set(kept)) == ["a", "b", "c"]


def test_bank_composition():
    src = np.array(["a"] * 3 + ["b"] * 1)
    df = memory_bank_composition(src, {"a": 30, "b": 20, "c": 10})
    assert list(df["class"]) == ["a", "b", "c", "total"]
    r = df.set_index("class")
    assert r.loc["a", "bank_entries"] == 3 and r.loc["a", "bank_share"] == 0.75
    assert r.loc["a", "kept_share"] == 0.1 and r.loc["c", "bank_entries"] == 0
    assert r.loc["total", "bank_entries"] == 4 and r.loc["total", "train_patches"] == 60
    with pytest.raises(AdlocError, match="no training-patch count"):
        memory_bank_composition(np.array(["z"]), {"a": 1})


def test_plot(tmp_path):
    rng = np.random.default_rng(0)
    views = [(BANK_TITLE, rng.normal(size=(30, 2)), np.repeat(["a", "b", "c"], 10)),
             (BACKBONE_TITLE, rng.normal(size=(12, 2)), np.repeat(["a", "b", "c"], 4))]
    fig = plot_tsne(views)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == BANK_TITLE and "says nothing about the global model" in titles[1]
    out = savefig(fig, tmp_path / "tsne.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bank_by_source_and_pooled_features():
    """The tsne rule's two inputs, from a global PatchCore model and per-class feature sets."""
    import torch

    from adloc.analysis.tsne import bank_by_source, memory_bank_composition, pooled_backbone_features
    from adloc.features import FeatureSet
    from adloc.models.patchcore import PatchCore, PatchCoreConfig

    g = torch.Generator().manual_seed(0)
    feats = {"layer2": torch.rand(6, 6, 8, 8, generator=g), "layer3": torch.rand(6, 10, 4, 4, generator=g)}
    cfg = PatchCoreConfig(pretrain_embed_dim=16, target_embed_dim=16, coreset_ratio=0.2, image_size=32)
    model = PatchCore(cfg).fit(feats, sources=["a", "a", "b", "b", "b", "c"])
    bank, source, patches = bank_by_source(model)
    assert bank.shape == (len(source), 16) and patches == {"a": 128, "b": 192, "c": 64}
    assert {c: int((source == c).sum()) for c in set(source)} == {
        c: n for c, n in model.bank_sources.items() if n}
    comp = memory_bank_composition(source, patches).set_index("class")
    assert comp.loc["total", "bank_entries"] == len(source)
    with pytest.raises(AdlocError, match="without source classes"):
        bank_by_source(PatchCore(cfg).fit(feats))

    sets = [FeatureSet({k: v[:2] for k, v in feats.items()}, ["x0", "x1"], {}, 32),
            FeatureSet({k: v[2:] for k, v in feats.items()}, ["y0", "y1", "y2", "y3"], {}, 32)]
    x, labels = pooled_backbone_features(sets, ["a", "b"])
    want = torch.cat([v.mean(dim=(2, 3)) for v in feats.values()], dim=1).numpy()
    np.testing.assert_array_equal(x, want)
    assert labels.tolist() == ["a"] * 2 + ["b"] * 4
    with pytest.raises(AdlocError, match="2 feature sets for 1 classes"):
        pooled_backbone_features(sets, ["a"])


def test_pooled_features_of_float16_sets_equal_their_float32_copies():
    """route and tsne read float16 feature files as stored (keep_dtype): the pooled values are
    those of the float32 copy load_features would otherwise return."""
    import torch

    from adloc.analysis.tsne import pooled_backbone_features
    from adloc.features import FeatureSet

    g = torch.Generator().manual_seed(3)
    half = {"layer1": (torch.rand(5, 7, 16, 16, generator=g) * 40).half(), "layer2": torch.rand(5, 9, 8, 8, generator=g).half()}
    sets16 = [FeatureSet(half, [f"{i}.png" for i in range(5)], {}, 64)]
    sets32 = [FeatureSet({k: v.float() for k, v in half.items()}, sets16[0].paths, {}, 64)]
    a, la = pooled_backbone_features(sets16, ["c"])
    b, lb = pooled_backbone_features(sets32, ["c"])
    assert a.dtype == np.float32 and np.array_equal(a, b) and list(la) == list(lb)
