"""adloc.pipeline.calibrate_scores / read_threshold: the calibrate rule's threshold files."""

import numpy as np
import pytest

from adloc.errors import AdlocError, CalibrationError
from adloc.io import write_json
from adloc.metrics import calibrate_threshold
from adloc.pipeline import calibrate_scores, read_threshold

CFG = {"mode": "exact", "grid_size": 1000, "on_degenerate": "error"}


def _scores(labels, values):
    return {"val_labels": np.asarray(labels, dtype=np.int8), "val_scores": np.asarray(values, dtype=np.float32)}


def test_one_class_equals_calibrate_threshold():
    s = _scores([0, 0, 1, 1], [0.1, 0.3, 0.7, 0.9])
    d = calibrate_scores([s], CFG, ["a"])
    assert d["threshold"] == calibrate_threshold(s["val_labels"], s["val_scores"]).to_dict()
    assert d["classes"] == ["a"] and d["val"] == {"a": {"n": 4, "n_anomalous": 2}}


def test_pooled_threshold_is_f1_max_on_the_union():
    a = _scores([0, 0, 1], [0.1, 0.2, 0.3])  # class a: low scale
    b = _scores([0, 0, 1], [1.0, 2.0, 3.0])  # class b: high scale
    d = calibrate_scores([a, b], CFG, ["a", "b"])
    union = calibrate_threshold(np.r_[a["val_labels"], b["val_labels"]],
                                np.r_[a["val_scores"], b["val_scores"]].astype(np.float64))
    assert d["threshold"] == union.to_dict()
    # one threshold cannot separate both classes: pooled F1 < 1 although each class alone has 1
    assert d["threshold"]["f1"] < 1.0
    assert calibrate_scores([a], CFG, ["a"])["threshold"]["f1"] == 1.0
    assert d["val"]["b"] == {"n": 3, "n_anomalous": 1}


def test_degenerate_pool_and_bad_files(tmp_path):
    with pytest.raises(CalibrationError):
        calibrate_scores([_scores([0, 0], [0.1, 0.2])], CFG, ["a"])
    with pytest.raises(AdlocError, match="2 scores files"):
        calibrate_scores([_scores([0, 1], [0.1, 0.2])] * 2, CFG, ["a"])
    good = tmp_path / "t.json"
    write_json(good, calibrate_scores([_scores([0, 1], [0.1, 0.2])], CFG, ["a"]))
    assert read_threshold(good)["threshold"]["threshold"] == pytest.approx(0.15)  # midpoint
    bad = tmp_path / "bad.json"
    write_json(bad, {"threshold": {"threshold": None}})
    with pytest.raises(AdlocError, match="no finite threshold"):
        read_threshold(bad)
