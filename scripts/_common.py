"""Shared start-up for the workflow's scripts (Snakemake puts scripts/ on sys.path).

Makes the repository's ``src/`` importable when adloc is not installed (e.g. inside a conda env
built from envs/*.yaml) and re-exports :func:`adloc.workflow.run_script`.
"""

import sys
from pathlib import Path

_SRC = Path(__file__).resolve().parents[1] / "src"
if str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

from adloc.workflow import run_script  # noqa: E402


def as_list(files):
    """A named input/output as a list: Snakemake hands a one-file entry over as a plain string."""
    return [files] if isinstance(files, str) else list(files)


__all__ = ["run_script", "as_list"]
