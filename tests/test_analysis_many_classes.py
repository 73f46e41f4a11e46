"""Figures at MVTec AD's 15 classes stay readable: sizes bounded, no overlapping labels, text
inside its cell, 15 distinct class colours, legends outside the plots (tables: many_classes)."""

import itertools

import matplotlib as mpl
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg

from adloc.analysis.confusion import plot_confusion
from adloc.analysis.figures import class_colors, class_palette
from adloc.analysis.gap_panels import plot_gap
from adloc.analysis.tsne import plot_tsne
from many_classes import MVTEC_CLASSES, confusion_table, gap_rows, tsne_views


def _draw(fig):
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def _title(fig):
    return next(t for t in fig.texts if t.get_text().startswith("Per-class"))


def _no_overlap(boxes):
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), (a, b)


def test_palette_distinct_and_unchanged_for_few_classes():
    assert class_palette(3) == [mpl.colormaps["tab10"](i) for i in range(3)]
    pal = class_palette(15)
    assert len(set(pal)) == 15
    # tab20's strong colours first: no class next to its own hue's light twin
    t20 = mpl.colormaps["tab20"]
    assert pal[:10] == [t20(i) for i in range(0, 20, 2)]
    assert len(set(class_palette(60))) == 60
    assert list(class_colors(MVTEC_CLASSES)) == MVTEC_CLASSES


def test_confusion_heatmap_at_15_classes():
    fig = plot_confusion(confusion_table(), "patchcore")
    w, h = fig.get_size_inches()
    assert w <= 13 and h <= 10.5
    r = _draw(fig)
    ax = fig.axes[0]
    _no_overlap([t.get_window_extent(r) for t in ax.get_xticklabels()])
    _no_overlap([t.get_window_extent(r) for t in ax.get_yticklabels()])
    # every cell's "100.0%\nk/n" fits inside its cell
    cell_w = ax.get_window_extent(r).width / 15
    cell_h = ax.get_window_extent(r).height / 15
    texts = [t for t in ax.texts if "%" in t.get_text()]
    assert len(texts) == 15 * 15
    for t in texts:
        box = t.get_window_extent(r)
        assert box.width < cell_w and box.height < cell_h and t.get_fontsize() >= 7


def test_gap_figure_at_15_classes_has_one_panel_per_metric_and_method():
    df = gap_rows()
    fig = plot_gap(df)
    assert len(fig.axes) == (6 + 2 + 2) * 2  # six metrics + F1 and accuracy vs one threshold, vs routed
    w, h = fig.get_size_inches()
    assert w <= 16 and h <= 15
    r = _draw(fig)
    bottom = fig.axes[-1]
    labels = [t for t in bottom.get_xticklabels() if t.get_text()]
    assert [t.get_text() for t in labels] == MVTEC_CLASSES + ["mean over classes"]
    # slanted labels: the gap between neighbours, across the text, exceeds a line of text
    rot = np.deg2rad(labels[0].get_rotation())
    step = bottom.get_window_extent(r).width / len(labels)
    line = labels[0].get_fontsize() * fig.dpi / 72
    assert step * np.sin(rot) > 1.2 * line
    # 16 bars per panel, the N/A class (AU-PRO of zipper) annotated
    assert all(len(ax.patches) == 16 for ax in fig.axes)
    assert any(t.get_text() == "N/A" for ax in fig.axes for t in ax.texts)
    # the title fits the figure, also with one method (it wraps)
    fig_box = fig.bbox
    title = _title(fig).get_window_extent(r)
    assert fig_box.x0 <= title.x0 and title.x1 <= fig_box.x1
    one = plot_gap(df[df["method"] == "patchcore"])
    r1 = _draw(one)
    title = _title(one).get_window_extent(r1)
    assert one.bbox.x0 <= title.x0 and title.x1 <= one.bbox.x1
    # few classes keep the grouped layout
    few = plot_gap(gap_rows(MVTEC_CLASSES[:3]))
    assert len(few.axes) == 2


def test_tsne_legend_outside_with_15_colours():
    fig = plot_tsne(tsne_views())
    r = _draw(fig)
    (legend,) = fig.legends
    handles = legend.legend_handles
    assert len(handles) == 15 and len({h.get_color() for h in handles}) == 15
    box = legend.get_window_extent(r)
    for ax in fig.axes:
        assert not box.overlaps(ax.get_window_extent(r))
    _no_overlap([t.get_window_extent(r) for t in legend.get_texts()])
    colours = {tuple(np.round(c.get_facecolor()[0][:3], 6)) for c in fig.axes[0].collections}
    assert len(colours) == 15
