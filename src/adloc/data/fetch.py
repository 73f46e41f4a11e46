"""Fetch a public dataset archive once: resumable download, sha256 check, extraction, marker.

``fetch_dataset(source, root, downloads, ...)`` makes ``root`` hold the dataset in the MVTec AD
folder layout:

1. the archive is downloaded to ``downloads/<file>`` through ``<file>.part``; a cut connection
   is resumed with an HTTP ``Range`` request where it stopped (within the job, up to
   ``retries`` times, and by the next run, which finds the ``.part`` file); progress lines go
   to the log;
2. its sha256 is checked against the published value (:data:`ARCHIVES`, from the dataset
   publishers as listed by anomalib's dataset modules). On a mismatch the file is moved aside
   to ``<file>.sha256-mismatch`` (nothing is deleted) and :class:`FetchError` gives both hashes;
3. it is extracted into a temporary folder next to ``root`` (VisA is then converted to the
   MVTec layout, :mod:`adloc.data.visa`) and renamed into place, so ``root`` is either complete
   or absent;
4. ``root/.adloc_fetched.json`` records the archive, its sha256 and the licence: a verified
   dataset is never fetched or extracted again.

Offline (``offline=True``, or no connection) the error is one line naming the URL, the file to
place by hand and where (every URL tried). A mirror can replace the URL (``url=``) and
``mirrors=`` adds URLs tried in order when one fails; the published sha256 applies to all unless
``sha256=`` is given. Sources, checksums and licences: :mod:`adloc.data.sources`; converters:
:mod:`adloc.data.visa`, :mod:`adloc.data.mvtec_ad2`, :mod:`adloc.data.btad`,
:mod:`adloc.data.realiad` (a manual download, never fetched).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import shutil
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from ..io import sha256_file, write_json
from .sources import ARCHIVES, LICENCE, Archive, FetchError, archive_for  # noqa: F401 (re-exported)

log = logging.getLogger("adloc.fetch")

MARKER = ".adloc_fetched.json"
def default_downloads(root: str | os.PathLike) -> Path:
    """Where archives go when ``dataset.downloads`` is null: ``downloads/`` beside ``root``."""
    return Path(root).expanduser().parent / "downloads"


def read_marker(root: str | os.PathLike) -> dict | None:
    """The marker of a fetched dataset (None when absent or unreadable)."""
    p = Path(root) / MARKER
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_fetched(root: str | os.PathLike, archive: Archive) -> bool:
    m = read_marker(root)
    return bool(m) and m.get("sha256") == archive.sha256


def unfetched_copy(root: str | os.PathLike, classes) -> bool:
    """True when ``root`` has no marker but holds a ``train/`` folder for every class: a copy
    the user unpacked by hand, read as a plain folder (never overwritten, not verified)."""
    root = Path(root).expanduser()
    return (
        not (root / MARKER).exists()
        and bool(classes)
        and all((root / c / "train").is_dir() for c in classes)
    )


def offline_message(archive: Archive, target: Path, why: str) -> str:
    """The one line that says what to download by hand (every URL tried) and where to put it."""
    return (
        f"{why}: cannot download {archive.name} from {' or '.join(archive.urls)}. Download that file by hand "
        f"and place it as {target} (sha256 {archive.sha256}), then rerun: adloc verifies and "
        "extracts it."
    )


# --------------------------------------------------------------------------------------------
# download
# --------------------------------------------------------------------------------------------
def _fmt(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


class _Progress:
    """Log a line every ``every`` seconds and at 10 % steps of a known size."""

    def __init__(self, total: int | None, start: int, every: float = 30.0):
        self.total, self.start, self.every = total, start, every
        self.t0 = self.last = time.monotonic()
        self.step = -1

    def __call__(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        step = int(10 * done / self.total) if self.total else -1
        if not final and step == self.step and now - self.last < self.every:
            return
        self.step, self.last = step, now
        rate = (done - self.start) / max(now - self.t0, 1e-9)
        of = f" of {_fmt(self.total)} ({100 * done / self.total:.0f} %)" if self.total else ""
        log.info("downloaded %s%s, %s/s", _fmt(done), of, _fmt(rate))


def _open(url: str, start: int, timeout: float):
    headers = {"User-Agent": "adloc-fetch"}
    if start:
        headers["Range"] = f"bytes={start}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _total_size(resp, start: int) -> int | None:
    cr = resp.headers.get("Content-Range")  # bytes a-b/total
    if resp.status == 206 and cr and "/" in cr and not cr.endswith("/*"):
        return int(cr.rsplit("/", 1)[1])
    length = resp.headers.get("Content-Length")
    if length is None:
        return None
    return int(length) + (start if resp.status == 206 else 0)


def _download_once(url: str, part: Path, timeout: float, chunk: int) -> None:
    """Append the rest of ``url`` to ``part`` (Range from its size). Raises on a cut connection."""
    start = part.stat().st_size if part.exists() else 0
    try:
        resp = _open(url, start, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # nothing left past our size: the file is complete
            log.info("server has no bytes past %s: %s is complete", _fmt(start), part.name)
            return
        raise
    with resp:
        if start and resp.status != 206:
            log.info("server ignored the Range request (HTTP %d): downloading from the start", resp.status)
            start = 0
        elif start:
            log.info("resuming %s at %s", part.name, _fmt(start))
        total = _total_size(resp, start)
        progress = _Progress(total, start)
        done = start
        with open(part, "r+b" if start else "wb") as fh:
            fh.seek(start)
            fh.truncate()
            while True:
                buf = resp.read(chunk)
                if not buf:
                    break
                fh.write(buf)
                done += len(buf)
                progress(done)
            fh.flush()
            os.fsync(fh.fileno())
        progress(done, final=True)
        if total is not None and done < total:
            raise http.client.IncompleteRead(b"", total - done)


def download(url: str, target: Path, retries: int = 5, timeout: float = 60.0, chunk: int = 1 << 20) -> None:
    """Download ``url`` to ``target`` through ``target.part``, resuming after cut connections.

    Connection errors before any byte arrives on the first attempt propagate (offline); errors
    mid-transfer are retried ``retries`` times, each resuming where the previous one stopped.
    """
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(retries + 1):
        try:
            _download_once(url, part, timeout, chunk)
            break
        except urllib.error.HTTPError:
            raise
        except (OSError, http.client.HTTPException) as exc:
            got = part.stat().st_size if part.exists() else 0
            if attempt == retries or (attempt == 0 and got == 0 and isinstance(exc, urllib.error.URLError)):
                raise
            log.warning("connection cut after %s (%s: %s); resuming (retry %d of %d)",
                        _fmt(got), type(exc).__name__, exc, attempt + 1, retries)
            time.sleep(min(2.0 ** attempt, 30.0) * 0.1)
    os.replace(part, target)


def verify(archive: Archive, path: Path) -> None:
    """Check the sha256 of ``path``; on a mismatch move it aside and raise one clear line."""
    log.info("checking sha256 of %s", path)
    got = sha256_file(path)
    if got == archive.sha256:
        log.info("sha256 %s: verified", got)
        return
    aside = path.with_name(path.name + ".sha256-mismatch")
    os.replace(path, aside)
    raise FetchError(
        f"sha256 mismatch for {archive.name} archive {path.name} from {archive.url}: expected "
        f"{archive.sha256}, got {got}. The file was moved aside to {aside} (delete it, or check "
        f"the mirror); rerun to download again."
    )


# --------------------------------------------------------------------------------------------
# extraction
# --------------------------------------------------------------------------------------------
def _extract_zip(path: Path, dest: Path) -> None:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            for info in infos:
                parts = Path(info.filename).parts
                kind = (info.external_attr >> 16) & 0o170000
                if info.filename.startswith("/") or ".." in parts or kind not in (0, 0o100000, 0o040000):
                    raise FetchError(f"archive {path} holds an unsafe entry {info.filename!r}; it is not the published archive")
            zf.extractall(dest)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise FetchError(f"cannot extract {path} ({type(exc).__name__}: {exc}); delete it and rerun") from None
    log.info("extracted %d entries", len(infos))


def _extract(path: Path, dest: Path) -> None:
    log.info("extracting %s into %s", path.name, dest)
    if zipfile.is_zipfile(path):
        return _extract_zip(path, dest)
    try:
        with tarfile.open(path) as tar:
            members = tar.getmembers()
            for i, m in enumerate(members, 1):
                _check_member(m, path)
                if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: the stdlib's safe filter too
                    tar.extract(m, dest, filter="data")
                else:  # pragma: no cover - older 3.11 in a conda env
                    tar.extract(m, dest)
                if i % 2000 == 0:
                    log.info("extracted %d of %d entries", i, len(members))
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise FetchError(f"cannot extract {path} ({type(exc).__name__}: {exc}); delete it and rerun") from None
    log.info("extracted %d entries", len(members))


def _check_member(m: tarfile.TarInfo, archive: Path) -> None:
    """Only plain files and folders inside the destination (no links, devices, ``..``)."""
    parts = Path(m.name).parts
    if m.name.startswith("/") or ".." in parts or not (m.isfile() or m.isdir()):
        raise FetchError(f"archive {archive} holds an unsafe entry {m.name!r}; it is not the published archive")


def _content_root(folder: Path) -> Path:
    """The extracted tree's top: descend through a single wrapping folder."""
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir() and not (entries[0] / "train").is_dir():
        return _content_root(entries[0])
    return folder


def _check_classes(tree: Path, classes, archive: Archive) -> None:
    from .mvtec import list_classes

    found = list_classes(tree)
    missing = [c for c in classes if c not in found]
    if missing:
        raise FetchError(
            f"the {archive.name} archive {archive.filename} holds no class folder "
            f"{', '.join(missing)} (it has: {', '.join(found) or 'none'}); fix the config key classes"
        )


def _prepare_root(root: Path, archive: Archive) -> None:
    """``root`` must be absent or empty (Snakemake may have created it for the marker)."""
    if not root.exists():
        return
    if root.is_dir() and not any(root.iterdir()):
        root.rmdir()
        return
    m = read_marker(root)
    what = f"a dataset fetched from {m.get('url')} (sha256 {m.get('sha256')})" if m else "files adloc did not fetch"
    raise FetchError(
        f"dataset.root {root} already holds {what}; adloc does not overwrite it. Use "
        f"dataset.source: folder to read it as it is, or set dataset.root to a new folder for {archive.name}."
    )


def _download_any(archive: Archive, target: Path, offline: bool, retries: int, timeout: float) -> None:
    """Download ``target`` from the archive's URL, then each mirror in turn until one works."""
    if offline:
        raise FetchError(offline_message(archive, target, "offline is set"))
    why = ""
    for url in archive.urls:
        log.info("downloading %s to %s", url, target)
        try:
            download(url, target, retries=retries, timeout=timeout)
            if url != archive.url:
                log.info("downloaded from mirror %s", url)
            return
        except urllib.error.HTTPError as exc:
            why = f"HTTP {exc.code} {exc.reason}"
        except (OSError, http.client.HTTPException) as exc:
            part = target.with_name(target.name + ".part")
            kept = f" ({_fmt(part.stat().st_size)} kept in {part}; a rerun resumes)" if part.exists() else ""
            why = f"no connection ({exc}){kept}"
        log.warning("%s failed: %s%s", url, why, "; trying the next mirror" if url != archive.urls[-1] else "")
    raise FetchError(offline_message(archive, target, why))


def _convert(archive: Archive, tree: Path, tmp: Path) -> Path:
    """The extracted ``tree`` in the MVTec layout (converted into ``tmp`` when it is not)."""
    if archive.layout == "mvtec":
        return tree
    out = tmp / "mvtec_layout"
    if archive.layout == "visa":
        from .visa import convert_visa as convert
    elif archive.layout == "btad":
        from .btad import convert_btad as convert
    elif archive.layout == "mvtec_ad2":
        from .mvtec_ad2 import convert_mvtec_ad2 as convert
    else:
        from .realiad import convert_realiad as convert
    convert(tree, out)
    return out


def fetch_dataset(
    source: str,
    root: str | os.PathLike,
    downloads: str | os.PathLike | None = None,
    classes=(),
    url: str | None = None,
    sha256: str | None = None,
    offline: bool = False,
    retries: int = 5,
    timeout: float = 60.0,
    mirrors=(),
) -> dict:
    """Make ``root`` hold dataset ``source`` (MVTec layout); returns the marker's content."""
    archive = archive_for(source, url, sha256, mirrors)
    root = Path(root).expanduser()
    m = read_marker(root)
    if m and (m.get("sha256") == archive.sha256 or (source == "real_iad" and m.get("source") == source)):
        log.info("%s already fetched and verified at %s (marker %s)", archive.name, root, MARKER)
        return m
    downloads = Path(downloads).expanduser() if downloads else default_downloads(root)
    log.info("%s is licensed %s. Cite: %s (%s)", archive.name, archive.licence, archive.citation, archive.homepage)
    _prepare_root(root, archive)
    if source == "real_iad":
        from .realiad import raw_folder

        target = raw_folder(downloads, archive)  # FetchError (one line) until placed by hand
    else:
        target = downloads / archive.filename
        if not target.is_file():
            _download_any(archive, target, offline, retries, timeout)
        else:
            log.info("found %s: not downloading again", target)
        verify(archive, target)
    tmp = root.with_name(f".{root.name}.extract-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        if source == "real_iad":
            tree = _convert(archive, target, tmp)
        else:
            _extract(target, tmp / "x")
            tree = _convert(archive, _content_root(tmp / "x"), tmp)
        _check_classes(tree, classes, archive)
        marker = {
            "dataset": archive.name,
            "source": source,
            "url": archive.url or archive.manual,
            "archive": str(target),
            "sha256": archive.sha256 or None,
            "licence": archive.licence,
            "homepage": archive.homepage,
        }
        write_json(tree / MARKER, marker)
        root.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tree, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("%s ready at %s; the archive %s may be deleted (the marker keeps it from being fetched again)",
             archive.name, root, target)
    return marker
