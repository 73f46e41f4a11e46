"""No network at run time: the default run makes no connection; missing hub weights fail fast.

The default config takes EfficientNet-Lite0's ImageNet weights from a pip package, so a run
must never touch the network. The reference run (conftest) has a guard in every Python process
that records and refuses any non-local connection or DNS lookup; here we read its record.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from adloc.backbones import build_backbone
from adloc.errors import WeightsError


@pytest.mark.workflow
@pytest.mark.slow
def test_default_run_makes_no_network_connection(reference_run):
    wd, guard, _ = reference_run
    assert (wd / "results" / "tiny" / "summary.md").is_file()
    active = (guard / "network.log.active").read_text().splitlines()
    # the guard was loaded by snakemake itself and by the job scripts, not just the parent
    assert any("snakemake" in ln for ln in active), active[:5]
    assert sum(".snakemake/scripts" in ln for ln in active) >= 10, active
    attempts = guard / "network.log"
    assert not attempts.exists(), "network access attempted:\n" + attempts.read_text()


def test_missing_hub_weights_fail_fast_without_download(tmp_path, monkeypatch):
    """weights: imagenet for a torchvision backbone absent from $TORCH_HOME: WeightsError at once."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    tried = []

    def refuse(*args, **kwargs):
        tried.append(args)
        raise OSError("network access refused by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    with pytest.raises(WeightsError) as err:
        build_backbone("resnet18", "imagenet")
    msg = str(err.value)
    expected = Path(tmp_path / "torch_home" / "hub" / "checkpoints")
    assert "resnet18-f37072fd.pth" in msg and str(expected) in msg, msg
    assert "put the file" in msg and "never downloads" in msg, msg
    # failing fast = no network attempt at all (an operation count, not a wall-clock limit)
    assert tried == [], f"a network access was attempted: {tried}"
    assert not (tmp_path / "torch_home").exists() or not any((tmp_path / "torch_home").rglob("*.pth"))
