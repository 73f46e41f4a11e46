"""The CUDA greedy coreset (dense loop, CUDA graphs, float16 points) against the CPU paths.

Skipped without CUDA; run on the GPU machine by benchmarks/gpu_check.sh.
"""

import warnings

import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

from adloc.models.coreset import covering_radius, greedy_coreset, random_projection  # noqa: E402


def _data(n=20000, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.tanh(torch.randn(n, 6, generator=g) @ torch.randn(6, 256, generator=g))


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_coreset_cuda_close_to_cpu(dtype):
    x = _data()
    sel_cpu = greedy_coreset(x, 1000, 128, seed=0, dtype=dtype)
    sel_gpu = greedy_coreset(x, 1000, 128, seed=0, device="cuda", dtype=dtype)
    assert sel_gpu.device.type == "cpu" and len(set(sel_gpu.tolist())) == 1000
    overlap = len(set(sel_cpu.tolist()) & set(sel_gpu.tolist())) / 1000
    r_cpu, r_gpu = covering_radius(x, sel_cpu), covering_radius(x, sel_gpu)
    print(f"coreset {dtype} CPU/CUDA overlap {overlap:.3f}, radius {r_cpu:.4f} / {r_gpu:.4f}")
    # float rounding can flip near-tied argmax picks, after which the sequences diverge; the
    # coreset quality (covering radius) must not
    assert overlap > 0.5 and abs(r_cpu - r_gpu) <= 0.1 * r_cpu
    # same seed on CUDA is reproducible
    assert torch.equal(sel_gpu, greedy_coreset(x, 1000, 128, seed=0, device="cuda", dtype=dtype))


@pytest.mark.parametrize("start", ["mean_of_random", "random_point"])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("n", [3, 66, 67, 68, 200, 1000])
def test_cuda_graph_replay_selects_what_eager_launches_select(dtype, n, start):
    """Graph capture changes how kernels are launched, not what they compute (both starts)."""
    x = _data(8000, seed=1)
    eager = greedy_coreset(x, n, 64, seed=3, device="cuda", dtype=dtype, graph_chunk=0, start=start)
    graph = greedy_coreset(x, n, 64, seed=3, device="cuda", dtype=dtype, graph_chunk=64, start=start)
    assert torch.equal(eager, graph)
    if start == "random_point":  # the study's start: the same first point as on the CPU
        assert int(eager[0]) == int(greedy_coreset(x, 1, 64, seed=3, start=start)[0])


def test_float16_cuda_uses_the_rounded_points():
    x = _data(6000, seed=2)
    got = greedy_coreset(x, 300, 32, seed=1, device="cuda", dtype="float16")
    z = random_projection(x, 32, seed=1).half().float()
    ref = greedy_coreset(z, 300, None, seed=1, device="cuda", dtype="float32")
    overlap = len(set(got.tolist()) & set(ref.tolist())) / 300
    print(f"float16 CUDA vs float32 CUDA on the rounded points: overlap {overlap:.3f}")
    assert overlap > 0.5
    assert covering_radius(x, got) == pytest.approx(covering_radius(x, ref), rel=0.05)


@pytest.mark.parametrize("graph_chunk", [0, 64])
def test_coreset_loop_has_no_per_iteration_host_sync(graph_chunk):
    x = torch.randn(5000, 64, device="cuda")

    def n_syncs(n):
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as rec:
                warnings.simplefilter("always")
                greedy_coreset(x, n, None, seed=0, device="cuda", graph_chunk=graph_chunk)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        return len(rec)

    a, b = n_syncs(200), n_syncs(2000)
    print(f"graph_chunk {graph_chunk}: host syncs {a} for 200 picks, {b} for 2000 picks")
    assert a == b
