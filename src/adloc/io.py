"""Crash-safe file writing and checked reading.

Every output is written to a temporary file in the target's folder and renamed into place
(``os.replace`` is atomic on POSIX), so a job killed mid-write never leaves a half-written target
that a later rule would trust. Readers raise :class:`adloc.errors.AdlocError` subclasses whose
message names the file and says how to fix it.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from .errors import AdlocError

PathLike = str | os.PathLike


@contextlib.contextmanager
def atomic_path(path: PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    The temporary name keeps the target's suffix (or ``suffix``) so libraries that infer the
    format from the extension (matplotlib, numpy) still work. On error the temporary is removed;
    temporaries of this target left by a writer that was killed (SIGKILL, power loss) are removed
    before writing (Snakemake never runs two jobs with the same output at once).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.{'?' * 8}.tmp*"):  # mkstemp: 8 chars
        with contextlib.suppress(OSError):
            stale.unlink()
    sfx = suffix if suffix is not None else "".join(path.suffixes)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{sfx}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; give the target normal permissions
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_text(path: PathLike, text: str) -> None:
    """Atomically write ``text`` (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as indented, key-sorted JSON (stable across runs)."""
    write_text(path, json.dumps(to_plain(obj), indent=2, sort_keys=True, allow_nan=True) + "\n")


def read_json(path: PathLike, what: str = "JSON file") -> Any:
    """Read JSON, raising a clear :class:`AdlocError` naming ``path`` when missing or corrupt."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AdlocError(f"{what} not found: {path}. Rerun the workflow to regenerate it.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AdlocError(
            f"{what} is corrupt: {path} ({exc}). Delete it and rerun the workflow to regenerate it."
        ) from None


def write_csv(path: PathLike, frame) -> None:
    """Atomically write a pandas DataFrame as CSV (no index)."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def save_npz(path: PathLike, **arrays: np.ndarray) -> None:
    """Atomically write arrays to an uncompressed ``.npz``."""
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


def load_npz(path: PathLike, what: str = "array file") -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` eagerly; a clear error names a missing or corrupt file."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise AdlocError(f"{what} not found: {path}. Rerun the workflow to regenerate it.") from None
    except Exception as exc:  # zipfile.BadZipFile, ValueError, EOFError, OSError ...
        raise AdlocError(
            f"{what} is corrupt: {path} ({type(exc).__name__}: {exc}). "
            "Delete it and rerun the workflow to regenerate it."
        ) from None


def save_torch(path: PathLike, obj: Any) -> None:
    """Atomically ``torch.save`` ``obj``.

    Saved through a file object, not the temporary's name: torch names the archive's root folder
    after the file it is given, so saving to the random temporary name would make identical
    objects give different bytes from run to run.
    """
    import torch

    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(obj, fh)


def load_torch(path: PathLike, what: str = "torch file", mmap: bool = False) -> Any:
    """``torch.load`` (weights_only, CPU) with a clear error naming a missing or corrupt file.

    ``mmap=True``: tensors are memory-mapped from the file (read when used), not read up front.
    """
    import torch

    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except FileNotFoundError:
        raise AdlocError(f"{what} not found: {path}. Rerun the workflow to regenerate it.") from None
    except Exception as exc:
        raise AdlocError(
            f"{what} is corrupt or not a torch file: {path} ({type(exc).__name__}: {exc}). "
            "Delete it and rerun the workflow to regenerate it."
        ) from None


def sha256_file(path: PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def to_plain(obj: Any, keep: tuple = (), other=None) -> Any:
    """Recursively turn mappings, sequences, numpy values and Paths into plain Python.

    Instances of ``keep`` pass through unchanged; anything else unknown is returned as is, or
    ``other(obj)`` when ``other`` is given (e.g. ``str`` for files that torch loads with
    ``weights_only``). Mapping keys become strings, tuples lists.
    """
    if keep and isinstance(obj, keep):
        return obj
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v, keep, other) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v, keep, other) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_plain(obj.tolist(), keep, other)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return obj.as_posix()
    if other is None or obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return other(obj)


def checkpoint_plain(obj: Any) -> Any:
    """:func:`to_plain` for torch checkpoints: tensors kept, anything else unknown as ``str``,
    so the file loads with ``torch.load(weights_only=True)``."""
    import torch

    return to_plain(obj, keep=(torch.Tensor,), other=str)
