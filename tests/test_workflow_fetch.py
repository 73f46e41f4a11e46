"""The workflow with dataset.source: visa against a local HTTP server (never the internet).

One small run: rule fetch_dataset downloads the VisA-layout archive once, checks its sha256,
converts it to the MVTec layout, and every rule after it reads the two classes like MVTec AD;
a second invocation plans nothing (no second download).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

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
