"""Greedy coreset and exact k-NN against brute-force references."""

import numpy as np
import pytest
import torch

from adloc.models.coreset import coreset_start_indices, covering_radius, greedy_coreset
from adloc.models.knn import KnnIndex, knn

torch.set_num_threads(1)


def _manifold(n=3000, d=64, seed=0):
    """Patch-feature-like data: a 3-d latent (90% in a dense blob, 10% spread out) mapped to d dims."""
    g = torch.Generator().manual_seed(seed)
    dense = torch.randn(int(n * 0.9), 3, generator=g) * 0.3
    sparse = torch.rand(n - len(dense), 3, generator=g) * 8 - 4
    w = torch.randn(3, d, generator=g)
    return torch.tanh(torch.cat([dense, sparse]) @ w / 2) + 0.01 * torch.randn(n, d, generator=g)


def test_coreset_beats_random_and_is_deterministic():
    x = _manifold()
    n = 150
    sel = greedy_coreset(x, n, proj_dim=32, seed=0, starts=10)
    assert sel.shape == (n,) and sel.dtype == torch.int64 and len(set(sel.tolist())) == n
    r_greedy = covering_radius(x, sel)
    g = torch.Generator().manual_seed(1)
    r_random = [covering_radius(x, torch.randperm(len(x), generator=g)[:n]) for _ in range(5)]
    assert r_greedy < min(r_random), (r_greedy, r_random)
    assert torch.equal(sel, greedy_coreset(x, n, proj_dim=32, seed=0, starts=10))
    assert not torch.equal(sel, greedy_coreset(x, n, proj_dim=32, seed=1, starts=10))


def test_coreset_follows_the_reference_algorithm():
    """Float64 numpy re-statement of patchcore-inspection's approximate greedy coreset: initial
    distance = mean L2 distance to `starts` random points, then farthest-point picks."""
    x = _manifold(600, 16, seed=2)
    starts = 5
    sel = greedy_coreset(x, 40, proj_dim=None, seed=7, starts=starts).tolist()
    xd = x.double().numpy()
    start_idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(7 + 1))[:starts].numpy()
    dist = lambda c: np.sqrt(((xd - xd[c]) ** 2).sum(-1))  # noqa: E731
    min_d = np.mean([dist(s) for s in start_idx], axis=0)
    ref = []
    for _ in range(40):
        j = int(np.argmax(min_d))
        ref.append(j)
        min_d = np.minimum(min_d, dist(j))
        min_d[j] = -np.inf
    assert sel == ref


def _study_sampler(z: np.ndarray, n: int, first: int) -> list[int]:
    """Re-statement of the study's GreedyCoresetSubsampling.sample (its src/models/memory_bank.py)
    on already projected points, from a given first point: the first point is kept; then the
    min L2 distance (np.linalg.norm of float32 differences) of every REMAINING point is updated
    from the last pick and the farthest remaining point (lowest index on ties) is picked, until n
    points are selected."""
    remaining = np.ones(len(z), dtype=bool)
    remaining[first] = False
    selected = [first]
    min_d = np.full(len(z), np.inf)
    for _ in range(n - 1):
        rem = np.flatnonzero(remaining)
        d = np.linalg.norm(z[rem] - z[selected[-1]], axis=1)
        min_d[rem] = np.minimum(min_d[rem], d)
        j = int(rem[np.argmax(min_d[rem])])
        selected.append(j)
        remaining[j] = False
    return selected


@pytest.mark.parametrize("method", ["plain", "pruned", "dense"])
@pytest.mark.parametrize("proj", [None, 12])
def test_random_point_start_picks_what_the_study_sampler_picks(method, proj):
    """start='random_point': one seeded random point, kept as the first member, then the
    study's farthest-point picks; from the same first point both select the same points."""
    from adloc.models.coreset import random_projection

    x = _manifold(700, 24, seed=4)
    n = 60
    sel = greedy_coreset(x, n, proj_dim=proj, seed=42, start="random_point", method=method)
    assert sel.shape == (n,) and len(set(sel.tolist())) == n
    first = int(coreset_start_indices(len(x), 42)[0])
    assert int(sel[0]) == first  # drawn from the seed; the first of mean_of_random's points
    assert first == int(coreset_start_indices(len(x), 42, starts=10)[0])
    z = random_projection(x, proj, 42).numpy()
    assert sel.tolist() == _study_sampler(z, n, first)
    # a different seed starts elsewhere; the default start differs from the study's
    assert int(greedy_coreset(x, n, proj_dim=proj, seed=0, start="random_point", method=method)[0]) != first
    assert not torch.equal(sel, greedy_coreset(x, n, proj_dim=proj, seed=42, method=method))


def test_random_point_start_edge_cases():
    x = _manifold(50, 8, seed=5)
    one = greedy_coreset(x, 1, proj_dim=None, seed=3, start="random_point")
    assert one.tolist() == [int(coreset_start_indices(50, 3)[0])]
    with pytest.raises(Exception, match="coreset start 'first'"):
        greedy_coreset(x, 5, proj_dim=None, start="first")


def _clustered(n=4000, d=24, seed=3):
    """Tight clusters of very different sizes and spreads, plus exact duplicate rows (ties)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(12, d, generator=g) * 5
    which = torch.randint(0, 12, (n,), generator=g) ** 2 % 12
    spread = torch.rand(12, generator=g)[which].unsqueeze(1)
    x = centres[which] + spread * torch.randn(n, d, generator=g)
    x[: n // 10] = x[n // 10 : n // 5]  # 10% exact duplicates
    return x


def _coreset_data(name):
    """The point sets the pruned-vs-plain coreset tests run on."""
    return {
        "gauss": lambda: torch.randn(3000, 48, generator=torch.Generator().manual_seed(5)),
        "manifold": lambda: _manifold(4000, 64, seed=4),
        "clustered": _clustered,
    }[name]()


@pytest.mark.parametrize(
    "data,proj,block",
    [
        ("gauss", None, 64),
        ("gauss", 16, 7),
        ("manifold", 32, 64),
        ("manifold", None, 1),
        ("clustered", None, 64),
        ("clustered", 16, 33),
        ("clustered", None, 100000),  # one block
    ],
)
def test_pruned_coreset_equals_plain_loop(data, proj, block):
    """Pruning only skips points whose distance provably cannot change: same picks, same order."""
    x = _coreset_data(data)
    n = len(x) // 4
    plain = greedy_coreset(x, n, proj_dim=proj, seed=3, method="plain")
    pruned = greedy_coreset(x, n, proj_dim=proj, seed=3, method="pruned", block_size=block)
    assert torch.equal(plain, pruned)
    assert len(set(pruned.tolist())) == n


@pytest.mark.parametrize("data,block", [("gauss", 64), ("manifold", 7), ("clustered", 64), ("clustered", 100000)])
def test_pruned_coreset_two_threads_equals_plain_loop(monkeypatch, data, block):
    """Splitting each iteration's distance calls over two threads (down to every iteration,
    cutting runs mid-way) selects exactly what the one-thread plain loop selects."""
    import adloc.models.coreset_cpu as coreset_cpu

    monkeypatch.setattr(coreset_cpu, "_PAR_MIN_ROWS", 0)
    x = _coreset_data(data)
    n = len(x) // 4
    plain = greedy_coreset(x, n, proj_dim=None, seed=3, method="plain")
    two = greedy_coreset(x, n, proj_dim=None, seed=3, method="pruned", block_size=block, threads=2)
    assert torch.equal(plain, two)
    assert torch.equal(two, greedy_coreset(x, n, proj_dim=None, seed=3, method="pruned", block_size=block, threads=1))


def test_split_runs_halves_block_counts():
    from adloc.models.coreset_cpu import _split_runs

    st, en = np.array([0, 10, 30]), np.array([4, 20, 31])
    head, tail = _split_runs(st, en, en - st)
    assert head == [(0, 4), (10, 13)] and tail == [(13, 20), (30, 31)]
    covered = [b for s0, e0 in head + tail for b in range(s0, e0)]
    assert covered == [0, 1, 2, 3, *range(10, 20), 30]


def test_pruned_coreset_matches_dense_loop():
    """The CPU loop and the CUDA-style dense loop differ only in float32 rounding of distances."""
    x = _manifold(2000, 32, seed=6)
    a = greedy_coreset(x, 200, proj_dim=None, seed=0, method="pruned")
    b = greedy_coreset(x, 200, proj_dim=None, seed=0, method="dense")
    # a near-tie resolved differently changes every later pick, so compare quality, not identity
    assert covering_radius(x, a) == pytest.approx(covering_radius(x, b), rel=0.05)
    assert len(set(a.tolist()) & set(b.tolist())) >= 100


def test_coreset_method_checks():
    with pytest.raises(Exception, match="unknown"):
        greedy_coreset(torch.randn(10, 3), 2, method="fast")
    with pytest.raises(Exception, match="dtype 'bfloat16' unknown"):
        greedy_coreset(torch.randn(10, 3), 2, dtype="bfloat16")


@pytest.mark.parametrize("method", ["dense", "plain", "pruned"])
def test_float16_coreset_is_the_coreset_of_the_rounded_points(method):
    """dtype float16 selects exactly what float32 selects on the float16-rounded projection."""
    x = _manifold(3000, 40, seed=11)
    got = greedy_coreset(x, 150, proj_dim=16, seed=2, method=method, dtype="float16")
    from adloc.models.coreset import random_projection

    z = random_projection(x, 16, seed=2).half().float()
    want = greedy_coreset(z, 150, proj_dim=None, seed=2, method=method)
    assert torch.equal(got, want)
    # and it is a coreset as good as the float32 one
    ref = greedy_coreset(x, 150, proj_dim=16, seed=2, method=method)
    assert covering_radius(x, got) == pytest.approx(covering_radius(x, ref), rel=0.05)


def test_float16_coreset_refuses_overflow():
    x = torch.full((20, 3), 1e5)
    x[0] = 0
    with pytest.raises(Exception, match="overflow float16.*use coreset dtype float32"):
        greedy_coreset(x, 5, proj_dim=None, dtype="float16")


def test_coreset_edge_cases():
    x = torch.zeros(50, 4)  # all identical: still distinct indices, lowest index first
    for method in ("dense", "plain", "pruned"):
        sel = greedy_coreset(x, 10, proj_dim=None, method=method, block_size=8)
        assert sel.tolist() == list(range(10))
    assert torch.equal(greedy_coreset(torch.randn(5, 3), 9), torch.arange(5))


@pytest.mark.parametrize("backend", ["faiss", "torch"])
@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("k", [1, 4])
def test_knn_equals_numpy_brute_force(backend, squared, k):
    rng = np.random.default_rng(0)
    bank = rng.normal(size=(500, 24)).astype(np.float32)
    q = rng.normal(size=(77, 24)).astype(np.float32)
    d2 = ((q[:, None, :].astype(np.float64) - bank[None].astype(np.float64)) ** 2).sum(-1)
    ref_i = np.argsort(d2, axis=1)[:, :k]
    ref_d = np.take_along_axis(d2, ref_i, 1)
    if not squared:
        ref_d = np.sqrt(ref_d)
    idx = KnnIndex(torch.from_numpy(bank), backend=backend, max_block_elems=5000)  # several chunks
    dist, ind = idx.search(torch.from_numpy(q), k, squared=squared)
    assert dist.shape == (77, k) and ind.dtype == torch.int64
    np.testing.assert_array_equal(ind.numpy(), ref_i)
    np.testing.assert_allclose(dist.numpy(), ref_d, rtol=1e-4, atol=1e-4)


def test_knn_clips_k_and_checks_dims():
    bank = torch.randn(3, 5)
    d, i = knn(torch.randn(2, 5), bank, k=9)
    assert d.shape == (2, 3)
    with pytest.raises(Exception, match="memory bank"):
        knn(torch.randn(2, 4), bank, k=1)
