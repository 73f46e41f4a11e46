"""The `study` preset run end to end once (tiny data, ResNet-50s with random weights from a file):
every study-only branch of the workflow runs and is recorded in the outputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from workflow_utils import ROOT, TINY, make_dataset, snakemake, write_config

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

CLASSES = TINY["classes"]


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    from adloc.backbones import build_backbone

    wd = tmp_path_factory.mktemp("wf_study")
    make_dataset(wd / "data", CLASSES)
    weights = {}
    for name in ("resnet50", "resnet50_timm"):  # random weights given as files, as real weights would be
        model, _ = build_backbone(name, "random", seed=7)
        weights[name] = wd / f"{name}-random.pth"
        torch.save(model.state_dict(), weights[name])
    study = yaml.safe_load((ROOT / "presets" / "study.yaml").read_text())
    write_config(
        wd,
        **{k: v for k, v in study.items() if k not in ("preprocess", "patchcore", "padim")},
        preprocess={**study["preprocess"], "resize": 32},  # the preset's 224, shrunk for CPU time
        patchcore={**study["patchcore"], "weights": str(weights["resnet50"])},
        padim={**study["padim"], "weights": str(weights["resnet50_timm"])},
        run_name="tiny-study",
    )
    snakemake(wd, "--cores", "2", timeout=2400)  # two ResNet-50s: slow on a loaded 2-core machine
    return wd, wd / "results" / "tiny-study"


def test_study_branches_are_recorded(study_run):
    wd, r = study_run
    cfg = yaml.safe_load((wd / "config.yaml").read_text())
    assert cfg["seed"] == 42 and cfg["patchcore"]["coreset_start"] == "random_point"
    for cls in CLASSES:
        for m in ("patchcore", "padim"):
            per = json.loads((r / "s42-m42" / "metrics" / m / cls / f"{cls}.json").read_text())
            glo = json.loads((r / "s42-m42" / "metrics" / m / "global" / f"{cls}.json").read_text())
            # the study's pixel-AUROC image sets: all test images per class, anomalous for global
            assert per["pixel"]["pixel_auroc_images"] == "all"
            assert glo["pixel"]["pixel_auroc_images"] == "anomalous"
            for res in (per, glo):
                assert res["pixel"]["pro_mode"] == "study" and res["threshold"]["mode"] == "study"
                assert 0 <= res["pixel"]["au_pro"] <= 1 and 0 <= res["pixel"]["pixel_auroc"] <= 1
            assert per["provenance"]["weights"] == "file" and per["provenance"]["sha256"]
            assert per["provenance"]["source"].endswith(f"{'resnet50' if m == 'patchcore' else 'resnet50_timm'}-random.pth")
            assert per["provenance"]["channels_last"] is False
    bank = torch.load(r / "s42-m42" / "models" / "patchcore" / "global.pt", weights_only=True)
    assert bank["config"]["coreset_start"] == "random_point" and bank["config"]["seed"] == 42
    n_train = sum(json.loads((r / "s42-m42" / "splits" / f"{c}.json").read_text())["counts"]["train"]["total"] for c in CLASSES)
    assert bank["state"]["bank"].shape[0] == max(1, int(n_train * 4 * 4 * 0.05))  # 4x4 grid at 32 px
    # the study's draws, replayed in its order: per-class models after the classes before them
    # (config order), the global model alone; what each file records is what the replay gives
    from adloc.models.study_draws import study_draws

    assert cfg["patchcore"]["coreset_draws"] == "study"
    sizes = [(c, json.loads((r / "s42-m42" / "splits" / f"{c}.json").read_text())["counts"]["train"]["total"] * 16)
             for c in CLASSES]
    dim = bank["state"]["bank"].shape[1]
    for i, cls in enumerate(CLASSES):
        prov = torch.load(r / "s42-m42" / "models" / "patchcore" / f"{cls}.pt", weights_only=True)["provenance"]
        rec = prov["study_draws"]
        assert rec["order"] == CLASSES[: i + 1] and rec["position"] == i
        assert rec == {"order": CLASSES[: i + 1], **study_draws(sizes[: i + 1], dim, 128)[cls].record()}
    rec = bank["provenance"]["study_draws"]
    assert rec == {"order": ["global"], **study_draws([("global", sum(n for _, n in sizes))], dim, 128)["global"].record()}
    cache = torch.load(r / "images" / f"{CLASSES[0]}.pt", weights_only=True)
    assert cache["preprocess"] == {"resize": 32, "crop": None, "resize_backend": "pil"}
    # the confusion analysis scores the training normals (the study's in-sample variant)
    sc = np.load(r / "s42-m42" / "scores" / "patchcore" / "global" / f"{CLASSES[0]}.npz")
    assert "train_scores" in sc and np.isfinite(sc["test_maps"]).all()
    df = pd.read_csv(r / "tables" / "metrics.csv")
    per = df[df["class"] != "macro"]
    assert len(per) == 2 * 4 * len(CLASSES)  # methods x scopes x classes
    # the three scopes of the global model share its (anomalous-images) pixel metrics
    for (m, c), rows in per.groupby(["method", "class"]):
        by = rows.set_index("scope")["pixel_auroc"]
        assert by["unified_abs"] == by["global"] == by["routed"], (m, c)
    assert "study" in (r / "summary.md").read_text().lower()
