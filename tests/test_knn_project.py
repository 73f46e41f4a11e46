"""The projected lower bound (adloc.models.knn_project): its candidates always hold the exact
k nearest rows under the float32 reference, so the bf16 search stays bit-identical with it."""

import pytest
import torch

from adloc.models import knn_bf16, knn_project
from adloc.models.knn_bf16 import Bf16Search, direct_knn
from adloc.models.knn_project import ProjectedLevel

torch.set_num_threads(1)

needs_bf16 = pytest.mark.skipif(not knn_bf16.bf16_supported(), reason="CPU without AVX512-BF16/AMX-BF16")


def _lowrank(q, m, dim, rank, noise=0.05, seed=0):
    """Rows near a rank-``rank`` subspace, as PatchCore embeddings are (most of their variance
    in a few directions)."""
    g = torch.Generator().manual_seed(seed)
    basis = torch.randn(rank, dim, generator=g)
    bank = torch.randn(m, rank, generator=g) @ basis + noise * torch.randn(m, dim, generator=g)
    queries = torch.randn(q, rank, generator=g) @ basis + noise * torch.randn(q, dim, generator=g)
    return queries, bank


def _case(name):
    queries, bank = _lowrank(90, 900, 128, 6, seed=1)
    if name == "near_ties":  # rows within float32 rounding of each other and of a query
        base = bank[:30].repeat(30, 1)
        bank = base + 1e-6 * torch.randn(base.shape, generator=torch.Generator().manual_seed(2))
        queries = torch.cat([bank[:45] + 1e-7, queries[:45]])
    elif name == "duplicates":  # exact ties: the lower index wins
        bank = torch.cat([bank[:150]] * 6)
        queries = torch.cat([bank[:30], queries[:60]])
    elif name == "large_offset":  # norms far above the distances (cancellation in the product)
        bank, queries = bank + 1e3, queries + 1e3
    elif name == "long_rows":  # a few rows 20x longer than the rest, queries near them
        bank[::30] *= 20
        queries[::3] = bank[::30] + 1e-3 * queries[::3]
    elif name == "full_rank":  # no low-dimensional structure: the bound prunes little
        g = torch.Generator().manual_seed(3)
        queries, bank = torch.randn(90, 128, generator=g), torch.randn(900, 128, generator=g)
    elif name == "relu":
        bank, queries = bank.relu(), queries.relu()
    return queries, bank


def _reference_rows(queries, bank, k):
    """Per query: the reference's k nearest and every row tied with its k-th (sets of indices)."""
    from adloc.models.knn_bf16 import direct_sq_dist

    d, _ = direct_knn(queries, bank, k)
    out = []
    for j in range(queries.shape[0]):
        r = direct_sq_dist(queries[j].expand_as(bank).contiguous(), bank)
        out.append(set((r <= d[j, -1]).nonzero()[:, 0].tolist()))
    return out


CASES = ["plain", "near_ties", "duplicates", "large_offset", "long_rows", "full_rank", "relu"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("k", [1, 5])
def test_candidates_hold_the_exact_neighbours(case, k):
    queries, bank = _case(case)
    level = ProjectedLevel(bank, bank.mean(0), dim=8)
    qi, bi, over = level.candidates(queries, k, limit=bank.shape[0])
    assert not over.any()
    pairs = {}
    for a, b in zip(qi.tolist(), bi.tolist()):
        pairs.setdefault(a, []).append(b)
    for j, wanted in enumerate(_reference_rows(queries, bank, k)):
        assert wanted <= set(pairs[j]), (case, j)
        assert pairs[j] == sorted(pairs[j])  # bank index ascending within a query
    assert qi.tolist() == sorted(qi.tolist())  # grouped by query


def test_any_directions_keep_the_bound(monkeypatch):
    """Nothing needs the principal directions to be exact or orthonormal: random, scaled,
    skewed directions still give a lower bound (through ``f``), only a looser one."""
    g = torch.Generator().manual_seed(4)
    queries, bank = _case("plain")
    skew = torch.randn(8, bank.shape[1], generator=g) * 1.3
    monkeypatch.setattr(knn_project, "principal_directions", lambda c, dim: skew[:dim].contiguous())
    level = ProjectedLevel(bank, bank.mean(0), dim=8)
    assert level.f > 2  # far from orthonormal
    qi, bi, over = level.candidates(queries, 3, limit=bank.shape[0])
    got = {}
    for a, b in zip(qi.tolist(), bi.tolist()):
        got.setdefault(a, set()).add(b)
    assert all(w <= got[j] for j, w in enumerate(_reference_rows(queries, bank, 3)))


def test_low_rank_rows_leave_few_candidates_and_limit_passes_queries_on():
    queries, bank = _lowrank(200, 4000, 256, 8, seed=5)
    level = ProjectedLevel(bank, bank.mean(0), dim=16)
    qi, _, over = level.candidates(queries, 1, limit=64)
    assert not over.any() and qi.numel() < 3 * 200  # a few rows per query out of 4,000
    qi, _, over = level.candidates(queries, 1, limit=0)  # every query has >= 1 candidate
    assert over.all() and qi.numel() == 0


@needs_bf16
@pytest.mark.parametrize("case", CASES)
def test_search_with_the_projection_equals_the_reference(case):
    queries, bank = _case(case)
    for k in (1, 4):
        s = Bf16Search(bank, project=8)
        d, i = s.search(queries, k)
        rd, ri = direct_knn(queries, bank, k)
        assert torch.equal(i, ri) and torch.equal(d, rd), case
        assert s.stats["queries"] == queries.shape[0]


@needs_bf16
def test_projection_settles_low_rank_queries_and_is_dropped_where_it_does_not_pay(monkeypatch, caplog):
    import logging

    queries, bank = _lowrank(300, 3000, 256, 8, seed=6)
    s = Bf16Search(bank, project=16, max_block_elems=3000 * 64)
    d, i = s.search(queries, 1)
    assert s.stats["projected"] == 300 and s._proj is not None
    assert torch.equal(i, direct_knn(queries, bank, 1)[1])
    monkeypatch.setattr(knn_bf16, "PROJECT_TRIAL", 100)
    g = torch.Generator().manual_seed(7)
    queries, bank = torch.randn(300, 256, generator=g), torch.randn(3000, 256, generator=g)
    s = Bf16Search(bank, project=16, max_candidates=8, max_block_elems=3000 * 64)
    with caplog.at_level(logging.INFO, logger=knn_bf16.__name__):
        d, i = s.search(queries, 2)
    assert s._proj is None and "searching without it from here" in caplog.text
    assert s.stats["projected"] < 64 * 2  # only the first two blocks went through it
    rd, ri = direct_knn(queries, bank, 2)
    assert torch.equal(i, ri) and torch.equal(d, rd)
    assert Bf16Search(bank, project=128)._proj is None  # 256 < 4 x 128: not worth it


def test_queries_surely_over_are_passed_on_without_listing_their_pairs():
    """Banks of 4,096+ rows: a query whose candidates in the bank's first sixteenth already
    point to more than 4 x limit is passed on at once; the others are counted exactly."""
    g = torch.Generator().manual_seed(8)
    bank = torch.randn(8192, 128, generator=g)
    queries = torch.cat([torch.randn(20, 128, generator=g), bank[:20] + 1e-3])  # far / near rows
    level = ProjectedLevel(bank, bank.mean(0), dim=8)
    qi, bi, over = level.candidates(queries, 1, limit=16)
    assert over[:20].all()  # random queries: the 8-d bound leaves thousands of rows
    assert not over[20:].any() and set(qi.tolist()) == set(range(20, 40))
    assert all(b in bi[qi == 20 + j].tolist() for j, b in enumerate(range(20)))  # their own rows
