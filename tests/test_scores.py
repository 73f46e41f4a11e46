"""adloc.scores (the scores file's one writer and reader) and adloc.pipeline.score_splits, the
confusion rule's inputs, and the extract_features rule's split check and per-split extraction
(adloc.features)."""

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from adloc.analysis.confusion import confusion_inputs
from adloc.errors import AdlocError, DatasetError
from adloc.features import extract_groups, extraction_groups, save_features
from adloc.io import write_json
from adloc.pipeline import score_splits
from adloc.scores import SplitScores, read_scores, write_scores


def _splits(cls="nut"):
    return {"class": cls, "splits": {
        "train": [{"path": f"train/good/{i}.png", "label": 0} for i in range(3)],
        "val": [{"path": "test/good/0.png", "label": 0}, {"path": "test/bad/0.png", "label": 1}],
        "test": [{"path": "test/bad/1.png", "label": 1}, {"path": "test/good/1.png", "label": 0},
                 {"path": "test/bad/2.png", "label": 1}],
    }}


def test_write_read_roundtrip_order_and_dtypes(tmp_path):
    f = tmp_path / "nut.npz"
    maps = np.arange(3 * 4 * 4, dtype=np.float64).reshape(3, 4, 4)
    write_scores(f, {"backbone": "resnet18", "score_device": "cpu"}, {
        "val": SplitScores(np.array([0.5, 2.0]), ["test/good/0.png", "test/bad/0.png"], np.array([0, 1], np.int8)),
        "test": SplitScores(np.array([3.0, 0.25, 1.5]), ["a", "b", "c"], np.array([1, 0, 1], np.int8), maps),
    })
    with zipfile.ZipFile(f) as z:  # the file's order
        assert [n[:-4] for n in z.namelist()] == [
            "provenance", "val_scores", "val_paths", "val_labels", "test_scores", "test_paths", "test_labels",
            "test_maps"]
    got = read_scores(f)
    assert json.loads(str(got["provenance"])) == {"backbone": "resnet18", "score_device": "cpu"}
    assert got["val_scores"].dtype == np.float32 and got["val_scores"].tolist() == [0.5, 2.0]
    assert got["test_maps"].dtype == np.float32 and np.array_equal(got["test_maps"], maps.astype(np.float32))
    assert got["test_paths"].tolist() == ["a", "b", "c"] and got["test_labels"].dtype == np.int8
    assert "val_maps" not in got


def test_read_scores_names_the_file(tmp_path):
    with pytest.raises(AdlocError, match=r"scores file not found: .*missing\.npz"):
        read_scores(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(AdlocError, match=r"scores file is corrupt: .*bad\.npz.*Delete it"):
        read_scores(bad)
    with pytest.raises(AdlocError, match=r"per-class scores not found: .*missing\.npz"):
        read_scores(tmp_path / "missing.npz", "per-class scores")


def test_scripts_read_scores_through_adloc_scores():
    """adloc.scores is the scores format's one reader: no script or analysis module loads a
    scores file with adloc.io.load_npz itself."""
    root = Path(__file__).resolve().parents[1]
    users = [f.relative_to(root).as_posix() for f in [*(root / "scripts").glob("*.py"), *(root / "src").rglob("*.py")]
             if "load_npz" in f.read_text()]
    assert sorted(users) == ["src/adloc/io.py", "src/adloc/scores.py"]


class _Model:
    """Scores = the first layer's mean per image, maps = its first channel."""

    def predict(self, fs, scale=1.0):
        x = fs.layers["layer2"]
        return (x.mean((1, 2, 3)) * scale).numpy().astype(np.float32), x[:, 0].numpy()


def test_score_splits_reads_the_split_rows_in_the_features_order(tmp_path):
    splits = _splits()
    paths = [e["path"] for split in ("test", "val", "train") for e in splits["splits"][split]]
    feats = {"layer2": torch.arange(len(paths), dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 2, 3, 3).clone()}
    ff = tmp_path / "feats.pt"
    save_features(ff, feats, paths, {"backbone": "resnet18", "weights": "random"}, input_size=3)
    res = score_splits(_Model(), ff, splits, ["val", "test"], {"scale": 2.0})
    assert list(res) == ["val", "test"]
    assert list(res["val"].paths) == ["test/good/0.png", "test/bad/0.png"]
    assert res["val"].scores.tolist() == [6.0, 8.0] and res["val"].labels.tolist() == [0, 1]
    assert res["val"].maps is None and res["test"].maps.shape == (3, 3, 3)
    assert res["test"].labels.tolist() == [1, 0, 1]
    write_scores(tmp_path / "s.npz", {}, res)
    assert read_scores(tmp_path / "s.npz")["test_scores"].tolist() == [0.0, 2.0, 4.0]


def _threshold(path, value):
    write_json(path, {"threshold": {"threshold": value}, "classes": [path.stem], "method": "padim",
                      "model": "global", "scope": "global"})


def test_confusion_inputs_pair_files_by_class(tmp_path):
    tfs, sfs = [], []
    for cls, thr in (("nut", 1.0), ("carpet", 2.0)):
        _threshold(tmp_path / f"{cls}.json", thr)
        (tmp_path / "s").mkdir(exist_ok=True)
        write_scores(tmp_path / "s" / f"{cls}.npz", {}, {
            "val": SplitScores(np.array([0.5, 3.0]), ["g", "b"], np.array([0, 1], np.int8)),
            "test": SplitScores(np.array([0.25]), ["g2"], np.array([0], np.int8), np.zeros((1, 2, 2)))})
        tfs.append(tmp_path / f"{cls}.json")
        sfs.append(tmp_path / "s" / f"{cls}.npz")
    thresholds, normals = confusion_inputs(tfs, sfs)
    assert thresholds == {"nut": 1.0, "carpet": 2.0}
    assert normals["nut"].tolist() == [0.5, 0.25]
    with pytest.raises(AdlocError, match=r"threshold file .*nut\.json \(class nut\) is paired with scores "
                                         r"file .*carpet\.npz.*same class order"):
        confusion_inputs(tfs, sfs[::-1])
    with pytest.raises(AdlocError, match="2 threshold files but 1 scores files"):
        confusion_inputs(tfs, sfs[:1])


class _Cache:
    def __init__(self, paths):
        self.paths = {"all": list(paths)}
        self.images = torch.arange(len(paths), dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 3, 2, 2)

    def rows(self, name, paths):
        return self.images[[self.paths[name].index(p) for p in paths]]


class _Extractor:
    def __init__(self):
        self.calls = []

    def extract(self, images, batch_size, out_dtype):
        self.calls.append(len(images))
        return {"layer2": images[:, :1].float()}


def test_extraction_groups_and_per_split_extraction():
    splits = _splits()
    cache = _Cache(sorted(e["path"] for v in splits["splits"].values() for e in v))
    groups = extraction_groups(cache, "images/nut.pt", splits, "splits/nut.json")
    assert groups == [[e["path"] for e in splits["splits"][s]] for s in ("train", "val", "test")]
    ex = _Extractor()
    feats, read_s, extract_s = extract_groups(ex, cache, groups, 4, "float32")
    assert ex.calls == [3, 2, 3]  # each split batched on its own
    order = [cache.paths["all"].index(p) for g in groups for p in g]
    assert feats["layer2"][:, 0, 0, 0].tolist() == [float(i) for i in order]
    assert read_s >= 0 and extract_s >= 0


def test_extraction_groups_refuse_a_stale_pair():
    splits = _splits()
    cache = _Cache(["train/good/0.png"])
    with pytest.raises(DatasetError, match=r"image cache images/nut\.pt and split file splits/nut\.json list "
                                           r"different images \(1 vs 8\); delete both"):
        extraction_groups(cache, "images/nut.pt", splits, "splits/nut.json")
    cache.paths = {"other": []}
    with pytest.raises(DatasetError, match="has no 'all' group"):
        extraction_groups(cache, "images/nut.pt", splits, "splits/nut.json")
