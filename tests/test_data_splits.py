"""The study's split protocol: sizes, exact file lists, JSON structure, hashes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from adloc.data.mvtec import scan_class
from adloc.data.splits import make_splits, read_splits, verify_hashes
from adloc.data.synthetic import STUDY_CLASSES, generate_class, mvtec_counts
from adloc.errors import DatasetError
from adloc.io import write_json

# MVTec AD's defect folders and image counts for the study's classes
MVTEC_LAYOUT = {
    "hazelnut": (391, 40, {"crack": 18, "cut": 17, "hole": 18, "print": 17}),
    "carpet": (
        280,
        28,
        {"color": 19, "cut": 17, "hole": 17, "metal_contamination": 17, "thread": 19},
    ),
    "zipper": (
        240,
        32,
        {
            "broken_teeth": 19,
            "combined": 16,
            "fabric_border": 17,
            "fabric_interior": 16,
            "rough": 17,
            "split_teeth": 18,
            "squeezed_teeth": 16,
        },
    ),
}

# Pinned from the study's published data/processed/clean_splits.json
# (IvanNece/Detection-of-Anomalies-with-Localization): first train images, first validation
# anomalies and first test anomalies of each class.
STUDY_LISTS = {
    "hazelnut": {
        "train": ["344", "306", "356", "240", "072", "097", "382", "340"],
        "val_normal": ["136", "107", "181", "189"],
        "val_anom": ["hole/012", "crack/015", "cut/012", "print/010", "print/014", "cut/002"],
        "test_anom": ["hole/007", "hole/013", "hole/016", "crack/006"],
        "test_anom_last": ["print/016", "hole/008", "cut/008"],
    },
    "carpet": {
        "train": ["203", "005", "205", "252", "243", "194", "082", "009"],
        "val_anom": ["thread/002", "thread/000", "color/013", "thread/007", "cut/012"],
        "test_anom": ["hole/006", "thread/004", "cut/003", "thread/005", "thread/018"],
        "test_anom_last": ["thread/013", "color/006"],
    },
    "zipper": {
        "val_anom": [
            "squeezed_teeth/008",
            "fabric_border/013",
            "squeezed_teeth/002",
            "squeezed_teeth/001",
            "broken_teeth/015",
        ],
        "test_anom": ["fabric_border/001", "fabric_border/003", "combined/001"],
        "test_anom_last": ["squeezed_teeth/009", "split_teeth/007"],
    },
}


def _empty_mvtec_class(root: Path, cls: str) -> None:
    """MVTec's file names with empty files: scan_class never decodes images."""
    n_train, n_good, defects = MVTEC_LAYOUT[cls]
    d = root / cls
    for sub, n in [("train/good", n_train), ("test/good", n_good)] + [
        (f"test/{k}", v) for k, v in defects.items()
    ]:
        (d / sub).mkdir(parents=True)
        for i in range(n):
            (d / sub / f"{i:03d}.png").touch()
    for k, v in defects.items():
        (d / "ground_truth" / k).mkdir(parents=True)
        for i in range(v):
            (d / "ground_truth" / k / f"{i:03d}_mask.png").touch()


def _names(entries, cls):
    out = []
    for e in entries:
        p = Path(e["path"])
        assert p.parts[0] == cls
        out.append(p.stem if e["defect"] == "good" else f"{e['defect']}/{p.stem}")
    return out


@pytest.mark.parametrize("cls", list(MVTEC_LAYOUT))
def test_reproduces_the_study_file_lists(tmp_path, cls):
    _empty_mvtec_class(tmp_path, cls)
    s = make_splits(scan_class(tmp_path, cls), seed=42, hash_files=False)
    n_train, n_good, defects = MVTEC_LAYOUT[cls]
    n_anom = sum(defects.values())
    k_tr, k_va = int(0.8 * n_train), int(0.3 * n_anom)
    train = _names(s["splits"]["train"], cls)
    val = _names(s["splits"]["val"], cls)
    test = _names(s["splits"]["test"], cls)
    ref = STUDY_LISTS[cls]
    assert train[: len(ref.get("train", []))] == ref.get("train", [])
    assert val[: len(ref.get("val_normal", []))] == ref.get("val_normal", [])
    assert val[n_train - k_tr :][: len(ref["val_anom"])] == ref["val_anom"]
    # test = all test/good in file order, then the test anomalies (the study's order)
    assert test[:n_good] == [f"{i:03d}" for i in range(n_good)]
    assert test[n_good:][: len(ref["test_anom"])] == ref["test_anom"]
    assert test[-len(ref["test_anom_last"]) :] == ref["test_anom_last"]
    assert len(val) == n_train - k_tr + k_va and len(test) == n_good + n_anom - k_va


def test_split_sizes_on_generated_data_with_mvtec_counts(tmp_path):
    expected = {  # train, val normal/anomalous, test normal/anomalous (the study's table)
        "synth_nut": (312, 79, 21, 40, 49),
        "synth_carpet": (224, 56, 26, 28, 63),
        "synth_zipper": (192, 48, 35, 32, 84),
    }
    for cls in STUDY_CLASSES:
        generate_class(tmp_path, cls, mvtec_counts(cls), image_size=16, seed=0)
        idx = scan_class(tmp_path, cls)
        s = make_splits(idx, seed=42, hash_files=False)
        c = s["counts"]
        got = (
            c["train"]["total"],
            c["val"]["normal"],
            c["val"]["anomalous"],
            c["test"]["normal"],
            c["test"]["anomalous"],
        )
        assert got == expected[cls], cls
        assert c["train"] == {"good": got[0], "total": got[0], "normal": got[0], "anomalous": 0}
        paths = [e["path"] for k in ("train", "val", "test") for e in s["splits"][k]]
        assert len(paths) == len(set(paths)) == len(idx.train) + len(idx.test)


def test_structure_hashes_and_roundtrip(tmp_path):
    generate_class(
        tmp_path,
        "synth_carpet",
        {"train_good": 10, "test_good": 3, "anomalies": 8},
        image_size=16,
        seed=1,
    )
    idx = scan_class(tmp_path, "synth_carpet")
    s = make_splits(idx)
    assert s["class"] == "synth_carpet" and s["has_masks"] is True
    assert s["protocol"] == {
        "seed": 42,
        "train_fraction": 0.8,
        "val_anomaly_fraction": 0.3,
        "stratify_by_defect": False,
    }
    e = s["splits"]["val"][-1]
    assert set(e) == {"path", "label", "defect", "mask", "sha256", "mask_sha256"}
    assert e["label"] == 1 and e["mask"].startswith("synth_carpet/ground_truth/")
    assert len(e["sha256"]) == 64 and len(e["mask_sha256"]) == 64
    assert (
        s["splits"]["train"][0]["mask"] is None and s["splits"]["train"][0]["mask_sha256"] is None
    )
    # val = normals then anomalies
    labels = [x["label"] for x in s["splits"]["val"]]
    assert labels == sorted(labels)
    assert (
        s["counts"]["val"]["total"]
        == s["counts"]["val"]["normal"] + s["counts"]["val"]["anomalous"]
    )

    p = tmp_path / "splits" / "synth_carpet.json"
    write_json(p, s)
    back = read_splits(p)
    assert back == json.loads(json.dumps(s))
    assert verify_hashes(tmp_path, back) == []
    changed = tmp_path / s["splits"]["test"][0]["path"]
    changed.write_bytes(changed.read_bytes() + b"\0")
    assert verify_hashes(tmp_path, back) == [s["splits"]["test"][0]["path"]]


def test_deterministic_and_seed_sensitive(tmp_path):
    _empty_mvtec_class(tmp_path, "carpet")
    idx = scan_class(tmp_path, "carpet")
    a = make_splits(idx, seed=42, hash_files=False)
    assert a == make_splits(idx, seed=42, hash_files=False)
    assert a["splits"]["train"] != make_splits(idx, seed=7, hash_files=False)["splits"]["train"]


def test_stratified_by_defect(tmp_path):
    _empty_mvtec_class(tmp_path, "zipper")
    idx = scan_class(tmp_path, "zipper")
    s = make_splits(idx, stratify_by_defect=True, hash_files=False)
    assert s["protocol"]["stratify_by_defect"] is True
    defects = MVTEC_LAYOUT["zipper"][2]
    for d, n in defects.items():
        assert s["counts"]["val"][d] == int(0.3 * n)  # floor per defect type
        assert s["counts"]["test"][d] == n - int(0.3 * n)
    assert s["counts"]["val"]["anomalous"] == sum(int(0.3 * n) for n in defects.values())


def test_class_without_ground_truth(tmp_path):
    generate_class(
        tmp_path, "synth_nut", {"train_good": 5, "test_good": 2, "anomalies": 4}, image_size=16
    )
    import shutil

    shutil.rmtree(tmp_path / "synth_nut" / "ground_truth")
    s = make_splits(scan_class(tmp_path, "synth_nut"))
    assert s["has_masks"] is False
    assert all(e["mask"] is None for k in ("val", "test") for e in s["splits"][k])


def test_read_splits_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(DatasetError) as e:
        read_splits(missing)
    assert str(missing) in str(e.value)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DatasetError, match="corrupt") as e:
        read_splits(bad)
    assert str(bad) in str(e.value)
    incomplete = tmp_path / "incomplete.json"
    incomplete.write_text(json.dumps({"class": "x", "splits": {}}))
    with pytest.raises(DatasetError) as e:
        read_splits(incomplete)
    assert str(incomplete) in str(e.value)
    bad_entry = tmp_path / "entry.json"
    bad_entry.write_text(
        json.dumps(
            {
                "class": "x",
                "has_masks": False,
                "protocol": {},
                "counts": {},
                "splits": {"train": [{"path": "a.png"}], "val": [], "test": []},
            }
        )
    )
    with pytest.raises(DatasetError, match="entry 0 of 'train'"):
        read_splits(bad_entry)


def test_splits_from_index_equal_make_splits_and_read_no_file(tmp_path):
    """Every repeat's split is drawn from the class index (rule index): the same file lists,
    sha256s, bit depth and warnings as make_splits reading the folder, with no file read."""
    from adloc.data.mvtec import scan_class
    from adloc.data.splits import check_index_unchanged, make_index, make_splits, read_index, splits_from_index
    from adloc.data.synthetic import generate_class
    from adloc.errors import DatasetError
    from adloc.io import write_json

    generate_class(tmp_path, "synth_nut", {"train_good": 6, "test_good": 2, "anomalies": 5}, image_size=32, seed=0)
    idx = scan_class(tmp_path, "synth_nut")
    write_json(tmp_path / "index.json", make_index(idx))
    indexed = read_index(tmp_path / "index.json")
    for seed in (0, 42, 7):
        direct = make_splits(idx, seed=seed, val_anomaly_fraction=0.4)
        shutil.move(str(tmp_path / "synth_nut"), str(tmp_path / "moved"))  # nothing to read
        try:
            drawn = splits_from_index(indexed, tmp_path, seed=seed, val_anomaly_fraction=0.4)
        finally:
            shutil.move(str(tmp_path / "moved"), str(tmp_path / "synth_nut"))
        assert drawn == direct
    check_index_unchanged(tmp_path, indexed, "index.json")
    (tmp_path / indexed["train"][0]["path"]).write_bytes(b"changed")
    with pytest.raises(DatasetError, match="changed since the class index index.json"):
        check_index_unchanged(tmp_path, indexed, "index.json")
    write_json(tmp_path / "bad.json", {"class": "synth_nut"})
    with pytest.raises(DatasetError, match="class index .*bad.json is malformed"):
        read_index(tmp_path / "bad.json")
