"""Dataset fetching against a local HTTP server (127.0.0.1): never the internet.

Small archives in the real MVTec AD (class folders at the top of a .tar.xz) and VisA
(split_csv/1cls.csv, Data/Images, Data/Masks in a .tar) layouts, with their sha256, replace
the official URL and hash through the ``url`` / ``sha256`` arguments (config keys
dataset.url / dataset.sha256).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from archive_utils import FileServer, mvtec_archive, sha256_bytes, visa_archive  # noqa: E402

from adloc.data.fetch import ARCHIVES, MARKER, FetchError, fetch_dataset  # noqa: E402
from adloc.data.mvtec import load_mask, scan_class  # noqa: E402
from adloc.data.visa import VISA_CLASSES, convert_visa, read_split_csv  # noqa: E402
from adloc.errors import DatasetError  # noqa: E402

CLASSES = ["synth_nut", "synth_carpet"]
MVTEC_PATH = "/" + ARCHIVES["mvtec_ad"].filename
VISA_PATH = "/" + ARCHIVES["visa"].filename


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    for k in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(k, raising=False)


@pytest.fixture(scope="module")
def mvtec_bytes(tmp_path_factory):
    return mvtec_archive(tmp_path_factory.mktemp("mvtec_build"), CLASSES)


@pytest.fixture(scope="module")
def visa_bytes(tmp_path_factory):
    return visa_archive(tmp_path_factory.mktemp("visa_build"), ["candle", "pcb1"])


def _fetch(srv, tmp_path, data, **kw):
    return fetch_dataset(
        "mvtec_ad",
        tmp_path / "data" / "mvtec",
        classes=CLASSES,
        url=srv.url(MVTEC_PATH),
        sha256=kw.pop("sha256", sha256_bytes(data)),
        timeout=10,
        **kw,
    )


def test_official_archives_are_listed_with_their_published_sha256():
    assert ARCHIVES["mvtec_ad"].filename == "mvtec_anomaly_detection.tar.xz"
    assert ARCHIVES["visa"].filename == "VisA_20220922.tar"
    for a in ARCHIVES.values():  # MPDD and Real-IAD publish no archive: a page to download from
        assert (a.url.startswith("https://") and len(a.sha256) == 64) or (not a.url and a.manual.startswith("https://"))


def test_fresh_fetch_then_already_present_downloads_nothing(tmp_path, mvtec_bytes, caplog):
    caplog.set_level("INFO")
    with FileServer({MVTEC_PATH: mvtec_bytes}) as srv:
        marker = _fetch(srv, tmp_path, mvtec_bytes)
        assert srv.requests == [(MVTEC_PATH, None)]
        root = tmp_path / "data" / "mvtec"
        for cls in CLASSES:
            idx = scan_class(root, cls)
            assert idx.train and idx.has_masks and idx.defects
        saved = json.loads((root / MARKER).read_text())
        assert saved["sha256"] == marker["sha256"] == sha256_bytes(mvtec_bytes)
        assert (tmp_path / "data" / "downloads" / "mvtec_anomaly_detection.tar.xz").is_file()
        assert not list((tmp_path / "data").glob(".mvtec.extract-*"))  # temp folder gone
        text = caplog.text
        assert "CC BY-NC-SA 4.0" in text and "downloaded" in text and "100 %" in text
        # already fetched: no request, even with the archive deleted
        (tmp_path / "data" / "downloads" / "mvtec_anomaly_detection.tar.xz").unlink()
        mtime = (root / MARKER).stat().st_mtime_ns
        _fetch(srv, tmp_path, mvtec_bytes)
        assert len(srv.requests) == 1
        assert (root / MARKER).stat().st_mtime_ns == mtime


def test_cut_connection_resumes_with_range(tmp_path, mvtec_bytes, caplog):
    caplog.set_level("INFO")
    cut = len(mvtec_bytes) // 3
    with FileServer({MVTEC_PATH: mvtec_bytes}, cut_at=cut) as srv:
        _fetch(srv, tmp_path, mvtec_bytes)
    assert srv.requests == [(MVTEC_PATH, None), (MVTEC_PATH, f"bytes={cut}-")]
    assert "connection cut after" in caplog.text and "resuming" in caplog.text
    assert scan_class(tmp_path / "data" / "mvtec", "synth_nut").train


def test_cut_connection_keeps_partial_and_next_run_resumes(tmp_path, mvtec_bytes):
    cut = len(mvtec_bytes) // 2
    with FileServer({MVTEC_PATH: mvtec_bytes}, cut_at=cut) as srv:
        with pytest.raises(FetchError) as err:
            _fetch(srv, tmp_path, mvtec_bytes, retries=0)
        part = tmp_path / "data" / "downloads" / "mvtec_anomaly_detection.tar.xz.part"
        assert part.stat().st_size == cut
        assert str(part) in str(err.value) and "resumes" in str(err.value)
        assert not (tmp_path / "data" / "mvtec").exists()
        _fetch(srv, tmp_path, mvtec_bytes, retries=0)
    assert srv.requests[-1] == (MVTEC_PATH, f"bytes={cut}-")
    assert not part.exists()
    assert (tmp_path / "data" / "mvtec" / MARKER).is_file()


def test_hash_mismatch_moves_the_file_aside_and_names_both_hashes(tmp_path, mvtec_bytes):
    wrong = "0" * 64
    with FileServer({MVTEC_PATH: mvtec_bytes}) as srv:
        with pytest.raises(FetchError) as err:
            _fetch(srv, tmp_path, mvtec_bytes, sha256=wrong)
    msg = str(err.value)
    assert "\n" not in msg
    assert wrong in msg and sha256_bytes(mvtec_bytes) in msg
    aside = tmp_path / "data" / "downloads" / "mvtec_anomaly_detection.tar.xz.sha256-mismatch"
    assert aside.read_bytes() == mvtec_bytes and str(aside) in msg
    assert not (tmp_path / "data" / "downloads" / "mvtec_anomaly_detection.tar.xz").exists()
    assert not (tmp_path / "data" / "mvtec").exists()


def test_offline_names_url_file_and_folder_without_a_request(tmp_path, mvtec_bytes):
    with FileServer({MVTEC_PATH: mvtec_bytes}) as srv:
        with pytest.raises(FetchError) as err:
            _fetch(srv, tmp_path, mvtec_bytes, offline=True)
        assert srv.requests == []
        msg = str(err.value)
        target = tmp_path / "data" / "downloads" / "mvtec_anomaly_detection.tar.xz"
        assert srv.url(MVTEC_PATH) in msg and str(target) in msg and "\n" not in msg
        # the file placed by hand is verified and extracted, still offline
        target.parent.mkdir(parents=True)
        target.write_bytes(mvtec_bytes)
        _fetch(srv, tmp_path, mvtec_bytes, offline=True)
        assert srv.requests == []
    assert (tmp_path / "data" / "mvtec" / MARKER).is_file()


def test_no_connection_gives_the_offline_line(tmp_path, mvtec_bytes):
    with FileServer({}) as srv:
        url = srv.url(MVTEC_PATH)
    # the server is closed now: connection refused
    with pytest.raises(FetchError) as err:
        fetch_dataset("mvtec_ad", tmp_path / "mvtec", url=url, sha256=sha256_bytes(mvtec_bytes), timeout=5)
    assert "no connection" in str(err.value) and url in str(err.value)


def test_existing_foreign_root_is_never_overwritten(tmp_path, mvtec_bytes):
    root = tmp_path / "data" / "mvtec"
    (root / "mine").mkdir(parents=True)
    with FileServer({MVTEC_PATH: mvtec_bytes}) as srv:
        with pytest.raises(FetchError, match="does not overwrite"):
            _fetch(srv, tmp_path, mvtec_bytes)
        assert srv.requests == []
    assert (root / "mine").is_dir()


def test_missing_class_in_archive_is_named(tmp_path, mvtec_bytes):
    with FileServer({MVTEC_PATH: mvtec_bytes}) as srv:
        with pytest.raises(FetchError, match="no class folder hazelnut"):
            fetch_dataset("mvtec_ad", tmp_path / "mvtec", classes=["hazelnut"], url=srv.url(MVTEC_PATH),
                          sha256=sha256_bytes(mvtec_bytes), timeout=10)
    assert not (tmp_path / "mvtec").exists()


# --------------------------------------------------------------------------------------------
# VisA


def test_visa_fetch_converts_to_mvtec_layout(tmp_path, visa_bytes):
    root = tmp_path / "visa"
    with FileServer({VISA_PATH: visa_bytes}) as srv:
        fetch_dataset("visa", root, classes=["candle", "pcb1"], url=srv.url(VISA_PATH),
                      sha256=sha256_bytes(visa_bytes), timeout=10)
    for cls in ("candle", "pcb1"):
        idx = scan_class(root, cls)
        assert len(idx.train) == 10  # TINY_COUNTS: 10 train normals, 4 test normals, 8 anomalies
        assert sum(s.label == 0 for s in idx.test) == 4 and sum(s.label == 1 for s in idx.test) == 8
        assert idx.has_masks and idx.defects == ["bad"]
        for s in idx.test:
            if s.label:
                assert s.path.endswith(".JPG") and s.mask.endswith("_mask.png")
                raw = Image.open(root / s.mask)
                assert raw.format == "PNG"
                assert set(np.unique(np.asarray(raw))) <= {0, 255}
                assert load_mask(root, s.mask).any()


def test_visa_reader_follows_the_split_csv(tmp_path):
    from archive_utils import visa_tree

    raw = visa_tree(tmp_path / "raw", ["candle"])
    rows = read_split_csv(raw)
    counts = convert_visa(raw, tmp_path / "out")
    n = {k: sum(r["split"] == k.split("_")[0] and (r["label"] == "normal") == k.endswith("good") for r in rows)
         for k in ("train_good", "test_good", "test_bad")}
    assert counts == {"candle": n}
    assert n["train_good"] > 0 and n["test_good"] > 0 and n["test_bad"] > 0
    idx = scan_class(tmp_path / "out", "candle")
    assert len(idx.train) == n["train_good"]
    assert sum(s.label == 0 for s in idx.test) == n["test_good"]
    assert sum(s.label == 1 for s in idx.test) == n["test_bad"]
    assert "candle" in VISA_CLASSES and len(VISA_CLASSES) == 12


def test_visa_reader_rejects_a_bad_split_file(tmp_path):
    from archive_utils import visa_tree

    raw = visa_tree(tmp_path / "raw", ["candle"])
    csv_path = raw / "split_csv" / "1cls.csv"
    lines = csv_path.read_text().splitlines()
    lines.append("candle,train,anomaly,candle/Data/Images/Anomaly/000.JPG,candle/Data/Masks/Anomaly/000.png")
    csv_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match="anomalous image in the train split"):
        convert_visa(raw, tmp_path / "out")
