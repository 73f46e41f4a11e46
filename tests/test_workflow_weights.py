"""ImageNet weights are checked when the DAG is built, before any job starts (never online).

With empty torch / Hugging Face caches and no download allowed, a run whose PatchCore and PaDiM
use two different backbones fails at once with both missing files listed; online, one
fetch_weights job per backbone runs before every extraction job.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workflow_utils import make_dataset, planned_jobs, snakemake, write_config  # noqa: E402

from adloc.weights import missing_imagenet_weights  # noqa: E402

pytestmark = [pytest.mark.workflow]
TWO_BACKBONES = {
    "classes": ["synth_nut"],
    "patchcore": {"backbone": "resnet18"},
    "padim": {"backbone": "resnet50_timm"},
}


def _empty_caches(tmp_path, offline: str) -> dict:
    return {
        "TORCH_HOME": str(tmp_path / "torch_home"),
        "HF_HOME": str(tmp_path / "hf_home"),
        "HF_HUB_CACHE": "",
        "ADLOC_OFFLINE": offline,
    }


@pytest.mark.parametrize("how", ["config", "env"])
def test_two_missing_weights_listed_together_before_any_job(tmp_path, how):
    make_dataset(tmp_path / "data", ["synth_nut"])
    write_config(tmp_path, **TWO_BACKBONES, **({"offline": True} if how == "config" else {}))
    env = _empty_caches(tmp_path, "1" if how == "env" else "")
    proc = snakemake(tmp_path, "--cores", "1", check=False, env=env)
    assert proc.returncode != 0
    err = proc.stderr
    assert "2 ImageNet weights file(s) missing (offline" in err, err[-3000:]
    assert "resnet18-f37072fd.pth" in err and str(tmp_path / "torch_home" / "hub" / "checkpoints") in err
    assert "resnet50.a1_in1k" in err and str(tmp_path / "hf_home" / "hub") in err
    assert not (tmp_path / "results").exists(), "a job ran before the weights check"


def test_online_plans_one_fetch_per_backbone_before_extraction(tmp_path, monkeypatch):
    make_dataset(tmp_path / "data", ["synth_nut"])
    write_config(tmp_path, **TWO_BACKBONES)
    for k, v in _empty_caches(tmp_path, "").items():
        monkeypatch.setenv(k, v)  # planned_jobs runs snakemake with this environment
    assert set(missing_imagenet_weights(["resnet18", "resnet50_timm"])) == {"resnet18", "resnet50_timm"}
    jobs = planned_jobs(tmp_path)
    fetches = sorted(w["backbone"] for r, w in jobs if r == "fetch_weights")
    assert fetches == ["resnet18", "resnet50_timm"]
    assert sum(r == "extract_features" for r, _ in jobs) == 2
