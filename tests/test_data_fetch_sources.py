"""MVTec AD 2, BTAD, MPDD and Real-IAD: small trees in their real layouts, served from
127.0.0.1 (laid on disk for Real-IAD), converted to the MVTec layout; mirrors, a bad checksum and
a cut download resumed. Never the internet."""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from archive_utils import FileServer, tar_bytes, mvtec_tree, sha256_bytes  # noqa: E402

from adloc.data.fetch import ARCHIVES, MARKER, FetchError, fetch_dataset  # noqa: E402
from adloc.data.mvtec import list_classes, load_mask, scan_class  # noqa: E402
from adloc.data.realiad import IMAGES, JSONS  # noqa: E402

COUNTS = {"train_good": 4, "test_good": 2, "anomalies": 3}


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    for k in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(k, raising=False)


def _src(tmp: Path, classes) -> Path:
    return mvtec_tree(tmp / "src", classes, counts=COUNTS, size=32)


def _bad(src: Path, cls: str):
    """(image, mask) pairs of the synthetic class's defects."""
    for d in sorted(p for p in (src / cls / "test").iterdir() if p.name != "good"):
        for img in sorted(d.glob("*.png")):
            yield img, src / cls / "ground_truth" / d.name / f"{img.stem}_mask.png"


def btad_zip(tmp: Path) -> bytes:
    """btad.zip: BTech_Dataset_transformed/<01,02>/{train/ok,test/ok,test/ko,ground_truth/ko}, BMP
    images (01) or PNG (02), masks named like their image (no _mask suffix)."""
    src = _src(tmp, ["p01", "p02"])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for prod, ext in (("01", ".bmp"), ("02", ".png")):
            top = f"BTech_Dataset_transformed/{prod}"
            s = src / f"p{prod}"
            for split, sub in (("train", "train/good"), ("test", "test/good")):
                for i, p in enumerate(sorted((s / sub).glob("*.png"))):
                    zf.writestr(f"{top}/{split}/ok/{i:03d}{ext}", _enc(p, ext))
            for i, (img, mask) in enumerate(_bad(src, f"p{prod}")):
                zf.writestr(f"{top}/test/ko/{i:04d}{ext}", _enc(img, ext))
                zf.writestr(f"{top}/ground_truth/ko/{i:04d}.png", _enc(mask, ".png"))
    return buf.getvalue()


def _enc(p: Path, ext: str) -> bytes:
    b = io.BytesIO()
    Image.open(p).save(b, format="BMP" if ext == ".bmp" else "PNG")
    return b.getvalue()


def mvtec_ad2_tar(tmp: Path) -> bytes:
    """mvtec_ad_2.tar.gz: mvtec_ad_2/<scenario>/{train/good, validation/good, test_public/{good,bad,
    ground_truth/bad}, test_private/, test_private_mixed/}."""
    src = _src(tmp, ["can", "vial"])
    out = tmp / "ad2" / "mvtec_ad_2"
    for sc in ("can", "vial"):
        good = sorted((src / sc / "train" / "good").glob("*.png"))
        for sub, imgs in (("train/good", good[:3]), ("validation/good", good[3:]),
                          ("test_public/good", sorted((src / sc / "test" / "good").glob("*.png")))):
            (out / sc / sub).mkdir(parents=True, exist_ok=True)
            for p in imgs:
                (out / sc / sub / p.name).write_bytes(p.read_bytes())
        for d in ("test_public/bad", "test_public/ground_truth/bad", "test_private", "test_private_mixed"):
            (out / sc / d).mkdir(parents=True, exist_ok=True)
        for i, (img, mask) in enumerate(_bad(src, sc)):
            (out / sc / "test_public" / "bad" / f"{i:03d}_regular.png").write_bytes(img.read_bytes())
            (out / sc / "test_public" / "ground_truth" / "bad" / f"{i:03d}_regular_mask.png").write_bytes(mask.read_bytes())
            (out / sc / "test_private" / f"{i:03d}_regular.png").write_bytes(img.read_bytes())
            (out / sc / "test_private_mixed" / f"{i:03d}_mixed.png").write_bytes(img.read_bytes())
    return tar_bytes(tmp / "ad2", "w:gz")


def test_new_sources_cite_anomalib_values():
    assert ARCHIVES["btad"].filename == "btad.zip" and ARCHIVES["mvtec_ad2"].filename == "mvtec_ad_2.tar.gz"
    for s in ("btad", "mvtec_ad2"):
        assert ARCHIVES[s].url.startswith("https://") and len(ARCHIVES[s].sha256) == 64
    assert ARCHIVES["mpdd"].url == "" and ARCHIVES["mpdd"].sha256 == ""  # none published


def test_btad_bad_checksum_then_mirror_fallback_and_conversion(tmp_path, caplog):
    caplog.set_level("INFO")
    data = btad_zip(tmp_path / "b")
    root = tmp_path / "data" / "btad"
    with FileServer({"/ok/btad.zip": data}) as srv:
        dead, good = srv.url("/gone/btad.zip"), srv.url("/ok/btad.zip")
        with pytest.raises(FetchError, match="sha256 mismatch"):
            fetch_dataset("btad", root, url=good, sha256="0" * 64, timeout=10)
        aside = tmp_path / "data" / "downloads" / "btad.zip.sha256-mismatch"
        assert aside.read_bytes() == data and not root.exists()  # nothing deleted, nothing half-made
        fetch_dataset("btad", root, classes=["01", "02"], url=dead, mirrors=[good], sha256=sha256_bytes(data), timeout=10)
        assert [p for p, _ in srv.requests][-2:] == ["/gone/btad.zip", "/ok/btad.zip"]
    assert "trying the next mirror" in caplog.text and "CC BY-NC-SA 4.0" in caplog.text
    assert list_classes(root) == ["01", "02"]
    for prod in ("01", "02"):
        idx = scan_class(root, prod)
        assert len(idx.train) == 4 and sum(s.label == 1 for s in idx.test) == 3 and idx.defects == ["ko"]
        assert all(s.path.endswith(".png") for s in idx.train + idx.test)
        for s in idx.test:
            if s.label:
                assert load_mask(root, s.mask).any()
    # BMP re-encoded losslessly: pixels equal the source
    raw = zipfile.ZipFile(io.BytesIO(data)).read("BTech_Dataset_transformed/01/train/ok/000.bmp")
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(raw))), np.asarray(Image.open(root / "01/train/good/000.png")))


def test_offline_message_lists_every_mirror(tmp_path):
    with pytest.raises(FetchError) as err:
        fetch_dataset("btad", tmp_path / "btad", url="http://127.0.0.1:9/a/btad.zip",
                      mirrors=["http://127.0.0.1:9/b/btad.zip"], offline=True)
    msg = str(err.value)
    assert "/a/btad.zip" in msg and "/b/btad.zip" in msg and "\n" not in msg


def test_mvtec_ad2_cut_download_resumes_private_sets_never_labelled(tmp_path):
    data = mvtec_ad2_tar(tmp_path / "b")
    root = tmp_path / "data" / "ad2"
    cut = len(data) // 2
    with FileServer({"/mvtec_ad_2.tar.gz": data}, cut_at=cut) as srv:
        fetch_dataset("mvtec_ad2", root, classes=["can", "vial"], url=srv.url("/mvtec_ad_2.tar.gz"),
                      sha256=sha256_bytes(data), timeout=10)
    assert srv.requests[-1] == ("/mvtec_ad_2.tar.gz", f"bytes={cut}-")
    assert list_classes(root) == ["can", "vial"]  # _unlabelled is no class
    marker = json.loads((root / MARKER).read_text())
    assert marker["licence"].startswith("CC BY-NC-SA 4.0")
    for sc in ("can", "vial"):
        idx = scan_class(root, sc)
        assert len(idx.train) == 3 and len(idx.test) == 2 + 3
        assert not any("private" in s.path for s in idx.test)
        assert len(list((root / sc / "validation" / "good").glob("*.png"))) == 1
        assert len(list((root / "_unlabelled" / sc / "test_private").glob("*.png"))) == 3
        assert len(list((root / "_unlabelled" / sc / "test_private_mixed").glob("*.png"))) == 3


def test_mpdd_needs_url_and_checksum_then_reads_mvtec_layout(tmp_path):
    with pytest.raises(FetchError, match="no published archive or checksum.*dataset.sha256"):
        fetch_dataset("mpdd", tmp_path / "mpdd", url="http://127.0.0.1:9/mpdd.tar")
    data = tar_bytes(mvtec_tree(tmp_path / "src", ["tubes"], counts=COUNTS, size=32), "w")
    with FileServer({"/mpdd.tar": data}) as srv:
        fetch_dataset("mpdd", tmp_path / "mpdd", classes=["tubes"], url=srv.url("/mpdd.tar"),
                      sha256=sha256_bytes(data), timeout=10)
    assert scan_class(tmp_path / "mpdd", "tubes").has_masks


def _realiad_raw(tmp: Path) -> Path:
    src = _src(tmp, ["audiojack"])
    raw = tmp / "downloads" / "Real-IAD"
    cdir = raw / IMAGES / "audiojack"
    rows = {"train": [], "test": []}
    views = ("C1", "C2")
    goods = sorted((src / "audiojack" / "train" / "good").glob("*.png"))
    for n, p in enumerate(goods):
        split = "train" if n < 3 else "test"
        for v in views:
            rel = f"OK/S{n:04d}/audiojack_{n:04d}_OK_{v}_0.jpg"
            (cdir / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.open(p).convert("RGB").save(cdir / rel, format="JPEG")
            rows[split].append({"image_path": rel, "mask_path": None, "anomaly_class": "OK", "category": "audiojack"})
    for n, (img, mask) in enumerate(_bad(src, "audiojack"), 100):
        for v in views:
            rel = f"NG/AK/S{n:04d}/audiojack_{n:04d}_NG_{v}_0"
            (cdir / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.open(img).convert("RGB").save(cdir / f"{rel}.jpg", format="JPEG")
            m = (np.asarray(Image.open(mask)) > 0).astype(np.uint8)  # Real-IAD masks: small values
            Image.fromarray(m, mode="L").save(cdir / f"{rel}_mask.png")
            rows["test"].append({"image_path": f"{rel}.jpg", "mask_path": f"{rel}_mask.png", "anomaly_class": "AK"})
    (raw / JSONS).mkdir(parents=True)
    (raw / JSONS / "audiojack.json").write_text(json.dumps({"meta": {}, **rows}))
    return raw


def test_real_iad_manual_download_named_then_converted(tmp_path):
    root, downloads = tmp_path / "realiad", tmp_path / "downloads"
    with pytest.raises(FetchError) as err:
        fetch_dataset("real_iad", root, downloads=downloads)
    msg = str(err.value)
    assert "huggingface.co/datasets/REAL-IAD/Real-IAD" in msg and str(downloads / "Real-IAD") in msg and "\n" not in msg
    _realiad_raw(tmp_path)
    fetch_dataset("real_iad", root, downloads=downloads, classes=["audiojack"])
    idx = scan_class(root, "audiojack")
    assert len(idx.train) == 3 * 2 and sum(s.label == 0 for s in idx.test) == 1 * 2
    assert sum(s.label == 1 for s in idx.test) == 3 * 2 and idx.defects == ["AK"]
    assert all(load_mask(root, s.mask).any() for s in idx.test if s.label)
    assert (downloads / "Real-IAD" / JSONS / "audiojack.json").is_file()  # raw download untouched
    fetch_dataset("real_iad", root, downloads=downloads)  # marker: nothing converted again
