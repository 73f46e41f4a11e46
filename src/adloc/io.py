"""Crash-safe file writing and checked reading.

Every output is written to a temporary file in the target's folder and renamed into place
(``os.replace`` is atomic on POSIX), so a job killed mid-write never leaves a half-written target
that a later rule would trust. Readers raise :class:`adloc.errors.AdlocError` subclasses whose
message names the file and says how to fix it.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from .errors import AdlocError, WriteError

PathLike = str | os.PathLike


@contextlib.contextmanager
def atomic_path(path: PathLike, suffix: str | None = None, size: int | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    The temporary name keeps the target's suffix (or ``suffix``) so libraries that infer the
    format from the extension (matplotlib, numpy) still work. On error the temporary is removed;
    temporaries of this target left by a writer that was killed (SIGKILL, power loss) are removed
    before writing (Snakemake never runs two jobs with the same output at once). A full disk or a
    folder that cannot be written (ENOSPC, EDQUOT, EACCES, EPERM, EROFS, also inside torch's
    writer) raises :class:`adloc.errors.WriteError`: one line naming the target and, for a full
    disk, the space it needs (``size``, the writer's estimate, else what had been written) and
    the space left.
    """
    path = Path(path)
    tmp_path: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(f".{glob.escape(path.name)}.{'?' * 8}.tmp*"):  # mkstemp: 8
            with contextlib.suppress(OSError):
                stale.unlink()
        sfx = suffix if suffix is not None else "".join(path.suffixes)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{sfx}", dir=path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; give the target normal permissions
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except BaseException as exc:
        written = 0
        if tmp_path is not None:
            with contextlib.suppress(OSError):
                written = tmp_path.stat().st_size
            with contextlib.suppress(FileNotFoundError):
                tmp_path.unlink()
        error = write_error(path, exc, max(written, size or 0))
        if error is not None:
            raise error from exc
        raise


#: errno values that mean "this folder cannot take the file": full disk or quota, no permission,
#: read-only file system.
_FULL = {errno.ENOSPC, errno.EDQUOT}
_DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)  # unreachable


def _os_cause(exc: BaseException | None) -> OSError | None:
    """The first OSError with one of the write errnos in ``exc``'s chain (cause and context):
    torch reports a failed write as RuntimeError ``[enforce fail at inline_container.cc:...]``
    and the file object's close then raises the OSError, with the RuntimeError as context."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _FULL | _DENIED:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def write_error(path: PathLike, exc: BaseException, written: int = 0) -> WriteError | None:
    """A one-line :class:`WriteError` for a write of ``path`` that failed with ``exc`` when the
    cause is a full disk or a folder that cannot be written, else None.

    ``written``: the file's size (estimated by the writer, or what the temporary held when the
    write failed: a lower bound). torch's ``PytorchStreamWriter`` failures
    (``inline_container.cc``) count as a full disk when the folder has less free space than
    that, or under 64 MiB. A permission error naming a file outside ``path``'s folder and the
    folders above it (e.g. an input read inside the block) is not a write error.
    """
    if isinstance(exc, AdlocError):
        return None
    path = Path(path)
    cause = _os_cause(exc)
    torch_write = isinstance(exc, RuntimeError) and (
        "inline_container" in str(exc) or "PytorchStreamWriter" in str(exc))
    free = None
    with contextlib.suppress(OSError):
        free = shutil.disk_usage(_existing_parent(path)).free
    if cause is None and torch_write:
        if free is None or free < max(written, 64 << 20):
            cause = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        else:
            return WriteError(
                f"cannot write {path}: torch could not write the file ({str(exc).strip()}); "
                f"{_size(free)} are free there. Check the disk (and its quota), then rerun."
            )
    if cause is None:
        return None
    if cause.errno in _FULL:
        need = f"needs at least {_size(written)}" if written else "needs more"
        left = f"{_size(free)} free" if free is not None else "free space unknown"
        what = "quota exceeded" if cause.errno == errno.EDQUOT else "no space left on device"
        return WriteError(
            f"cannot write {path}: {what} (the file {need}; {left} in "
            f"{_existing_parent(path)}). Free "
            "space there (or point the run at a larger disk), then rerun (no partial file is "
            "left)."
        )
    where = Path(os.path.abspath(cause.filename)) if cause.filename else path.parent
    target = Path(os.path.abspath(path))
    if cause.filename and where not in target.parents and where.parent != target.parent:
        return None  # not the target, a temporary beside it, or a folder above it
    if where.parent == target.parent:
        where = path.parent  # the target or its temporary: name the folder
    why = "the file system is read-only" if cause.errno == errno.EROFS else "permission denied"
    return WriteError(
        f"cannot write {path}: {why} ({where}). Make that folder writable (or run from a "
        "writable copy of the workflow), then rerun."
    )


def _existing_parent(path: Path) -> Path:
    p = path.parent
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def write_text(path: PathLike, text: str) -> None:
    """Atomically write ``text`` (UTF-8)."""
    data = text.encode("utf-8")
    with atomic_path(path, size=len(data)) as tmp:
        tmp.write_bytes(data)


def json_text(obj: Any, indent: int | None = 2, compact: bool = False, default=None) -> str:
    """Strict, key-sorted JSON of ``obj``: every JSON adloc writes goes through here.

    ``obj`` is made plain (:func:`to_plain`; unknown objects through ``default`` when given) and
    every non-finite float (NaN, inf) becomes ``null``, so strict parsers read the result
    (``allow_nan=False`` guarantees it). ``compact``: no spaces, one line (hashes, provenance).
    """
    plain = _finite(to_plain(obj, other=default))
    if compact:
        return json.dumps(plain, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return json.dumps(plain, indent=indent, sort_keys=True, allow_nan=False)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def write_json(path: PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as indented, key-sorted, strict JSON (:func:`json_text`: NaN and
    inf become null; stable across runs)."""
    write_text(path, json_text(obj) + "\n")


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
    size = sum(np.asarray(a).nbytes for a in arrays.values())
    with atomic_path(path, suffix=".npz", size=size) as tmp:
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

    with atomic_path(path, size=_tensor_bytes(obj)) as tmp, open(tmp, "wb") as fh:
        torch.save(obj, fh)


def _tensor_bytes(obj: Any) -> int:
    """Bytes of the tensors in ``obj`` (nested dicts, lists, tuples): what a torch file needs."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.element_size() * obj.nelement()
    if isinstance(obj, Mapping):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


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
