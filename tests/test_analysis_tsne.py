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
