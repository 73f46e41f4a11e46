"""adloc.analysis.confusion: one class's threshold applied to another class's normals."""

import numpy as np
import pytest

from adloc.analysis.confusion import (
    COLUMNS, confusion_cells, confusion_matrix, normal_scores_from_npz, plot_confusion,
    summarize, summary_sentence, wide,
)
from adloc.analysis.figures import savefig
from adloc.errors import AdlocError


def test_hand_case():
    df = confusion_matrix({"a": 0.5, "b": 0.65}, {"a": np.array([0.1, 0.6, 0.7]),
                                                   "b": np.array([0.5, 0.2])})
    assert list(df.columns) == COLUMNS
    cell = df[(df["threshold_class"] == "a") & (df["normals_class"] == "a")].iloc[0]
    assert cell["percent"] == pytest.approx(200 / 3) and round(cell["percent"], 1) == 66.7
    assert cell["label"] == "2/3" and cell["n_flagged"] == 2 and cell["n"] == 3
    # score == threshold counts as flagged (score >= threshold)
    cell = df[(df["threshold_class"] == "a") & (df["normals_class"] == "b")].iloc[0]
    assert cell["label"] == "1/2" and cell["percent"] == 50.0
    w = wide(df)
    assert list(w.index) == ["a", "b"] and list(w.columns) == ["a", "b"]
    assert w.loc["b", "a"] == pytest.approx(100 / 3)  # 0.7 >= 0.65
    assert w.loc["b", "b"] == 0.0
    s = summarize(df)
    assert s["max_off"]["threshold_class"] == "a" and s["max_off"]["normals_class"] == "b"
    assert "50.0% (1/2): a's threshold applied to b's normals" in summary_sentence(df, "padim")
    assert summary_sentence(df, "padim").startswith("PaDiM:")
    cells = confusion_cells(df)
    assert cells.iloc[0].tolist() == ["a", "66.7% (2/3)", "50.0% (1/2)"]


def test_zero_everywhere_sentence():
    df = confusion_matrix({"a": 10.0, "b": 10.0}, {"a": np.zeros(4), "b": np.ones(5)})
    text = summary_sentence(df, "patchcore")
    assert "0% in every off-diagonal cell" in text


def test_class_sets_must_match():
    with pytest.raises(AdlocError, match="same classes"):
        confusion_matrix({"a": 1.0}, {"a": np.ones(2), "b": np.ones(2)})
    with pytest.raises(AdlocError, match="not finite"):
        confusion_matrix({"a": float("nan")}, {"a": np.ones(2)})


def test_normal_scores_from_npz():
    npz = {"val_scores": np.array([1, 2, 3], np.float32), "val_labels": np.array([0, 1, 0], np.int8),
           "test_scores": np.array([4, 5], np.float32), "test_labels": np.array([1, 0], np.int8)}
    np.testing.assert_array_equal(normal_scores_from_npz(npz, "heldout"), [1, 3, 5])
    with pytest.raises(AdlocError, match="train_scores"):
        normal_scores_from_npz(npz, "train")
    npz["train_scores"] = np.array([7, 8], np.float32)
    np.testing.assert_array_equal(normal_scores_from_npz(npz, "train"), [7, 8])
    with pytest.raises(AdlocError, match="unknown confusion variant"):
        normal_scores_from_npz(npz, "bogus")


@pytest.mark.parametrize("variant, words", [("heldout", "held-out normals"),
                                            ("train", "in-sample, memorised")])
def test_plot(tmp_path, variant, words):
    rng = np.random.default_rng(0)
    df = confusion_matrix({c: 1.0 + i for i, c in enumerate("xyz")},
                          {c: rng.normal(1, 1, 20) for c in "xyz"})
    fig = plot_confusion(df, "patchcore", variant)
    title = fig.axes[0].get_title()
    assert "PatchCore" in title and words in title
    out = savefig(fig, tmp_path / "c.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pooled_threshold_row(tmp_path):
    from adloc.analysis.confusion import POOLED

    df = confusion_matrix({"a": 0.5, "b": 0.65}, {"a": np.array([0.1, 0.6, 0.7]),
                                                   "b": np.array([0.5, 0.2])}, pooled=0.55)
    pooled = df[df["threshold_class"] == POOLED].set_index("normals_class")
    assert pooled.loc["a", "label"] == "2/3" and pooled.loc["b", "label"] == "0/2"
    w = wide(df)
    assert list(w.index) == ["a", "b", POOLED] and list(w.columns) == ["a", "b"]
    s = summarize(df)  # the pooled row is neither diagonal nor off-diagonal
    assert s["max_off"]["threshold_class"] == "a" and s["max_pooled"]["normals_class"] == "a"
    assert "one pooled threshold (absolute-unified) flags at most 66.7% (2/3, a)" in summary_sentence(df, "padim")
    assert confusion_cells(df).iloc[2].tolist() == [POOLED, "66.7% (2/3)", "0.0% (0/2)"]
    savefig(plot_confusion(df, "padim"), tmp_path / "c.png")
    with pytest.raises(AdlocError, match="may not be named"):
        confusion_matrix({POOLED: 0.5}, {POOLED: np.array([0.1])}, pooled=0.5)
