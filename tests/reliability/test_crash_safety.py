"""Crash safety: SIGKILL the whole workflow during a fit, resume with --rerun-incomplete, and get
the same bytes as an uninterrupted run; atomic writes never leave partial or temporary files."""

from __future__ import annotations

import pytest

from adloc.io import atomic_path, load_torch, write_json, write_text

from .conftest import tmp_leftovers


@pytest.mark.workflow
@pytest.mark.slow
def test_kill_during_fit_then_rerun_incomplete_matches_uninterrupted_run(reference_run, resumed_run):
    ref_wd = reference_run[0]
    wd = resumed_run["workdir"]
    assert resumed_run["returncode"] == -9  # really killed, not finished
    assert resumed_run["group_alive"] == [], resumed_run["group_alive"]  # no orphan job left
    locked = resumed_run["locked"]
    assert locked.returncode != 0 and "--unlock" in locked.stderr  # what docs/troubleshooting.md says
    # resumed, not restarted: the image cache and features made before the kill were kept
    log = resumed_run["rerun"].stdout + resumed_run["rerun"].stderr
    for rule in ("splits", "preprocess_images", "extract_features"):
        assert f"rule {rule}:" not in log, log[-3000:]
    assert "rule fit_" in log
    got = (wd / "results" / "tiny" / "tables" / "metrics.csv").read_bytes()
    want = (ref_wd / "results" / "tiny" / "tables" / "metrics.csv").read_bytes()
    assert got == want
    assert tmp_leftovers(wd) == []
    assert tmp_leftovers(ref_wd) == []
    for p in (wd / "results" / "tiny" / "models").rglob("*.pt"):
        load_torch(p, what="model file")


def test_failed_write_leaves_neither_target_nor_temporary(tmp_path):
    target = tmp_path / "out" / "m.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("{half")
            raise RuntimeError("killed mid-write")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_temporaries_left_by_a_killed_writer_are_removed_on_the_next_write(tmp_path):
    target = tmp_path / "metrics.json"
    # what SIGKILL during a write leaves behind: the writer's temporary, never the target
    stale = [tmp_path / ".metrics.json.ab12cd_x.tmp.json", tmp_path / ".metrics.json.k9_zzq2w.tmp"]
    for s in stale:
        s.write_text("{half")
    others = [  # other targets' temporaries (one whose name starts with ours): kept
        tmp_path / ".scores.npz.ab12cd_x.tmp.npz",
        tmp_path / ".metrics.json.bak.ab12cd_x.tmp.bak",
    ]
    for o in others:
        o.write_text("x")
    write_json(target, {"a": 1})
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert not any(s.exists() for s in stale)
    assert all(o.exists() for o in others)
    write_text(tmp_path / "[odd] name.txt", "ok")  # glob metacharacters in a name are escaped
    assert (tmp_path / "[odd] name.txt").read_text() == "ok"
