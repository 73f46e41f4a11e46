"""Config validation: defaults filled from the schema, clear errors naming the key."""

from pathlib import Path

import pytest
import yaml

from adloc.config import deep_merge, feature_set_name, load_config, validate_config
from adloc.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_default_config_is_valid_and_complete():
    cfg = load_config(ROOT / "config.yaml")
    assert cfg["classes"] == ["synth_nut", "synth_carpet", "synth_zipper"]
    assert cfg["threshold"]["grid_size"] == 1000  # filled from the schema
    assert cfg["evaluation"]["bootstrap"]["n"] == 1000


@pytest.mark.parametrize("preset", sorted((ROOT / "presets").glob("*.yaml")), ids=lambda p: p.name)
def test_presets_are_valid(preset):
    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    over = yaml.safe_load(preset.read_text())
    validate_config(deep_merge(base, over), str(preset))


def test_empty_config_gets_every_default():
    cfg = validate_config({})
    assert cfg["patchcore"]["coreset_ratio"] == 0.1
    assert cfg["padim"]["layers"] == ["layer1", "layer2", "layer3"]
    assert cfg["dataset"]["synthetic"]["counts"]["train_good"] == 50


@pytest.mark.parametrize(
    "override, expected",
    [
        ({"colour": 1}, ["unknown config key colour", "allowed keys", "classes"]),
        ({"patchcore": {"coreset": 0.1}}, ["patchcore.coreset", "coreset_ratio"]),
        ({"device": "tpu"}, ["device", "'tpu'", "'cpu', 'cuda', 'auto'"]),
        ({"features": {"batch_size": "big"}}, ["features.batch_size", "integer"]),
        ({"classes": ["bottle"]}, ["'bottle'", "classes", "synth_nut"]),
        ({"patchcore": {"backbone": "vgg16"}}, ["patchcore.backbone", "wide_resnet50_2"]),
        ({"preprocess": {"crop": 300}}, ["preprocess.crop", "preprocess.resize"]),
        ({"dataset": {"synthetic": {"counts": {"train": 3}}}}, ["dataset.synthetic.counts.train"]),
    ],
)
def test_bad_config_names_the_key(override, expected):
    with pytest.raises(ConfigError) as err:
        load_config(ROOT / "config.yaml", override)
    for text in expected:
        assert text in str(err.value)


def test_real_dataset_allows_any_class_name():
    cfg = validate_config({"dataset": {"generate": False, "root": "/data/mvtec"}, "classes": ["bottle"]})
    assert cfg["classes"] == ["bottle"]


def test_missing_or_broken_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("classes: [a\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(bad)


def test_feature_set_name():
    assert feature_set_name("resnet18", "imagenet") == "resnet18-imagenet"
    assert feature_set_name("resnet18", "random") == "resnet18-random"
    assert feature_set_name("resnet18", "/w/my weights.pth") == "resnet18-file-my_weights"


def test_run_folder_name_derived_and_user_name_wins():
    from adloc.config import load_config, run_folder_name

    base = load_config(ROOT / "config.yaml")
    assert run_folder_name(base) == "embedded"
    study = load_config(ROOT / "config.yaml", yaml.safe_load((ROOT / "presets/study.yaml").read_text()))
    assert run_folder_name(study) == "embedded-study"
    mv = load_config(ROOT / "config.yaml", yaml.safe_load((ROOT / "presets/mvtec.yaml").read_text()))
    for preset, want in (("paper", "mvtec-paper"), ("study", "mvtec-study")):
        cfg = load_config(mv, yaml.safe_load((ROOT / f"presets/{preset}.yaml").read_text()))
        assert run_folder_name(cfg) == want
    # a user's run_name is never replaced by a preset (presets set run_tag only)
    mine = load_config(ROOT / "config.yaml", {"run_name": "mine"})
    mine = load_config(mine, yaml.safe_load((ROOT / "presets/paper.yaml").read_text()))
    assert run_folder_name(mine) == "mine"
    folder = load_config(ROOT / "config.yaml", {"dataset": {"root": "/data/My Set", "generate": False}})
    assert run_folder_name(folder) == "My_Set"
    for p in (ROOT / "presets").glob("*.yaml"):
        assert "run_name" not in yaml.safe_load(p.read_text()), p


def test_repeats_default_to_one_run_and_name_their_folders():
    from adloc.config import load_config, parse_repeat, repeat_name, repeat_names

    cfg_path = ROOT / "config.yaml"
    cfg = load_config(cfg_path)
    assert repeat_names(cfg) == [repeat_name(cfg["splits"]["seed"], cfg["seed"])] == ["s42-m0"]
    cfg = load_config(cfg_path, {"repeats": {"split_seeds": [1, 2], "model_seeds": [0, 5]}})
    assert repeat_names(cfg) == ["s1-m0", "s1-m5", "s2-m0", "s2-m5"]
    assert parse_repeat("s-3-m7") == (-3, 7)
    with pytest.raises(ConfigError, match="not a repeat name"):
        parse_repeat("s1m2")
    with pytest.raises(ConfigError, match="repeats"):
        load_config(cfg_path, {"repeats": {"split_seed": [1]}})
    with pytest.raises(ConfigError, match="repeats.split_seeds"):
        load_config(cfg_path, {"repeats": {"split_seeds": []}})


# --- Snakemake --config values (issue 24): nested values arrive as strings -------------------
def cli(*entries):
    """What Snakemake hands the workflow for ``--config ENTRY ...`` (its own parser)."""
    from snakemake.cli import parse_config

    return parse_config(list(entries))


@pytest.mark.parametrize(
    "entry, key, want",
    [
        ("dataset={root: ~/mine, generate: false}", ("dataset", "generate"), False),
        ("offline=true", ("offline",), True),
        ("patchcore={coreset_ratio: 0.2}", ("patchcore", "coreset_ratio"), 0.2),
        ("splits={seed: 7}", ("splits", "seed"), 7),
        ("preprocess={resize: 64, crop: null}", ("preprocess", "crop"), None),
        ("padim={covariance_eps: 1e-3}", ("padim", "covariance_eps"), 1e-3),  # YAML 1.2 float
        ("dataset={synthetic: {counts: {train_good: 3}}}", ("dataset", "synthetic", "counts", "train_good"), 3),
        ("class_overrides={synth_nut: {patchcore: {coreset_ratio: 0.5}}}",
         ("class_overrides", "synth_nut", "patchcore", "coreset_ratio"), 0.5),
        ("repeats={split_seeds: [1, 2]}", ("repeats", "split_seeds"), [1, 2]),
    ],
)
def test_cli_config_values_are_typed_by_the_schema(entry, key, want):
    raw = cli(entry)
    base = load_config(ROOT / "config.yaml")
    cfg = validate_config(deep_merge(base, raw), "config", cli_overrides=raw)
    got = cfg
    for k in key:
        got = got[k]
    assert got == want and type(got) is type(want)
    if entry.startswith("dataset={root"):
        assert cfg["dataset"]["root"] == str(Path("~/mine").expanduser())
    # without the typing step Snakemake's strings are refused (the message)
    if entry.startswith(("dataset={root", "offline", "patchcore", "splits")):
        with pytest.raises(ConfigError, match="must be of type"):
            validate_config(deep_merge(base, raw), "config")


def test_cli_strings_are_typed_only_where_the_schema_allows_it():
    from adloc.config import coerce_cli_config

    got = coerce_cli_config(cli("run_name=true", "classes=[1, null]", "patchcore={weights: 0, backbone: 1}"))
    assert got == {"run_name": "true", "classes": ["1", "null"], "patchcore": {"weights": "0", "backbone": "1"}}
    # YAML 1.2 core, not 1.1: yes/on stay strings, so a boolean key refuses them by name
    with pytest.raises(ConfigError, match="dataset.generate in config must be of type boolean, got str 'yes'"):
        raw = cli("dataset={generate: yes}")
        validate_config(raw, "config", cli_overrides=raw)
    with pytest.raises(ConfigError, match="splits.seed in config must be of type integer, got str '7.5'"):
        raw = cli("splits={seed: 7.5}")
        validate_config(raw, "config", cli_overrides=raw)


@pytest.mark.parametrize(
    "text, want",
    [("null", None), ("~", None), ("", None), ("True", True), ("FALSE", False), ("yes", "yes"),
     ("-12", -12), ("0x1f", 31), ("0o17", 15), ("1.5", 1.5), ("1e3", 1000.0), (".5", 0.5),
     ("-.inf", float("-inf")), ("1_000", "1_000"), ("0.2.1", "0.2.1"), ("abc", "abc")],
)
def test_yaml12_scalar(text, want):
    from adloc.config import yaml12_scalar

    got = yaml12_scalar(text)
    assert got == want and type(got) is type(want)


@pytest.mark.parametrize("key", ["root", "dataset_root"])
def test_a_nested_key_given_flat_points_to_the_form_that_works(key):
    raw = cli(f"{key}=/x")
    with pytest.raises(ConfigError) as err:
        validate_config(raw, "config", cli_overrides=raw)
    msg = str(err.value)
    assert f"unknown config key {key}" in msg
    assert "Did you mean dataset.root?" in msg and "--config 'dataset={root: VALUE}'" in msg
