"""A full disk or a folder that cannot be written: one ``adloc error:`` line naming the file (and,
for a full disk, the space it needs and the space left), never a partial file (issue 24 §2); and
every JSON adloc writes parses with a strict parser (NaN and inf become null, issue 24 §3)."""

from __future__ import annotations

import errno
import json
import math
import os
import types

import numpy as np
import pytest

from adloc.errors import WriteError
from adloc.io import atomic_path, json_text, save_npz, save_torch, write_json, write_text
from adloc.workflow import run_script


def strict_loads(text: str):
    """json.loads refusing NaN, Infinity and -Infinity (what strict parsers do)."""
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def _fake_smk(tmp_path):
    return types.SimpleNamespace(input=[], output=[], params=None, log=[str(tmp_path / "job.log")],
                                 threads=1, wildcards=None)


def _only_ours(folder):
    return sorted(p.name for p in folder.iterdir() if p.name != "job.log")


def test_dev_full_gives_one_line_with_sizes_and_no_partial_file(tmp_path):
    """A real ENOSPC from the kernel (/dev/full) inside an atomic write."""
    target = tmp_path / "out" / "scores.npz"
    with pytest.raises(WriteError) as info:
        with atomic_path(target, size=3 << 20) as tmp:
            tmp.write_bytes(b"x" * 4096)
            with open("/dev/full", "wb") as fh:
                fh.write(b"y" * 4096)
    msg = str(info.value)
    assert "\n" not in msg
    assert f"cannot write {target}: no space left on device" in msg
    assert "needs at least 3.0 MiB" in msg and " free in " in msg
    assert list(target.parent.iterdir()) == []  # neither target nor temporary


def test_torch_save_on_a_full_disk_is_a_write_error(tmp_path, monkeypatch):
    """torch's writer fails with RuntimeError '[enforce fail at inline_container.cc:...]' (the
    file's close then raises ENOSPC with it as context); both are reported as a full disk."""
    import torch

    real_open = open

    def full_open(file, mode="r", *a, **k):  # the temporary opened for writing is /dev/full
        if "w" in mode and str(file).endswith(".tmp.pt"):
            return real_open("/dev/full", mode, *a, **k)
        return real_open(file, mode, *a, **k)

    monkeypatch.setattr("builtins.open", full_open)
    target = tmp_path / "models" / "m.pt"
    with pytest.raises(WriteError) as info:
        save_torch(target, {"bank": torch.zeros(256, 1024)})  # 1 MiB of float32
    monkeypatch.undo()
    msg = str(info.value)
    assert f"cannot write {target}: no space left on device" in msg
    assert "needs at least 1.0 MiB" in msg
    assert list(target.parent.iterdir()) == []


def test_bare_torch_writer_failure_is_a_write_error(tmp_path, monkeypatch):
    import shutil

    import torch

    def fail(obj, fh):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter "
                           "failed writing file data/0: file write failed")

    monkeypatch.setattr(torch, "save", fail)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=1000))
    target = tmp_path / "m.pt"
    with pytest.raises(WriteError, match=r"no space left on device .*1000 bytes free"):
        save_torch(target, {"x": torch.zeros(10)})
    assert list(tmp_path.iterdir()) == []


def test_write_error_reaches_the_user_as_one_adloc_line(tmp_path, monkeypatch, capsys):
    target = tmp_path / "metrics" / "m.json"

    def no_space(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("pathlib.Path.write_bytes", no_space)
    # run_script sets OMP_NUM_THREADS and torch's threads for a job process: not for pytest's
    # (a later Slurm test's `nproc` would read OMP_NUM_THREADS=1)
    monkeypatch.setattr("adloc.workflow._configure_threads", lambda threads: None)
    with pytest.raises(SystemExit) as info:
        run_script(_fake_smk(tmp_path), lambda smk: write_json(target, {"auroc": 0.5}))
    assert info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"adloc error: cannot write {target}: no space left on device")
    assert "internal error" not in err[0]
    assert list(target.parent.iterdir()) == []


@pytest.mark.parametrize("code, why", [(errno.EROFS, "the file system is read-only"),
                                       (errno.EACCES, "permission denied")])
def test_read_only_or_denied_folder_names_the_folder(tmp_path, monkeypatch, code, why):
    import tempfile

    def refuse(*a, dir=None, **k):
        raise OSError(code, os.strerror(code), os.path.join(dir, ".x.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    target = tmp_path / "tables" / "metrics.csv"
    with pytest.raises(WriteError) as info:
        write_text(target, "a,b\n")
    assert str(info.value).startswith(f"cannot write {target}: {why} ({target.parent})")
    assert list(target.parent.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a 0o500 folder regardless")
def test_really_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(WriteError, match=r"permission denied"):
            save_npz(folder / "s.npz", a=np.zeros(3))
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o700)


def test_permission_error_on_an_input_is_not_a_write_error(tmp_path):
    """EACCES naming a file elsewhere (an input read inside the block) keeps its own traceback."""
    with pytest.raises(PermissionError):
        with atomic_path(tmp_path / "out" / "x.txt"):
            raise PermissionError(errno.EACCES, "Permission denied", "/elsewhere/input.png")


def test_other_errors_pass_through_unchanged(tmp_path):
    with pytest.raises(ValueError, match="not a write problem"):
        with atomic_path(tmp_path / "x.txt"):
            raise ValueError("not a write problem")


NASTY = {
    "auroc_ci": {"low": float("nan"), "high": np.float32("nan"), "estimate": 0.5},
    "scores": np.array([1.0, np.inf, -np.inf]),
    "nested": [{"x": (float("inf"), 2)}, np.float64("nan")],
    "ok": 1.25,
}


def test_json_writer_emits_null_for_nan_and_inf(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, NASTY)
    got = strict_loads(target.read_text())
    assert got["auroc_ci"] == {"low": None, "high": None, "estimate": 0.5}
    assert got["scores"] == [1.0, None, None]
    assert got["nested"] == [{"x": [None, 2]}, None]
    assert got["ok"] == 1.25
    for compact in (False, True):
        strict_loads(json_text(NASTY, compact=compact))
    strict_loads(json_text(NASTY, indent=None))
    assert math.isnan(json.loads(json.dumps(float("nan"))))  # what the default json module does


def test_no_json_writer_bypasses_the_strict_helper():
    """Every json.dump/json.dumps in src/ and scripts/ goes through adloc.io.json_text (the data
    package's synthetic generator writes only ints and strings: checked separately)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    offenders = []
    for f in [*(root / "src").rglob("*.py"), *(root / "scripts").rglob("*.py")]:
        text = f.read_text()
        for n, line in enumerate(text.splitlines(), 1):
            if ("json.dumps(" in line or "json.dump(" in line) and "allow_nan=False" not in line:
                offenders.append(f"{f.relative_to(root)}:{n}")
    allowed = {"src/adloc/data/synthetic/writer.py"}  # ints and strings only (issue 24: data owner)
    assert [o for o in offenders if o.split(":")[0] not in allowed] == []
