"""Code-shape rules the developers' guide sets, checked over src/, scripts/ and benchmarks/."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted([*(ROOT / "src").rglob("*.py"), *(ROOT / "scripts").glob("*.py"),
                *(ROOT / "benchmarks").glob("*.py")])


def _trees():
    for f in FILES:
        yield f.relative_to(ROOT).as_posix(), ast.parse(f.read_text(), str(f))


def test_no_private_imports_across_modules():
    """``from module import _name`` reaches into another module's internals (``__version__``
    and the like are public)."""
    bad = []
    for rel, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                for a in node.names:
                    if a.name.startswith("_") and not a.name.startswith("__"):
                        bad.append(f"{rel}:{node.lineno}: from {'.' * node.level}{node.module or ''} import {a.name}")
    assert not bad, "private names imported across modules:\n" + "\n".join(bad)


def test_one_definition_of_shared_helpers():
    """One ``resolve_device`` (adloc.runtime), one ImageNet mean/std (adloc.data.transforms) and
    one ``as_list`` (adloc.workflow; no private copy beside it)."""
    defs: dict[str, list[str]] = {"resolve_device": [], "IMAGENET_MEAN": [], "IMAGENET_STD": [],
                                  "as_list": [], "_as_list": []}
    for rel, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name in defs:
                defs[node.name].append(rel)
            if isinstance(node, ast.Assign):
                for t in node.targets:
                    if isinstance(t, ast.Name) and t.id in defs:
                        defs[t.id].append(rel)
    assert defs == {
        "resolve_device": ["src/adloc/runtime.py"],
        "IMAGENET_MEAN": ["src/adloc/data/transforms.py"],
        "IMAGENET_STD": ["src/adloc/data/transforms.py"],
        "as_list": ["src/adloc/workflow.py"],
        "_as_list": [],
    }
