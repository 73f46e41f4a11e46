"""Parallel generation of the embedded dataset writes byte-identical files."""

import pytest

from adloc.data.synthetic import generate_class
from adloc.errors import DatasetError


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("cls", ["synth_nut", "synth_zipper"])
def test_workers_give_identical_files(tmp_path, cls):
    counts = {"train_good": 3, "test_good": 2, "anomalies": 5}
    a = generate_class(tmp_path / "serial", cls, counts, image_size=48, seed=1)
    b = generate_class(tmp_path / "parallel", cls, counts, image_size=48, seed=1, workers=3)
    fa, fb = _files(a), _files(b)
    assert len(fa) == 3 + 2 + 2 * 5 + 1 and fa == fb


def test_negative_workers_rejected(tmp_path):
    with pytest.raises(DatasetError, match="workers"):
        generate_class(tmp_path, "synth_carpet", {"train_good": 1, "test_good": 1, "anomalies": 0},
                       image_size=16, workers=-1)
    assert not any(tmp_path.iterdir())
