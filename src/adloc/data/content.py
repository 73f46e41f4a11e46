"""Content, not time stamps, as the trigger that reruns a class (rule index).

``cp -p``, ``rsync -a`` and ``touch -d`` give an edited file its old modification time, so
Snakemake's time-stamp check sees nothing. The class index records each file's sha256; rule
index's second output, ``index/stat/<cls>.json`` (:func:`class_stats`), each file's ``stat``
(size, mtime_ns, ctime_ns; the inode change time moves on every write, also with ``cp -p``),
taken before hashing and kept apart so the index itself stays byte-identical between folders.
When the workflow builds its job graph, :func:`content_param` stats every indexed file of the
class (no file is read) and re-hashes only those whose stat differs from the stat file's; the
result is rule index's ``content`` parameter (Snakemake reruns a job whose parameters changed):

* every file as indexed (or re-hashed to the same sha256): the value the index was made with
  (recorded in the index as ``content``), so nothing reruns;
* a sha256 that differs: a digest of the class's current content, a new parameter value, so
  Snakemake reruns the index and, as the index then changes, that class's chain only;
* no index yet (or unreadable): :data:`UNINDEXED` (the rule runs anyway; nothing is hashed).

Added or removed files change the rule's input list, which Snakemake sees by itself.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from ..errors import AdlocError
from ..io import read_json, sha256_file

PathLike = str | os.PathLike
#: The ``content`` parameter of a class that has no (readable) index yet.
UNINDEXED = "unindexed"


def file_stat(path: PathLike) -> list[int]:
    """``[size, mtime_ns, ctime_ns]`` of a file (links followed)."""
    st = os.stat(path)
    return [int(st.st_size), int(st.st_mtime_ns), int(st.st_ctime_ns)]


def content_digest(hashes: dict[str, str | None]) -> str:
    """sha256 over the sorted ``relative path -> sha256`` pairs of a class."""
    h = hashlib.sha256()
    for rel in sorted(hashes):
        h.update(f"{rel}\0{hashes[rel]}\n".encode())
    return h.hexdigest()


def indexed_files(indexed: dict[str, Any]) -> list[tuple[str, str | None]]:
    """``(relative path, recorded sha256)`` of every image and mask of a class index."""
    out = []
    for e in list(indexed["train"]) + list(indexed["test"]):
        for key, hkey in (("path", "sha256"), ("mask", "mask_sha256")):
            if e.get(key) is not None:
                out.append((e[key], e.get(hkey)))
    return out


def class_stats(root: PathLike, rel_paths) -> dict[str, list[int]]:
    """``relative path -> [size, mtime_ns, ctime_ns]`` of a class's images and masks (rule
    index's stat file; taken before the files are hashed, so an edit during hashing shows)."""
    return {rel: file_stat(Path(root) / rel) for rel in sorted(rel_paths)}


def content_param(root: PathLike, index_path: PathLike, stat_path: PathLike) -> str:
    """Rule index's ``content`` parameter for one class (module docstring): stat only, except
    for files whose stat differs from the stat file's, which are hashed again."""
    try:
        indexed = read_json(index_path, what="class index")
        files = indexed_files(indexed)
        stats = read_json(stat_path, what="class index stat file")
        if not isinstance(stats, dict):
            raise TypeError("stat file is not an object")
    except (AdlocError, KeyError, TypeError, AttributeError):  # missing or malformed: rule index runs anyway
        return UNINDEXED
    recorded = indexed.get("content")
    hashes: dict[str, str | None] = {}
    changed = recorded is None  # an index from before this parameter
    for rel, sha in files:
        path = Path(root) / rel
        try:
            hashes[rel] = sha if file_stat(path) == stats.get(rel) else sha256_file(path)
        except OSError:  # a removed file changes the rule's inputs: Snakemake sees it
            hashes[rel] = None
            continue
        changed = changed or hashes[rel] != sha
    return content_digest(hashes) if changed else str(recorded)
