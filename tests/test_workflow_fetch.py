"""The workflow with dataset.source: visa and the newer sources against a local HTTP server
(never the internet).

One small run: rule fetch_dataset downloads the VisA-layout archive once, checks its sha256,
converts it to the MVTec layout, and every rule after it reads the two classes like MVTec AD;
a second invocation plans nothing (no second download).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from archive_utils import FileServer, sha256_bytes, visa_archive  # noqa: E402
from workflow_utils import planned_jobs, snakemake, write_config  # noqa: E402

from adloc.data.fetch import ARCHIVES, MARKER  # noqa: E402

pytestmark = [pytest.mark.workflow, pytest.mark.slow]
VISA_PATH = "/" + ARCHIVES["visa"].filename
NO_PROXY = {k: "" for k in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")}


def test_visa_fetched_once_and_run_end_to_end(tmp_path):
    classes = ["candle", "pcb1"]
    data = visa_archive(tmp_path / "build", classes, counts={"train_good": 8, "test_good": 3, "anomalies": 6})
    wd = tmp_path / "wd"
    wd.mkdir()
    with FileServer({VISA_PATH: data}) as srv:
        write_config(
            wd,
            classes=classes,
            methods=["patchcore"],
            dataset={"root": "data/visa", "generate": False, "source": "visa",
                     "url": srv.url(VISA_PATH), "sha256": sha256_bytes(data)},
        )
        jobs = planned_jobs(wd)
        assert [r for r, _ in jobs].count("fetch_dataset") == 1
        proc = snakemake(wd, "--cores", "2", env=NO_PROXY)
        assert srv.requests == [(VISA_PATH, None)]
        assert "Licence: CC BY-NC-SA 4.0" in proc.stdout + proc.stderr
        marker = json.loads((wd / "data" / "visa" / MARKER).read_text())
        assert marker["sha256"] == sha256_bytes(data)
        log = (wd / "results" / "tiny" / "logs" / "fetch_dataset.log").read_text()
        assert "verified" in log and "downloaded" in log
        res = wd / "results" / "tiny"
        assert "ran on: extract cpu, fit cpu, score cpu" in (res / "summary.md").read_text()
        for cls in classes:
            m = json.loads((res / "s42-m0" / "metrics" / "patchcore" / cls / f"{cls}.json").read_text())
            assert m["pixel"]["pixel_auroc"] is not None  # VisA masks reached the evaluation
            # every step records the device it actually ran on (device: cpu here)
            assert {k: v for k, v in m["provenance"].items() if k.endswith("_device")} == {
                "extract_device": "cpu", "fit_device": "cpu", "score_device": "cpu"}
            splits = json.loads((res / "s42-m0" / "splits" / f"{cls}.json").read_text())
            assert splits["counts"]["val"]["anomalous"] == 1 and splits["counts"]["train"]["normal"] == 6
        # a second invocation: nothing to do, nothing downloaded
        assert planned_jobs(wd) == []
        assert len(srv.requests) == 1


def _serve_mvtec_ad2(tmp: Path, wd: Path) -> dict:
    from test_data_fetch_sources import mvtec_ad2_tar

    return {"/mvtec_ad_2.tar.gz": mvtec_ad2_tar(tmp)}


def _serve_btad(tmp: Path, wd: Path) -> dict:
    from test_data_fetch_sources import btad_zip

    return {"/btad.zip": btad_zip(tmp)}


def _serve_mpdd(tmp: Path, wd: Path) -> dict:
    from archive_utils import mvtec_tree, tar_bytes
    from test_data_fetch_sources import COUNTS

    return {"/mpdd.tar": tar_bytes(mvtec_tree(tmp / "src", ["tubes"], counts=COUNTS, size=32), "w")}


def _lay_real_iad(tmp: Path, wd: Path) -> dict:
    from test_data_fetch_sources import _realiad_raw

    _realiad_raw(wd / "data")  # data/downloads/Real-IAD: the manual-download folder of data/realiad
    return {}


# source -> (its one class, what is served from 127.0.0.1 or laid on disk)
NEW_SOURCES = {"mvtec_ad2": ("can", _serve_mvtec_ad2), "btad": ("01", _serve_btad),
               "mpdd": ("tubes", _serve_mpdd), "real_iad": ("audiojack", _lay_real_iad)}


@pytest.mark.parametrize("source", list(NEW_SOURCES))
def test_new_source_runs_through_the_workflow(tmp_path, source):
    """One class of each newer source from nothing: its small real-layout fixture fetched (or
    converted from its manual download) and read in the MVTec layout by the workflow. MVTec AD 2
    (the one with unlabelled private test sets) runs to results/<run>/tables/metrics.csv: one
    PaDiM, per_class, global and unified_abs scored with finite AUROC. The others run to their
    split file and image cache (every image and mask read by rules index, splits and
    preprocess_images): after conversion the DAG is the one every MVTec-layout run has
    (CI time, issue 23 §2)."""
    import pandas as pd

    from adloc.data.mvtec import scan_class

    cls, build = NEW_SOURCES[source]
    wd = tmp_path / "wd"
    wd.mkdir()
    files = build(tmp_path / "build", wd)
    root = f"data/{source}"
    with FileServer(files) as srv:
        dataset = {"root": root, "generate": False, "source": source}
        if files:
            (path, data), = files.items()
            dataset |= {"url": srv.url(path), "sha256": sha256_bytes(data)}
        # 3 anomalies per class: 0.34 keeps one in val for the threshold; no bootstrap (cost)
        write_config(wd, classes=[cls], methods=["padim"], dataset=dataset,
                     splits={"val_anomaly_fraction": 0.34}, evaluation={"bootstrap": {"n": 0}})
        full = source == "mvtec_ad2"
        target = "results/tiny/tables/metrics.csv"
        targets = [target] if full else [f"results/tiny/s42-m0/splits/{cls}.json",
                                          f"results/tiny/images/{cls}.pt"]
        snakemake(wd, "--cores", "2", *targets, env=NO_PROXY)
        assert [p for p, _ in srv.requests] == list(files)  # fetched once
    idx = scan_class(wd / root, cls)  # the MVTec layout: train/good, test/<defect>, ground_truth
    assert idx.train and any(s.label == 1 for s in idx.test) and idx.has_masks
    assert json.loads((wd / root / MARKER).read_text())["source"] == source
    splits = json.loads((wd / "results" / "tiny" / "s42-m0" / "splits" / f"{cls}.json").read_text())
    assert splits["counts"]["test"]["anomalous"] >= 1 and splits["counts"]["train"]["normal"] >= 1
    if not full:
        assert planned_jobs(wd, *targets) == []
        return
    table = pd.read_csv(wd / target, dtype={"class": str})
    rows = table[(table["method"] == "padim") & (table["class"] == cls)]
    assert set(rows["scope"]) >= {"per_class", "global", "unified_abs"}
    for col in ("auroc", "pixel_auroc"):
        assert np.isfinite(rows[col].astype(float)).all(), (col, rows)
    if source == "mvtec_ad2":  # the private test sets carry no labels: never split, never scored
        res = wd / "results" / "tiny" / "s42-m0"
        for f in [res / "splits" / f"{cls}.json", *res.rglob("metrics/**/*.json")]:
            assert "test_private" not in f.read_text(), f
        assert (wd / root / "_unlabelled" / cls / "test_private").is_dir()
    assert planned_jobs(wd, target) == []


def test_new_source_rule_fetch_dataset_falls_back_to_a_mirror(tmp_path):
    """Rule fetch_dataset alone (no extraction DAG run) for dataset.source: btad: the first URL is
    dead, dataset.mirrors supplies the archive, its sha256 is checked, converted once."""
    from test_data_fetch_sources import btad_zip

    data = btad_zip(tmp_path / "build")
    wd = tmp_path / "wd"
    wd.mkdir()
    with FileServer({"/m/btad.zip": data}) as srv:
        write_config(wd, classes=["01", "02"], methods=["patchcore"],
                     dataset={"root": "data/btad", "generate": False, "source": "btad",
                              "url": srv.url("/dead/btad.zip"), "mirrors": [srv.url("/m/btad.zip")],
                              "sha256": sha256_bytes(data)})
        snakemake(wd, "--cores", "1", f"data/btad/{MARKER}", env=NO_PROXY)
        assert [p for p, _ in srv.requests] == ["/dead/btad.zip", "/m/btad.zip"]
    log = (wd / "results" / "tiny" / "logs" / "fetch_dataset.log").read_text()
    assert "trying the next mirror" in log and "verified" in log
    assert (wd / "data" / "btad" / "01" / "ground_truth" / "ko").is_dir()
    assert "fetch_dataset" not in [r for r, _ in planned_jobs(wd)]
