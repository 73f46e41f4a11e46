"""The method registry (issue 20 §1): one source for parameters, no method name outside it."""

from __future__ import annotations

import ast
import dataclasses
import re
import typing
from pathlib import Path

import pytest

from adloc.config import load_schema, method_schema, validate_config
from adloc.errors import ConfigError
from adloc.models import REGISTRY, Method, build_model, register_method
from adloc.models.configs import ModelConfig
from adloc.models.registry import model_params
from adloc.models.schema import NOT_PER_CLASS, with_methods

ROOT = Path(__file__).resolve().parents[1]
BUILTIN = ("patchcore", "padim", "spade")
_JSON = {int: {"integer"}, float: {"number", "integer"}, str: {"string"}, bool: {"boolean"},
         type(None): {"null"}}


def _allowed_types(tp) -> set[str]:
    if typing.get_origin(tp) in (typing.Union, __import__("types").UnionType):
        return set().union(*(_allowed_types(a) for a in typing.get_args(tp)))
    if typing.get_origin(tp) in (tuple, list):
        return {"array"}
    return _JSON[tp]


def _resolve(sub, schema):
    while "$ref" in sub:
        ref = dict(sub)
        target = schema
        for part in ref.pop("$ref").lstrip("#/").split("/"):
            target = target[part]
        sub = {**target, **ref}
    return sub


@pytest.mark.parametrize("name", BUILTIN)
def test_schema_sections_match_the_dataclasses_field_by_field(name):
    """Every model parameter of the dataclass is in the schema's section with the same default
    and a type that admits it; the section holds nothing else but the workflow keys and the
    predict options."""
    schema = load_schema()
    entry = REGISTRY[name]
    section = schema["properties"][name]["properties"]
    fields = {f.name: f for f in dataclasses.fields(entry.config)}
    hints = typing.get_type_hints(entry.config)
    extra = set(entry.workflow_keys) | {k for keys in entry.predict_options.values() for k in keys}
    assert set(section) == set(entry.param_fields()) | extra
    for key in entry.param_fields():
        prop = _resolve(section[key], schema)
        default = fields[key].default
        assert prop["default"] == (list(default) if isinstance(default, tuple) else default), key
        types = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
        assert set(types) <= _allowed_types(hints[key]) | ({"integer"} if "number" in types else set()), key


@pytest.mark.parametrize("name", BUILTIN)
def test_class_overrides_are_the_model_parameters(name):
    schema = method_schema()
    over = schema["properties"]["class_overrides"]["additionalProperties"]["properties"][name]
    entry = REGISTRY[name]
    assert set(over["properties"]) == set(entry.param_fields()) - NOT_PER_CLASS
    for key, prop in over["properties"].items():
        own = {k: v for k, v in schema["properties"][name]["properties"][key].items() if k != "default"}
        assert prop == own, key
    # the defaults-filled config passes each model exactly its dataclass's fields
    cfg = validate_config({"class_overrides": {"synth_nut": {name: {"blur_sigma": 2.0}}}})
    params = model_params(cfg, name, "synth_nut")
    assert set(params) == set(entry.param_fields()) and params["blur_sigma"] == 2.0
    build_model(name, {**params, "image_size": 32})  # the dataclass accepts every one of them
    with pytest.raises(ConfigError, match="layers"):
        validate_config({"class_overrides": {"synth_nut": {name: {"layers": ["layer1"]}}}})


@dataclasses.dataclass
class _ToyConfig(ModelConfig):
    layers: tuple[str, ...] = ("layer2",)
    k: int = 1
    scale: float | None = None
    image_size: int = 224
    seed: int = 0
    device: str = "cpu"


def test_a_plugin_method_gets_a_generated_section(monkeypatch):
    monkeypatch.setitem(REGISTRY, "toy", Method(name="toy", label="Toy", config=_ToyConfig,
                                                model="nowhere:Toy"))
    schema = with_methods(load_schema())
    assert schema["properties"]["methods"]["items"]["enum"][-1] == "toy"
    props = schema["properties"]["toy"]["properties"]
    assert props["k"] == {"type": "integer", "default": 1}
    assert props["scale"] == {"type": ["number", "null"], "default": None}
    assert props["layers"]["default"] == ["layer2"] and {"backbone", "weights"} <= set(props)
    cfg = validate_config({"methods": ["toy"], "toy": {"k": 3}})
    assert cfg["toy"]["k"] == 3 and cfg["toy"]["backbone"] == cfg["patchcore"]["backbone"]
    with pytest.raises(ConfigError, match="toy.k"):
        validate_config({"methods": ["toy"], "toy": {"k": "three"}})
    with pytest.raises(ConfigError, match="unknown config key toy.kk"):
        validate_config({"methods": ["toy"], "toy": {"kk": 3}})


def test_unknown_method_and_plugin_errors():
    with pytest.raises(ConfigError, match="methods"):
        validate_config({"methods": ["knn"]})
    with pytest.raises(ConfigError, match="config key plugins: module 'no_such_adloc_plugin'"):
        validate_config({"plugins": ["no_such_adloc_plugin"]})
    with pytest.raises(ConfigError, match="already registered"):
        register_method(REGISTRY["padim"])


# --------------------------------------------------------------------------- code shape

#: where a method's name may be written: its registry entry and model code, the schema, the
#: presets and config.yaml (not Python), and the study's published numbers (data keyed by the
#: study's two methods)
ALLOWED = ("src/adloc/models/", "src/adloc/schema/", "src/adloc/analysis/study_reference.py")
NAME = re.compile(r"patchcore|padim|spade", re.I)


def _literals(tree: ast.AST):
    """String constants that are not docstrings."""
    docs = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docs.add(id(body[0].value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            yield node


def test_no_method_name_outside_the_registry():
    bad = []
    for f in sorted([*(ROOT / "src").rglob("*.py"), *(ROOT / "scripts").glob("*.py")]):
        rel = f.relative_to(ROOT).as_posix()
        if rel.startswith(ALLOWED):
            continue
        for node in _literals(ast.parse(f.read_text(), rel)):
            if NAME.search(node.value):
                bad.append(f"{rel}:{node.lineno}: {node.value[:60]!r}")
    for f in [ROOT / "Snakefile", *sorted((ROOT / "rules").glob("*.smk"))]:
        rel = f.relative_to(ROOT).as_posix()
        for i, line in enumerate(f.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(r"[\"'][^\"']*(patchcore|padim|spade)[^\"']*[\"']", code, re.I) and '"""' not in code:
                bad.append(f"{rel}:{i}: {line.strip()[:60]}")
    assert not bad, "method names outside adloc.models (read the registry instead):\n" + "\n".join(bad)
