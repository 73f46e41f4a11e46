"""adloc.analysis.figures: style, atomic saving, the examples figure."""

import matplotlib.image as mpimg
import numpy as np
import pytest

from adloc.analysis.figures import (
    class_colors, examples_figure, method_label, new_figure, savefig, select_examples, style,
)
from adloc.errors import AdlocError

PNG = b"\x89PNG\r\n\x1a\n"


def _inputs(k=3, H=32, W=40, h=8, w=10):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (k, H, W, 3), dtype=np.uint8)
    masks = np.zeros((k, H, W), bool)
    masks[1, 5:15, 5:20] = True
    masks[2, 20:30, 10:30] = True
    maps = {name: rng.random((k, h, w)) * scale for name, scale in
            [("PatchCore per-class", 1), ("PatchCore global", 2), ("PaDiM per-class", 30),
             ("PaDiM global", 40)]}
    scores = {name: m.reshape(k, -1).max(1) for name, m in maps.items()}
    titles = [f"carpet · {d} · {i:03d}.png" for i, d in enumerate(["good", "cut", "hole"])][:k]
    return images, masks, maps, scores, titles


def test_examples_figure_png(tmp_path):
    images, masks, maps, scores, titles = _inputs()
    fig = examples_figure(images, masks, maps, titles, scores=scores)
    out = savefig(fig, tmp_path / "sub" / "examples.png")
    data = out.read_bytes()
    assert data[:8] == PNG
    arr = mpimg.imread(out)
    assert arr.ndim == 3 and arr.shape[0] > 200 and arr.shape[1] > 500
    # 3 rows x 6 panels + 2 colour bars (one per method: shared scale)
    assert len(fig.axes) == 3 * 6 + 2
    labels = sorted(ax.get_xlabel() for ax in fig.axes[-2:])
    assert labels[0].startswith("PaDiM anomaly score") and labels[1].startswith("PatchCore")
    assert "score" in fig.axes[2].get_title() and "PatchCore per-class" in fig.axes[2].get_title()
    # no temporary files left behind
    assert [p.name for p in out.parent.iterdir()] == ["examples.png"]


def test_examples_figure_without_masks_and_grey(tmp_path):
    images, _, maps, _, titles = _inputs()
    fig = examples_figure(images[..., 0], None, {"PaDiM global": maps["PaDiM global"]}, titles)
    savefig(fig, tmp_path / "e.png")
    assert (tmp_path / "e.png").read_bytes()[:8] == PNG


def test_examples_figure_errors():
    images, masks, maps, scores, titles = _inputs()
    with pytest.raises(AdlocError, match="titles"):
        examples_figure(images, masks, maps, titles[:1])
    with pytest.raises(AdlocError, match="masks shape"):
        examples_figure(images, masks[:, :5], maps, titles)
    with pytest.raises(AdlocError, match="map 'x'"):
        examples_figure(images, masks, {"x": np.zeros((2, 4, 4))}, titles)


def test_savefig_is_deterministic(tmp_path):
    def make():
        with style():
            fig = new_figure(3, 2)
            ax = fig.subplots()
            ax.plot([0, 1], [1, 0], label="x")
            ax.set_title("t")
        return fig
    a = savefig(make(), tmp_path / "a.png").read_bytes()
    b = savefig(make(), tmp_path / "b.png").read_bytes()
    assert a == b


def test_helpers():
    assert method_label("patchcore") == "PatchCore" and method_label("x") == "x"
    c = class_colors(["a", "b"])
    assert c["a"] != c["b"]
    labels = np.array([0, 0, 1, 1, 1, 1, 0, 1])
    idx = select_examples(labels, 4, seed=0)
    assert len(idx) == 4 and (labels[idx] == 0).sum() == 1
    np.testing.assert_array_equal(idx, select_examples(labels, 4, seed=0))
    assert len(select_examples(np.array([1, 1]), 4)) == 2
