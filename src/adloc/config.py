"""Load and validate the workflow configuration against ``adloc/schema/config.schema.yaml``.

The schema is the single source of truth for keys, types and defaults. :func:`validate_config`
fills every missing key from the schema's defaults and raises :class:`adloc.errors.ConfigError`
with a message that names the offending key (as a dotted path) and the allowed values.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any, Mapping

import jsonschema
import yaml

from .data.synthetic.counts import EMBEDDED_CLASSES
from .errors import ConfigError

#: The config schema: one file, shipped inside the package (package-data), read by this module
#: and by the workflow's ``snakemake.utils.validate`` (rules/common.smk) alike.
SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "config.schema.yaml"

#: Class names the embedded generator knows (dataset.generate: true): its own class table.
EMBEDDED_CLASS_NAMES = tuple(EMBEDDED_CLASSES)


def schema_path() -> Path:
    """Path of the config schema inside the installed (or checked-out) package."""
    if not SCHEMA_PATH.is_file():
        raise ConfigError(
            f"config schema not found at {SCHEMA_PATH}; the adloc installation is incomplete: "
            "reinstall it (pip install .) from a checkout"
        )
    return SCHEMA_PATH


def load_schema() -> dict:
    with open(schema_path(), encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _with_defaults(validator_class):
    """Extend a jsonschema validator so that it fills ``default`` values of missing properties."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if name not in instance and "default" in sub:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "<top level>"


def _describe(error: jsonschema.ValidationError, source: str) -> str:
    """Turn a jsonschema error into one line naming the key and what is allowed."""
    key = _key_path(error)
    where = f" in {source}" if source else ""
    v = error.validator
    if v == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        prefix = "" if key == "<top level>" else key + "."
        names = ", ".join(prefix + e for e in extra)
        hint = nested_key_hint(extra[0], error.schema) if extra and not prefix else ""
        return (
            f"unknown config key {names}{where}; allowed keys"
            f"{'' if key == '<top level>' else ' under ' + key}: {', '.join(allowed)}{hint}"
        )
    if v == "enum":
        return (
            f"config key {key}{where} has value {error.instance!r}; allowed values: "
            + ", ".join(repr(x) for x in error.validator_value)
        )
    if v == "type":
        want = error.validator_value
        want = " or ".join(want) if isinstance(want, list) else want
        return (
            f"config key {key}{where} must be of type {want}, got {type(error.instance).__name__} "
            f"{error.instance!r}"
        )
    if v == "oneOf" and error.context:
        # Prefer the branch whose type matched the value: its error is the informative one.
        branches: dict = {}
        for e in error.context:
            branches.setdefault(e.relative_schema_path[0], []).append(e)
        matched = [
            e
            for errs in branches.values()
            if not any(x.validator in ("type", "enum") and not x.relative_path for x in errs)
            for e in errs
        ]
        relevant = matched or list(error.context)
        return _describe(jsonschema.exceptions.best_match(relevant), source)
    desc = error.schema.get("description") if isinstance(error.schema, dict) else None
    hint = f" ({desc.strip()})" if desc else ""
    if v == "pattern":
        return (
            f"config key {key}{where} has value {error.instance!r}, which does not match "
            f"{error.validator_value!r}" + (f": {desc.strip()}" if desc else "")
        )
    return f"config key {key}{where} is invalid: {error.message}{hint}"


def method_schema(plugins=None) -> dict:
    """The schema with its method parts from the registry, after importing the ``plugins``
    modules (each registers its methods; :mod:`adloc.models.schema`)."""
    from .models.registry import load_plugins
    from .models.schema import with_methods

    if plugins is not None and not (isinstance(plugins, list) and all(isinstance(p, str) for p in plugins)):
        raise ConfigError(f"config key plugins must be a list of module names, got {plugins!r}")
    load_plugins(plugins)
    return with_methods(load_schema())


def validate_config(
    config: Mapping[str, Any], source: str = "", cli_overrides: Mapping[str, Any] | None = None
) -> dict:
    """Validate ``config`` against the schema, fill defaults, return a new dict.

    ``cli_overrides``: the values of Snakemake's ``--config`` (already merged into ``config``),
    whose nested values arrive as untyped strings: they are typed by :func:`coerce_cli_config`
    and merged over ``config`` again.

    Raises:
        ConfigError: naming the first offending key (dotted path) and the allowed values.
    """
    cfg = copy.deepcopy(dict(config))
    schema = method_schema(cfg.get("plugins"))
    if cli_overrides:
        cfg = deep_merge(cfg, coerce_cli_config(cli_overrides, schema))
    cls = jsonschema.validators.validator_for(schema)
    validator = _with_defaults(cls)(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: (len(list(e.absolute_path)), e.message))
    if errors:
        raise ConfigError(_describe(errors[0], source))
    _cross_checks(cfg, source)
    return cfg


# ---------------------------------------------------------------------------------------------
# Snakemake --config values: typed by the schema

_YAML12_NULL = ("", "~", "null", "Null", "NULL")
_YAML12_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_YAML12_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_YAML12_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_YAML12_INF = re.compile(r"[-+]?\.(?:inf|Inf|INF)")
_YAML12_NAN = re.compile(r"\.(?:nan|NaN|NAN)")


def yaml12_scalar(text: str) -> Any:
    """The value of a plain scalar under the YAML 1.2 core schema: null, bool, int, float, else
    ``text`` itself (``yes``/``on`` stay strings, ``1e-3`` is a float, as in YAML 1.2)."""
    if text in _YAML12_NULL:
        return None
    if text in _YAML12_BOOL:
        return _YAML12_BOOL[text]
    if _YAML12_INT.fullmatch(text):
        return int(text[2:], 8) if text.startswith("0o") else int(text, 0 if text.startswith("0x") else 10)
    if _YAML12_FLOAT.fullmatch(text):
        return float(text)
    if _YAML12_INF.fullmatch(text):
        return float("-inf") if text.startswith("-") else float("inf")
    return float("nan") if _YAML12_NAN.fullmatch(text) else text


def _resolve(sub: Any, root: Mapping) -> dict:
    """``sub`` with a local ``$ref`` (``#/definitions/x``) followed; {} for anything else."""
    while isinstance(sub, Mapping) and "$ref" in sub:
        target: Any = root
        for part in sub["$ref"].lstrip("#/").split("/"):
            target = target.get(part, {})
        sub = target
    return dict(sub) if isinstance(sub, Mapping) else {}


def _branches(sub: Mapping, root: Mapping) -> list[dict]:
    """``sub`` and the alternatives of its oneOf/anyOf, resolved."""
    alts = [_resolve(a, root) for k in ("oneOf", "anyOf") for a in sub.get(k, [])]
    return [sub, *alts]


def _accepts(sub: Mapping, value: Any) -> bool:
    want = sub.get("type")
    if want is None:
        return False
    names = {"null": type(None), "boolean": bool, "integer": int, "number": (int, float), "string": str}
    want = want if isinstance(want, list) else [want]
    ok = any(isinstance(value, names.get(t, ())) for t in want)
    return ok and not (isinstance(value, bool) and "boolean" not in want)


def coerce_cli_config(values: Any, schema: Mapping | None = None, _sub: Any = None) -> Any:
    """Snakemake's ``--config`` values with their strings typed as the schema types them.

    Snakemake reads a nested value (``--config 'dataset={root: ~/mine, generate: false}'``) with
    YAML's base loader, so every scalar inside arrives as a string ('false', '0.2', '7'), and a
    top-level ``offline=true`` as 'true'. A string is replaced by its YAML 1.2 core value
    (:func:`yaml12_scalar`) where the schema allows that value's type (null, boolean, integer,
    number) at that key; everything else is left for validation to judge.
    """
    schema = load_schema() if schema is None else schema
    subs = _branches(_resolve(schema if _sub is None else _sub, schema), schema)
    if isinstance(values, Mapping):
        out = {}
        for k, v in values.items():
            child = next((s["properties"][k] for s in subs if k in s.get("properties", {})), None)
            if child is None:
                child = next((s["additionalProperties"] for s in subs
                              if isinstance(s.get("additionalProperties"), Mapping)), {})
            out[k] = coerce_cli_config(v, schema, child)
        return out
    if isinstance(values, list):
        item = next((s["items"] for s in subs if isinstance(s.get("items"), Mapping)), {})
        return [coerce_cli_config(v, schema, item) for v in values]
    if isinstance(values, str):
        typed = yaml12_scalar(values)
        if not isinstance(typed, str) and any(_accepts(s, typed) for s in subs):
            return typed
    return values


def nested_key_hint(key: str, schema: Mapping) -> str:
    """For an unknown top-level ``key`` that names a nested one (``root``, ``dataset_root``):
    the command-line form that sets it. Snakemake itself refuses the dotted form
    ``--config dataset.root=...`` before the workflow starts."""
    schema = _resolve(schema, schema)
    for section, sub in schema.get("properties", {}).items():
        props = _resolve(sub, schema).get("properties", {})
        for name in props:
            if key in (name, f"{section}_{name}", f"{section}.{name}", f"{section}-{name}"):
                return (
                    f". Did you mean {section}.{name}? A nested key is set on the command line as "
                    f"a YAML mapping: --config '{section}={{{name}: VALUE}}' (in a config file: "
                    f"{section}: {{{name}: VALUE}})"
                )
    return ""


def _cross_checks(cfg: dict, source: str) -> None:
    where = f" in {source}" if source else ""
    cfg["dataset"]["root"] = os.path.expanduser(cfg["dataset"]["root"])  # as weights paths
    if cfg["dataset"]["generate"]:
        bad = [c for c in cfg["classes"] if c not in EMBEDDED_CLASS_NAMES]
        if bad:
            raise ConfigError(
                f"unknown class {', '.join(map(repr, bad))} in config key classes{where}: with "
                f"dataset.generate: true the allowed classes are {', '.join(EMBEDDED_CLASS_NAMES)}. "
                "For real data set dataset.generate: false and dataset.root to the MVTec AD folder."
            )
    if cfg["dataset"]["generate"] and cfg["dataset"]["source"] != "folder":
        raise ConfigError(
            f"config key dataset.source{where} is {cfg['dataset']['source']!r} but dataset.generate is "
            "true; set dataset.generate: false to fetch the real dataset"
        )
    unknown = sorted(set(cfg["class_overrides"]) - set(cfg["classes"]))
    if unknown:
        raise ConfigError(
            f"config key class_overrides{where} names class(es) {', '.join(unknown)} that are not in "
            f"classes ({', '.join(cfg['classes'])}); fix the name or add the class"
        )
    for method in cfg["methods"]:
        w = cfg[method]["weights"]
        if w not in ("imagenet", "random") and not Path(w).expanduser().is_file():
            raise ConfigError(
                f"config key {method}.weights{where}: weights file not found: {w} (relative paths "
                f"are read from the working directory {Path.cwd()}). Give the path of an existing "
                ".pth/.pt/.safetensors state dict, or use 'imagenet' / 'random'."
            )
    crop = cfg["preprocess"]["crop"]
    if crop is not None and crop > cfg["preprocess"]["resize"]:
        raise ConfigError(
            f"config key preprocess.crop{where} ({crop}) is larger than preprocess.resize "
            f"({cfg['preprocess']['resize']}); use crop <= resize or crop: null"
        )


def load_config(source: str | Path | Mapping[str, Any], overrides: Mapping | None = None) -> dict:
    """Load a YAML file (or take a dict), apply ``overrides`` (deep-merged), validate, fill defaults."""
    if isinstance(source, Mapping):
        cfg, name = dict(source), ""
    else:
        path = Path(source)
        try:
            with open(path, encoding="utf-8") as fh:
                cfg = yaml.safe_load(fh) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
        if not isinstance(cfg, dict):
            raise ConfigError(f"config file {path} must hold a mapping of keys, got {type(cfg).__name__}")
        name = str(path)
    if overrides:
        cfg = deep_merge(cfg, overrides)
    return validate_config(cfg, name)


def deep_merge(base: Mapping, update: Mapping) -> dict:
    """Return ``base`` updated recursively by ``update`` (dicts merged, everything else replaced)."""
    out = copy.deepcopy(dict(base))
    for k, v in update.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def dataset_name(cfg: Mapping[str, Any]) -> str:
    """Short dataset name: ``dataset.name``, else "embedded" (generated) or root's last folder."""
    ds = cfg["dataset"]
    if ds.get("name"):
        return ds["name"]
    if ds["generate"]:
        return "embedded"
    base = Path(str(ds["root"])).expanduser().resolve().name or "data"
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in base)


def run_folder_name(cfg: Mapping[str, Any]) -> str:
    """The run's folder under results/: ``run_name`` if set, else ``<dataset>[-<run_tag>]``.

    Presets set ``run_tag`` (paper, study), never ``run_name``, so the paper and study presets on
    the same data get separate folders and a name the user set always wins.
    """
    if cfg.get("run_name"):
        return cfg["run_name"]
    tag = cfg.get("run_tag", "default")
    name = dataset_name(cfg)
    return name if tag == "default" else f"{name}-{tag}"


_TRUE = ("1", "true", "yes", "on")


def is_offline(cfg: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> bool:
    """No downloads: config key ``offline``, or HF_HUB_OFFLINE / ADLOC_OFFLINE set to 1/true."""
    env = os.environ if environ is None else environ
    return bool(cfg.get("offline")) or any(
        env.get(k, "").strip().lower() in _TRUE for k in ("ADLOC_OFFLINE", "HF_HUB_OFFLINE")
    )


def feature_set_name(backbone: str, weights: str) -> str:
    """Name of a cached feature set: backbone plus a weights tag ("imagenet", "random", "file-<stem>")."""
    if weights in ("imagenet", "random"):
        tag = weights
    else:
        tag = "file-" + "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in Path(weights).stem)
    return f"{backbone}-{tag}"


def repeat_name(split_seed: int, model_seed: int) -> str:
    """Folder name of one repeat under results/<run>/: ``s<split seed>-m<model seed>``."""
    return f"s{int(split_seed)}-m{int(model_seed)}"


def parse_repeat(name: str) -> tuple[int, int]:
    """``(split seed, model seed)`` of a repeat folder name (inverse of :func:`repeat_name`)."""
    import re

    m = re.fullmatch(r"s(-?\d+)-m(-?\d+)", str(name))
    if not m:
        raise ConfigError(f"{name!r} is not a repeat name (expected s<split seed>-m<model seed>)")
    return int(m.group(1)), int(m.group(2))


def repeat_names(cfg: Mapping[str, Any]) -> list[str]:
    """Every repeat of a validated config, split seeds outer, model seeds inner. Without
    ``repeats`` this is one repeat: ``splits.seed`` x ``seed`` (a single run, as before)."""
    rep = cfg.get("repeats") or {}
    split_seeds = rep.get("split_seeds") or [cfg["splits"]["seed"]]
    model_seeds = rep.get("model_seeds") or [cfg["seed"]]
    return [repeat_name(s, m) for s in split_seeds for m in model_seeds]
