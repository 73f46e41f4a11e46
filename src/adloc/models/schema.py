"""The config schema's method parts, from the registry (torch-free).

The schema file (``adloc/schema/config.schema.yaml``) documents the built-in methods' sections
by hand (descriptions, enums, bounds); tests/test_registry.py checks them against the config
dataclasses field by field. Everything that depends on which methods exist is filled in here,
from :mod:`.registry`, when a config is validated:

* ``methods``: its items are the registered names;
* a registered method without a hand-written section (a plug-in) gets one generated from its
  config dataclass (types and defaults) plus the workflow keys ``backbone`` / ``weights``;
* ``class_overrides.<class>.<method>``: the method's model parameters
  (:meth:`Method.param_fields`) but ``layers`` (the layers decide the feature set, extracted once
  per backbone for every class), each with the schema of the method's own key (no default).
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from typing import Any, Mapping

from ..errors import ConfigError
from .registry import REGISTRY, Method

#: model parameters a class may not override (they decide which features are extracted)
NOT_PER_CLASS = frozenset({"layers"})

_JSON_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean", type(None): "null"}


def _json_type(tp: Any, where: str) -> dict:
    """JSON schema of a dataclass field type: int/float/str/bool, ``X | None``, tuple/list of
    those."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        subs = [_json_type(a, where) for a in typing.get_args(tp)]
        if all(set(s) == {"type"} for s in subs):
            return {"type": [t for s in subs for t in ([s["type"]] if isinstance(s["type"], str) else s["type"])]}
        return {"anyOf": subs}
    if origin in (tuple, list):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return {"type": "array", "items": _json_type(args[0], where) if args else {}}
    if tp in _JSON_TYPES:
        return {"type": _JSON_TYPES[tp]}
    raise ConfigError(
        f"{where}: field type {tp!r} has no config-file form; use int, float, str, bool, "
        "'X | None' or tuple[X, ...]"
    )


def dataclass_section(entry: Method, workflow_schema: Mapping[str, Any]) -> dict:
    """A config section generated from ``entry.config``: one property per model parameter
    (its type and the dataclass default), plus the workflow keys (``workflow_schema``)."""
    hints = typing.get_type_hints(entry.config)
    props: dict[str, Any] = {k: copy.deepcopy(v) for k, v in workflow_schema.items()
                             if k in entry.workflow_keys}
    fields = {f.name: f for f in dataclasses.fields(entry.config)}
    for name in entry.param_fields():
        f = fields[name]
        prop = _json_type(hints[name], f"method {entry.name!r} config {entry.config.__name__}.{name}")
        if f.default is not dataclasses.MISSING:
            d = f.default
            prop["default"] = list(d) if isinstance(d, tuple) else d
        elif f.default_factory is not dataclasses.MISSING:
            prop["default"] = f.default_factory()
        props[name] = prop
    for kw, keys in entry.predict_options.items():
        for key in keys:
            if key not in props:
                raise ConfigError(f"method {entry.name!r}: predict option {kw!r} reads key {key!r}, "
                                  "which a generated section cannot describe; write its schema")
    return {"type": "object", "additionalProperties": False, "default": {}, "properties": props}


def with_methods(schema: Mapping[str, Any]) -> dict:
    """``schema`` with its method parts filled in from the registry (see module docstring)."""
    out = copy.deepcopy(dict(schema))
    props = out["properties"]
    names = list(REGISTRY)
    props["methods"]["items"]["enum"] = names
    builtin = props[names[0]]["properties"]  # the workflow keys' schema, as the first method has it
    for name in names:
        if name not in props:
            props[name] = dataclass_section(REGISTRY[name], builtin)
    overrides = {}
    for name in names:
        section = props[name]["properties"]
        keys = {k: {kk: vv for kk, vv in section[k].items() if kk != "default"}
                for k in REGISTRY[name].param_fields() if k in section and k not in NOT_PER_CLASS}
        overrides[name] = {"type": "object", "additionalProperties": False, "properties": keys}
    props["class_overrides"]["additionalProperties"]["properties"] = overrides
    return out
