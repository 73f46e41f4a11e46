"""fetch_imagenet_weights through torchvision's own download (torch.hub, hash-checked file
name), against a local HTTP server: the torchvision weights URL is pointed at 127.0.0.1."""

from __future__ import annotations

import hashlib
import io
import sys
from pathlib import Path

import pytest
import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parent))

from archive_utils import FileServer  # noqa: E402

from adloc.backbones import build_backbone  # noqa: E402
from adloc.errors import WeightsError  # noqa: E402
from adloc.weights import PACKAGED, fetch_imagenet_weights, missing_imagenet_weights  # noqa: E402


@pytest.fixture(autouse=True)
def _local(monkeypatch, tmp_path):
    for k in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))


def _state_bytes() -> bytes:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = torchvision.models.resnet18(weights=None)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getvalue()


def _serve_as(monkeypatch, srv, name: str) -> str:
    url = srv.url("/" + name)
    monkeypatch.setattr(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.value, "url", url)
    return url


def test_download_into_the_torch_cache_then_loaded_offline(tmp_path, monkeypatch):
    data = _state_bytes()
    name = f"resnet18-{hashlib.sha256(data).hexdigest()[:8]}.pth"  # torchvision's naming: hash prefix
    with FileServer({"/" + name: data}) as srv:
        _serve_as(monkeypatch, srv, name)
        assert set(missing_imagenet_weights(["resnet18"])) == {"resnet18"}
        info = fetch_imagenet_weights("resnet18")
        assert [p for p, _ in srv.requests] == ["/" + name]
        path = tmp_path / "torch_home" / "hub" / "checkpoints" / name
        assert info["path"] == str(path) and info["sha256"] == hashlib.sha256(data).hexdigest()
        assert missing_imagenet_weights(["resnet18"]) == {}
        # cached now: a second fetch downloads nothing, and loading reads the file
        fetch_imagenet_weights("resnet18")
        assert len(srv.requests) == 1
    _, prov = build_backbone("resnet18", "imagenet")
    assert prov["sha256"] == info["sha256"] and str(path) in prov["source"]


def test_hash_check_of_the_library_failing_is_one_clear_error(tmp_path, monkeypatch):
    data = _state_bytes()
    name = "resnet18-00000000.pth"  # the file's sha256 does not start with 00000000
    with FileServer({"/" + name: data}) as srv:
        _serve_as(monkeypatch, srv, name)
        with pytest.raises(WeightsError) as err:
            fetch_imagenet_weights("resnet18")
    msg = str(err.value)
    assert "could not download the ImageNet weights of backbone resnet18" in msg
    assert "hash" in msg.lower() and name in msg
    assert not (tmp_path / "torch_home" / "hub" / "checkpoints" / name).exists()


def test_packaged_weights_are_never_missing_or_downloaded():
    assert missing_imagenet_weights(list(PACKAGED)) == {}
    assert fetch_imagenet_weights("efficientnet_lite0")["path"].endswith(".pth")
