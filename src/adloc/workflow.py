"""Glue between Snakemake's ``script:`` object and the library, kept free of Snakemake imports.

:func:`run_script` is what every ``scripts/*.py`` calls: it routes logging and library chatter
to the rule's log file, caps torch's threads at the rule's ``threads`` (when the job imports
torch: jobs that need no tensors never import it), and turns an
:class:`adloc.errors.AdlocError` into one clear line on stderr (plus the log) and exit code 1,
instead of a traceback. Outputs are written atomically by the library (``adloc.io``), so a failed
or killed job leaves no partial target behind.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import ConfigError

log = logging.getLogger("adloc")


def _set_torch_threads(torch, threads: int) -> None:
    torch.set_num_threads(max(1, threads))
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)


class _ThreadsOnTorchImport(importlib.abc.MetaPathFinder):
    """Caps torch's threads the moment a job first imports torch, so that jobs which never
    need tensors never pay torch's import (2-5 s a job, issue 23 §1)."""

    def __init__(self, threads: int):
        self.threads = threads

    def find_spec(self, name, path=None, target=None):
        if name != "torch":
            return None
        sys.meta_path.remove(self)  # once: the real finders locate torch
        spec = importlib.util.find_spec("torch")
        if spec is None or spec.loader is None:
            return spec
        loader, threads = spec.loader, self.threads
        exec_module = loader.exec_module

        def exec_then_cap(module):
            exec_module(module)
            _set_torch_threads(module, threads)

        loader.exec_module = exec_then_cap
        return spec


def _configure_threads(threads: int) -> None:
    """OpenMP's default and torch's thread caps at the rule's ``threads``; torch is configured
    now if it is already imported, else when (if ever) the job imports it."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _ThreadsOnTorchImport)]
    if "torch" in sys.modules:
        _set_torch_threads(sys.modules["torch"], threads)
    else:
        sys.meta_path.insert(0, _ThreadsOnTorchImport(threads))


def as_list(files) -> list:
    """A named input/output as a list: Snakemake hands a one-file entry over as a plain string
    (one path, ``str``, ``bytes`` or ``os.PathLike``, or anything not iterable is one item).
    The one copy: scripts import it through ``_common``, the library (:mod:`adloc.scopes`) from
    here (this module imports the standard library only)."""
    if isinstance(files, (str, bytes, os.PathLike)) or not isinstance(files, Iterable):
        return [files]
    return list(files)


def run_script(smk: Any, main: Callable[[Any], None]) -> None:
    """Run ``main(smk)`` with logging to ``smk.log[0]`` and clean error reporting.

    Args:
        smk: the ``snakemake`` object Snakemake injects into scripts (or any object with
            ``input``, ``output``, ``params``, ``log``, ``threads``, ``wildcards``).
        main: the script's body.
    """
    log_path = Path(smk.log[0]) if len(smk.log) else None
    stream = open(log_path, "w", encoding="utf-8") if log_path else sys.stderr  # noqa: SIM115
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    _configure_threads(int(getattr(smk, "threads", 1) or 1))
    real_stderr = sys.stderr
    code = 0
    try:
        with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
            from .models.registry import load_plugins

            load_plugins((getattr(smk, "config", None) or {}).get("plugins"))  # their methods
            main(smk)
    except Exception as exc:  # report, then exit non-zero
        from .errors import AdlocError

        code = 1
        if isinstance(exc, AdlocError):
            message = f"adloc error: {exc}"
            log.error(message)
        else:
            message = f"adloc internal error: {type(exc).__name__}: {exc}"
            log.error("%s\n%s", message, traceback.format_exc())
        where = f" (log: {log_path})" if log_path else ""
        print(message + where, file=real_stderr, flush=True)
    finally:
        handler.flush()
        if log_path:
            stream.close()
    if code:
        sys.exit(code)


def run_tables(runs: Sequence[str], current_run: str, results: str = "results") -> list[str]:
    """``results/<run>/tables/metrics.csv`` of each run compared by rule compare; a run other
    than ``current_run`` (the one the workflow's config can still make) must be finished, else
    ConfigError naming its file."""
    if len(runs) < 2 or len(set(runs)) != len(runs):
        raise ConfigError(f"compare needs two or more different runs (results/compare/<a>_vs_<b>/), got {list(runs)}")
    paths = [f"{results}/{r}/tables/metrics.csv" for r in runs]
    missing = [p for r, p in zip(runs, paths) if r != current_run and not Path(p).is_file()]
    if missing:
        raise ConfigError(
            f"compare: run(s) not finished: {', '.join(missing)} missing. Run each first with its "
            "own config (e.g. --configfile presets/mvtec.yaml presets/study.yaml), then compare."
        )
    return paths


def run_configs(runs: Sequence[str], current_run: str, results: str = "results") -> list[str | None]:
    """``results/<run>/config.json`` of each compared run (rule run_config writes it), None for
    a finished run from before that file existed (rule compare then shows no published
    numbers and says why)."""
    paths = [f"{results}/{r}/config.json" for r in runs]
    return [p if r == current_run or Path(p).is_file() else None for r, p in zip(runs, paths)]


def done_message(results: str, targets, started: float) -> str:
    """What the workflow prints when it ends well: where the summary is, only if it exists and
    is this run's (built by it, or the run asked for everything: no target, or ``all``).

    ``targets``: the targets given on the command line (empty: the default target);
    ``started``: the run's start time (``time.time()``), against the summary's mtime.
    """
    summary = Path(results) / "summary.md"
    full = not targets or "all" in targets
    fresh = summary.is_file() and (full or summary.stat().st_mtime >= started)
    if fresh:
        return (
            f"\nadloc: done. Summary: {summary}; tables: {results}/tables/; figures: "
            f"{results}/figures/.\nHTML report: snakemake --report {results}/report.html\n"
        )
    asked = ", ".join(sorted(map(str, targets)))
    return (
        f"\nadloc: done: built {asked} and what it needs (outputs under {results}/). "
        f"{summary} was not built by this run: snakemake --cores all builds the summary.\n"
    )
