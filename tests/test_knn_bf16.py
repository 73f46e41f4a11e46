"""The opt-in bf16 k-NN (adloc.models.knn_bf16): bit-identical to its float32 reference."""

import logging

import pytest
import torch

from adloc.models import knn as knn_mod
from adloc.models import knn_bf16
from adloc.models.knn import KnnIndex
from adloc.models.knn_bf16 import Bf16Search, direct_knn, direct_sq_dist
from adloc.models.patchcore import PatchCore

torch.set_num_threads(1)

needs_bf16 = pytest.mark.skipif(not knn_bf16.bf16_supported(), reason="CPU without AVX512-BF16/AMX-BF16")


def _data(q, m, d, seed=0, scale=1.0, offset=0.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(q, d, generator=g) * scale + offset, torch.randn(m, d, generator=g) * scale + offset)


def _same(search, queries, bank, k):
    d, i = search.search(queries, k)
    rd, ri = direct_knn(queries, bank, k)
    assert d.dtype == torch.float32 and i.dtype == torch.int64
    assert torch.equal(i, ri), (i != ri).sum()
    assert torch.equal(d, rd)
    return d, i


def test_direct_distance_is_the_fixed_tree_whatever_the_batch():
    q, b = _data(7, 7, 100)
    r = direct_sq_dist(q, b)
    one = torch.stack([direct_sq_dist(q[j : j + 1], b[j : j + 1])[0] for j in range(7)])
    assert torch.equal(r, one)
    ref = ((q.double() - b.double()) ** 2).sum(1)
    assert torch.allclose(r.double(), ref, rtol=1e-6)


@needs_bf16
@pytest.mark.parametrize("d,k", [(64, 1), (100, 3), (256, 9)])
def test_random_data_equals_the_reference(d, k):
    queries, bank = _data(150, 1500, d, seed=d)
    s = Bf16Search(bank)
    _same(s, queries, bank, k)
    assert s.stats["queries"] == 150 and s.stats["fallback"] == 0
    assert s.stats["candidates"] < 150 * 1500 / 10  # the bound prunes most of the bank


@needs_bf16
@pytest.mark.parametrize("case", ["near_ties", "large_norms", "large_offset", "duplicates", "nonnegative"])
def test_adversarial_data_equals_the_reference(case):
    g = torch.Generator().manual_seed(3)
    queries, bank = _data(80, 800, 96, seed=4)
    if case == "near_ties":  # many bank rows within float32 rounding of each other and of a query
        base = bank[:20].repeat(40, 1)
        bank = base + torch.randn(base.shape, generator=g) * 1e-6
        queries = torch.cat([bank[:40] + 1e-7, queries[:40]])
    elif case == "large_norms":
        bank, queries = bank * 3e4, queries * 3e4
    elif case == "large_offset":  # norms far larger than the distances (cancellation)
        bank, queries = bank + 1e3, queries + 1e3
    elif case == "duplicates":  # exact ties: the lower index wins, as in the reference
        bank = torch.cat([bank[:100]] * 8)
        queries = torch.cat([bank[:30], queries[:50]])
    else:  # post-ReLU-like features
        bank, queries = bank.relu(), queries.relu()
    for k in (1, 4, 17):
        s = Bf16Search(bank)
        d, i = _same(s, queries, bank, k)
    if case == "duplicates":
        assert torch.equal(i[:30, 0], torch.arange(30)) and (d[:30, 0] == 0).all()


@needs_bf16
def test_fallback_gives_the_same_results():
    queries, bank = _data(60, 700, 48, seed=5)
    s = Bf16Search(bank, max_candidates=0, widen=1)  # every query falls back to the float32 level
    _same(s, queries, bank, 5)
    assert s.stats["fallback"] == 60 and s.stats["candidates"] == 0
    dup = torch.cat([bank[:10]] * 50)  # 50 exact copies per row: candidate sets >= 50
    q = torch.cat([dup[:5], queries[:5]])
    s = Bf16Search(dup, max_candidates=20, widen=1)
    _same(s, q, dup, 3)
    assert s.stats["fallback"] == 10
    s = Bf16Search(dup, max_candidates=20)  # a second window 8x as wide holds every copy
    _same(s, q, dup, 3)
    assert s.stats["fallback"] == 0 and s.stats["candidates"] >= 10 * 50
    s = Bf16Search(dup, max_candidates=4, widen=2)  # 8 < 50 copies: still over, float32 level
    _same(s, q, dup, 3)
    assert s.stats["fallback"] == 10


@needs_bf16
def test_deterministic_and_independent_of_blocks_and_batches():
    queries, bank = _data(200, 1200, 80, seed=6)
    d1, i1 = Bf16Search(bank).search(queries, 4)
    d2, i2 = Bf16Search(bank).search(queries, 4)
    d3, i3 = Bf16Search(bank, max_block_elems=1200 * 7).search(queries, 4)
    part = Bf16Search(bank).search(queries[50:53], 4)
    assert torch.equal(d1, d2) and torch.equal(i1, i2) and torch.equal(d1, d3) and torch.equal(i1, i3)
    assert torch.equal(part[0], d1[50:53]) and torch.equal(part[1], i1[50:53])


@needs_bf16
def test_close_to_faiss_and_patchcore_uses_it(caplog):
    queries, bank = _data(120, 2000, 64, seed=7)
    f = KnnIndex(bank)
    b = KnnIndex(bank, bf16=True)
    assert (f.backend, b.backend) == ("faiss", "bf16")
    fd, fi = f.search(queries, 3, squared=True)
    bd, bi = b.search(queries, 3, squared=True)
    # faiss' expansion formula errs by about 2^-24 (|q|^2 + |b|^2) per distance
    tol = 8 * 2.0 ** -24 * (queries.pow(2).sum(1, keepdim=True) + bank.pow(2).sum(1).max())
    assert ((fd - bd).abs() <= tol).all() and (fi == bi).float().mean() > 0.99
    g = torch.Generator().manual_seed(0)
    feats = {"layer2": torch.rand(4, 6, 8, 8, generator=g), "layer3": torch.rand(4, 10, 4, 4, generator=g)}
    model = PatchCore({"coreset_ratio": 0.5, "knn_bf16": True, "image_size": 16})
    model.fit(feats)
    with caplog.at_level(logging.INFO, logger="adloc.models.patchcore"):
        scores, _ = model.predict(feats)
    assert ", bf16, bank" in caplog.text and "bf16 k-NN 260 queries" in caplog.text
    plain = PatchCore({"coreset_ratio": 0.5, "image_size": 16})
    plain.fit(feats)
    ref, _ = plain.predict(feats)
    assert abs(scores - ref).max() < 1e-4


def test_without_the_instructions_it_searches_in_float32(monkeypatch, caplog):
    monkeypatch.setattr(knn_bf16, "bf16_supported", lambda: False)
    queries, bank = _data(20, 300, 16, seed=8)
    with caplog.at_level(logging.INFO, logger=knn_mod.__name__):
        index = KnnIndex(bank, bf16=True)
    assert index.backend == "faiss" and index.stats is None
    assert "no AVX512-BF16/AMX-BF16 instructions; searching in plain float32" in caplog.text
    d, i = index.search(queries, 2)
    rd, ri = KnnIndex(bank).search(queries, 2)
    assert torch.equal(d, rd) and torch.equal(i, ri)


@pytest.mark.parametrize("d", [1, 2, 3, 5, 100, 256, 1000])
def test_pair_distances_are_the_padded_tree_bit_for_bit(d, monkeypatch):
    """The re-rank's in-place, chunked tree equals the reference written out: pad to a power of
    two with zeros, then add halves elementwise (chunks smaller than the pairs, and not)."""
    import adloc.models.knn_bf16 as kb

    q, b = _data(40, 60, d, seed=d)
    g = torch.Generator().manual_seed(d)
    qi, bi = torch.randint(0, 40, (300,), generator=g), torch.randint(0, 60, (300,), generator=g)
    t = (q[qi] - b[bi]) ** 2
    p = 1 << max(0, (d - 1).bit_length())
    t = torch.nn.functional.pad(t, (0, p - d))
    while t.shape[1] > 1:
        t = t[:, : t.shape[1] // 2] + t[:, t.shape[1] // 2 :]
    for chunk in (7, 256, 4096):
        monkeypatch.setattr(kb, "PAIR_CHUNK", chunk)
        assert torch.equal(kb.pair_distances(q, b, qi, bi), t[:, 0])
    assert torch.equal(direct_sq_dist(q[qi], b[bi]), t[:, 0])


@needs_bf16
@pytest.mark.parametrize("k", [1, 4])
def test_rows_of_very_different_norms_keep_the_exact_neighbours(k):
    """The candidate test uses each bank row's own norm, the 'over' test the largest: a bank
    with a few rows 20x longer than the rest, queries near both kinds, near ties included."""
    queries, bank = _data(120, 2000, 64, seed=11)
    bank[::50] *= 20
    queries[::3] = bank[::50][:40] + 1e-3 * queries[::3]  # near the long rows
    queries[1::7] = bank[5:22] + 1e-6  # near ties with ordinary rows
    _same(Bf16Search(bank), queries, bank, k)
    _same(Bf16Search(bank, max_candidates=8), queries, bank, k)
