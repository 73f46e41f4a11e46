"""The study's coreset draws replayed in its order (issue 24 §4; adloc.models.study_draws)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from adloc.errors import ModelError
from adloc.models import PatchCore, PatchCoreConfig
from adloc.models.coreset import greedy_coreset, random_projection
from adloc.models.study_draws import study_draws

from test_models_coreset_knn import _study_sampler

ORDER = [("hazelnut", 391 * 784), ("carpet", 280 * 784), ("zipper", 240 * 784)]  # MVTec AD at 224


def _the_study_as_it_ran(order, dim):
    """A restatement of the study's stream order (notebook 04): set_seed(42) once, then per model:
    build torchvision's ResNet-50, a dummy forward, iterate the train DataLoader (its base seed),
    draw the projection, draw the start point from numpy's global stream."""
    import torchvision
    from torch.utils.data import DataLoader, TensorDataset

    random.seed(42)
    np.random.seed(42)
    torch.manual_seed(42)
    out = {}
    for name, n in order:
        net = torchvision.models.resnet50().eval()
        with torch.no_grad():
            net(torch.randn(1, 3, 224, 224))
        for _ in DataLoader(TensorDataset(torch.zeros(4, 1)), batch_size=8, shuffle=False):
            pass
        proj = torch.randn(dim, 128) / math.sqrt(128)
        out[name] = (proj, int(np.random.randint(n)))
    return out


def test_replayed_draws_equal_the_study_stream_order_and_leave_the_caller_alone():
    random.seed(7)
    np.random.seed(7)
    torch.manual_seed(7)
    before = (random.random(), np.random.rand(), torch.rand(1))
    random.seed(7)
    np.random.seed(7)
    torch.manual_seed(7)
    got = study_draws(ORDER, 1536)
    assert (random.random(), np.random.rand(), torch.rand(1)) == before  # streams untouched
    ref = _the_study_as_it_ran(ORDER, 1536)
    for i, (name, _) in enumerate(ORDER):
        assert got[name].position == i
        assert got[name].start == ref[name][1]
        assert torch.equal(got[name].projection, ref[name][0])
    # each class's draws depend on the classes fitted before it (the study's leak)
    alone = study_draws([ORDER[1]], 1536)["carpet"]
    assert alone.start != got["carpet"].start or not torch.equal(alone.projection, got["carpet"].projection)
    rec = got["zipper"].record()
    assert rec["position"] == 2 and len(rec["projection_sha256"]) == 64


def test_patchcore_with_study_draws_selects_the_study_sampler_points():
    """With the replayed projection and start point, the fitted bank is the study sampler's
    selection on the same patches, and the model file records the draws."""
    gen = torch.Generator().manual_seed(0)
    feats = {"layer2": torch.randn(6, 8, 6, 6, generator=gen), "layer3": torch.randn(6, 16, 3, 3, generator=gen)}
    cfg = dict(layers=("layer2", "layer3"), pretrain_embed_dim=None, target_embed_dim=None,
               coreset_ratio=0.1, coreset_projection_dim=12, coreset_start="random_point",
               coreset_draws="study", scoring="study", blur_sigma=0.0, image_size=24, seed=42)
    order = [("a", 4), ("b", 6)]  # class a fitted first, then this one with 6 images
    model = PatchCore(PatchCoreConfig(**cfg)).fit(feats, draw_order=order)
    rec = model.provenance["study_draws"]
    assert rec["order"] == ["a", "b"] and rec["position"] == 1
    per = 36
    draw = study_draws([("a", 4 * per), ("b", 6 * per)], 24, 12)["b"]
    assert rec["start"] == draw.start
    # the same patches through the study's sampler from the study's start
    ref_model = PatchCore(PatchCoreConfig(**{**cfg, "coreset_ratio": 1.0, "coreset_draws": "seeded"})).fit(feats)
    store = ref_model.bank
    n = max(1, int(store.shape[0] * 0.1))
    z = random_projection(store, 12, 0, matrix=draw.projection).numpy()
    expect = _study_sampler(z, n, draw.start)
    assert torch.equal(model.bank, store[expect])
    assert greedy_coreset(store, n, 12, start="random_point", draw=draw).tolist() == expect


def test_study_draws_errors():
    cfg = dict(coreset_start="random_point", coreset_draws="study", image_size=24,
               layers=("layer2",), pretrain_embed_dim=None, target_embed_dim=None, coreset_ratio=0.5)
    feats = {"layer2": torch.randn(3, 4, 4, 4)}
    with pytest.raises(ModelError, match="fitting order"):
        PatchCore(PatchCoreConfig(**cfg)).fit(feats)
    with pytest.raises(ModelError, match="random_point"):
        PatchCoreConfig(**{**cfg, "coreset_start": "mean_of_random"})
    with pytest.raises(ModelError, match="seeded"):
        PatchCore(PatchCoreConfig(**{**cfg, "coreset_draws": "seeded"})).fit(feats, draw_order=[("x", 3)])
    with pytest.raises(ModelError, match="training patches"):
        study_draws([("x", 0)], 8)
