"""Shared fixtures for the reliability tests: tiny real-workflow runs in temporary folders.

Budget: the machine is small and shared, so every workflow run here uses one class, 64x64
images and ``--cores 2``. One uninterrupted reference run (session fixture ``reference_run``)
is shared by the no-network, determinism, crash-safety and corrupted-results tests; it runs
with a network guard (a ``sitecustomize`` on PYTHONPATH) active in every Python process.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from workflow_utils import make_dataset, snakemake, write_config  # noqa: E402

CLASS = "synth_nut"

#: the reference run's config (on top of tests/workflow_utils.TINY): one class, both methods
REFERENCE = {"classes": [CLASS]}

#: Written as sitecustomize.py into a folder put first on PYTHONPATH: every Python process of
#: the run (snakemake and each job script) loads it. Any attempt to reach another host (connect,
#: connect_ex or sendto on a non-Unix socket to a non-loopback address; a DNS lookup of a
#: non-local name) is appended to $ADLOC_NET_GUARD_LOG and refused with OSError. Unix-domain
#: sockets and loopback are allowed (local IPC is not the network). Each process that loads the
#: guard appends a line to $ADLOC_NET_GUARD_LOG.active, so the test can check the job scripts
#: really ran with it.
NETGUARD_SITECUSTOMIZE = r'''
import contextlib
import os
import socket
import sys

_LOG = os.environ.get("ADLOC_NET_GUARD_LOG")

if _LOG:
    _LOCAL = {None, "", "localhost", "127.0.0.1", "::1", "0.0.0.0", "::"}

    def _note(path, line):
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    _note(_LOG + ".active", f"{os.getpid()}\t{' '.join(sys.argv)[:300]}")

    def _refuse(what, target):
        _note(_LOG, f"{os.getpid()}\t{what}\t{target!r}\t{' '.join(sys.argv)[:300]}")
        raise OSError(f"network access refused by the adloc test guard: {what} {target!r}")

    def _local_host(host):
        if isinstance(host, bytes):
            host = host.decode()
        return host in _LOCAL or host == socket.gethostname() or (
            isinstance(host, str) and host.startswith("127.")
        )

    def _local(sock, address):
        if sock.family == getattr(socket, "AF_UNIX", object()):
            return True
        return _local_host(address[0] if isinstance(address, tuple) and address else address)

    _orig = {
        n: getattr(socket, n)
        for n in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr")
    }
    _connect, _connect_ex, _sendto = (
        socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto
    )

    def connect(self, address):
        if not _local(self, address):
            _refuse("connect", address)
        return _connect(self, address)

    def connect_ex(self, address):
        if not _local(self, address):
            _refuse("connect_ex", address)
        return _connect_ex(self, address)

    def sendto(self, data, *args):
        if not _local(self, args[-1]):
            _refuse("sendto", args[-1])
        return _sendto(self, data, *args)

    def _lookup(name):
        def guarded(host, *args, **kwargs):
            if not _local_host(host):
                _refuse(name, host)
            return _orig[name](host, *args, **kwargs)
        return guarded

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.socket.sendto = sendto
    for _n in _orig:
        setattr(socket, _n, _lookup(_n))
'''


def tmp_leftovers(wd: Path) -> list[str]:
    """Temporary files of the atomic writers (``.NAME.XXXX.tmp.SUFFIX``) left under results/."""
    r = wd / "results" / "tiny"
    return sorted(str(p.relative_to(wd)) for p in r.rglob("*.tmp*")) if r.is_dir() else []


def adloc_lines(text: str) -> list[str]:
    """The one-line adloc error reports in a snakemake stderr (job errors and config errors)."""
    heads = ("adloc error:", "adloc: ", "adloc internal error")
    return [ln for ln in text.splitlines() if ln.startswith(heads)]


def netguard_env(folder: Path) -> dict:
    """Environment that loads the network guard in every Python process started with it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(NETGUARD_SITECUSTOMIZE)
    pp = os.environ.get("PYTHONPATH")
    return {
        "PYTHONPATH": str(folder) + (os.pathsep + pp if pp else ""),
        "ADLOC_NET_GUARD_LOG": str(folder / "network.log"),
    }


@pytest.fixture(scope="session")
def dataset_cache(tmp_path_factory) -> Path:
    """One generated tiny dataset (a root holding ``synth_nut/``), copied by the tests."""
    root = tmp_path_factory.mktemp("dataset") / "data"
    make_dataset(root, [CLASS])
    return root


def new_workdir(tmp_path_factory, name: str, data_src: Path | None, **overrides) -> Path:
    """A fresh folder with a copy of ``data_src`` as data/ and the reference config + overrides."""
    wd = tmp_path_factory.mktemp(name)
    if data_src is not None:
        shutil.copytree(data_src, wd / "data")
    write_config(wd, **{**REFERENCE, **overrides})
    return wd


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory, dataset_cache):
    """An uninterrupted tiny run with the network guard on: (workdir, guard folder, seconds)."""
    wd = new_workdir(tmp_path_factory, "reference", dataset_cache)
    guard = tmp_path_factory.mktemp("netguard")
    env = netguard_env(guard)
    # empty weight caches: the default backbone's weights come from a pip package
    env["TORCH_HOME"] = str(guard / "torch_home")
    env["HF_HOME"] = str(guard / "hf_home")
    t0 = time.perf_counter()
    snakemake(wd, "--cores", "2", env=env)
    return wd, guard, time.perf_counter() - t0


def snakemake_cmd(wd: Path, *args: str) -> list[str]:
    """The command line :func:`workflow_utils.snakemake` runs."""
    from workflow_utils import ROOT, SNAKEMAKE

    return [
        SNAKEMAKE,
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(wd),
        "--configfile",
        str(wd / "config.yaml"),
        *args,
    ]


#: the one repeat of the reference config (split seed 42, model seed 0)
REPEAT = "s42-m0"


def _fit_started(wd: Path) -> bool:
    r = wd / "results" / "tiny" / REPEAT
    models = r / "models"
    if models.is_dir() and any(p.is_file() for p in models.rglob("*")):
        return True
    logs = r / "logs" / "fit"
    return logs.is_dir() and any(p.is_file() for p in logs.rglob("*.log"))


@pytest.fixture(scope="session")
def resumed_run(tmp_path_factory, dataset_cache):
    """The reference config in a new folder: SIGKILL the whole process group during a fit, then
    resume with ``--rerun-incomplete``. Returns a dict with the workdir and what was seen."""
    import signal
    import subprocess

    wd = new_workdir(tmp_path_factory, "resumed", dataset_cache)
    out = open(wd / "killed_run.txt", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        snakemake_cmd(wd, "--cores", "2"), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + 600
    try:
        while not _fit_started(wd):
            if proc.poll() is not None:
                raise AssertionError(
                    f"snakemake ended ({proc.returncode}) before any fit started:\n"
                    + (wd / "killed_run.txt").read_text()[-4000:]
                )
            if time.monotonic() > deadline:
                raise AssertionError("no fit started within 600 s")
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # snakemake and every job it started
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        out.close()
    time.sleep(0.5)  # let the kernel reap the group
    models = wd / "results" / "tiny" / REPEAT / "models"
    state = {
        "models": sorted(str(p.relative_to(wd)) for p in models.rglob("*.pt")) if models.is_dir() else [],
        "group_alive": _leftover_processes(proc.pid, wd),
        "returncode": proc.returncode,
    }
    for p in state["models"]:  # whatever exists after the kill must be complete
        from adloc.io import load_torch

        load_torch(wd / p, what="model file")
    # a killed snakemake leaves its lock: the next run refuses and says to --unlock
    state["locked"] = snakemake(wd, "--cores", "2", "--rerun-incomplete", check=False)
    snakemake(wd, "--unlock", "--cores", "1")
    t0 = time.perf_counter()
    rerun = snakemake(wd, "--cores", "2", "--rerun-incomplete")
    state.update(workdir=wd, rerun=rerun, rerun_seconds=time.perf_counter() - t0)
    return state


def _leftover_processes(pgid: int, wd: Path) -> list[str]:
    """Live processes of group ``pgid`` or running inside ``wd`` (a job that escaped the kill)."""
    alive = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            in_wd = Path(os.readlink(d / "cwd")).is_relative_to(wd.resolve())
            if fields[0] != "Z" and (int(fields[2]) == pgid or in_wd):
                alive.append((d / "cmdline").read_text().replace("\0", " ")[:200])
        except (OSError, IndexError, ValueError):
            continue
    return alive
