"""The 15-class presets validate, name every MVTec AD class / embedded class once, and keep
the global fit's memory settings when combined with a protocol preset."""

from pathlib import Path

import yaml

from adloc.config import load_config, run_folder_name
from adloc.data.synthetic import CLASS_TABLE, EMBEDDED_CLASSES, MVTEC_COUNTS

ROOT = Path(__file__).resolve().parents[1]


def _load(*presets):
    cfg = load_config(ROOT / "config.yaml")
    for p in presets:
        cfg = load_config(cfg, yaml.safe_load((ROOT / "presets" / p).read_text()))
    return cfg


def test_mvtec15_preset():
    cfg = _load("mvtec15.yaml", "paper.yaml")
    assert sorted(cfg["classes"]) == sorted(MVTEC_COUNTS) and len(cfg["classes"]) == 15
    assert cfg["patchcore"]["embedding_dtype"] == "float16"
    assert cfg["features"]["storage_dtype"] == "float16"
    assert cfg["patchcore"]["backbone"] == "wide_resnet50_2"
    assert run_folder_name(cfg) == "mvtec15-paper"


def test_embedded15_preset_names_every_generator_class():
    cfg = _load("embedded15.yaml")
    assert sorted(cfg["classes"]) == sorted(EMBEDDED_CLASSES) and len(cfg["classes"]) == 15
    assert {CLASS_TABLE[c][2] for c in cfg["classes"]} == set(MVTEC_COUNTS)
    assert cfg["dataset"]["generate"] is True and cfg["dataset"]["synthetic"]["counts"] == "mvtec"
    assert run_folder_name(cfg) == "embedded15"
