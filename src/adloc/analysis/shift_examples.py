"""Domain shift: the shifted examples figure (issue 21 §3), a few test images of one class.

One row per test image and model (per-class, then global): the clean image, its shifted copy and
the shifted ground-truth mask (first row of the image only), then each method's anomaly map clean
and in every adaptation phase, each map and score divided by that phase's threshold for the class,
so every panel shares one colour scale and 1 is the decision boundary. Clean maps are drawn over
the clean image (with the clean mask's contour), the phases' over the shifted one (the shifted
mask's contour).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..errors import AdlocError
from .figures import new_figure, style

#: colour-scale top: this percentile of every map value (a few extreme maps under shift would
#: otherwise wash out the rest); values above it are drawn in the top colour
SCALE_PERCENTILE = 99.5


def _rgb(images: np.ndarray, what: str) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 3:
        images = np.repeat(images[..., None], 3, axis=-1)
    if images.ndim != 4:
        raise AdlocError(f"shift_examples_figure: {what} must be (k, H, W, 3), got shape {images.shape}")
    return images


def _contour(ax, mask: np.ndarray | None, colour: str) -> None:
    if mask is not None and mask.any():
        h, w = mask.shape
        ax.contour(np.arange(w) + 0.5, np.arange(h) + 0.5, mask.astype(float), levels=[0.5],
                   colors=colour, linewidths=1.0)


def _check(maps, scores, k: int) -> list[str]:
    if not maps:
        raise AdlocError("shift_examples_figure: no maps")
    columns = list(next(iter(maps.values())))
    for group, cols in maps.items():
        if list(cols) != columns:
            raise AdlocError(f"shift_examples_figure: row group {group!r} has columns {list(cols)}, expected {columns}")
        for name, a in cols.items():
            if np.ndim(a) != 3 or len(a) != k:
                raise AdlocError(f"shift_examples_figure: map {group}/{name} must be (k={k}, h, w), got shape {np.shape(a)}")
            if len(scores[group][name]) != k:
                raise AdlocError(f"shift_examples_figure: {len(scores[group][name])} scores for map {group}/{name}, k={k}")
    return columns


def shift_examples_figure(
    clean: np.ndarray,
    shifted: np.ndarray,
    clean_masks: np.ndarray | None,
    shifted_masks: np.ndarray | None,
    maps: Mapping[str, Mapping[str, np.ndarray]],
    scores: Mapping[str, Mapping[str, Sequence[float]]],
    titles: Sequence[str],
    clean_columns: Sequence[str] = (),
    suptitle: str | None = None,
    panel_size: float = 1.9,
):
    """The figure (module docstring).

    Args:
        clean, shifted: uint8 ``(k, H, W, 3)`` test images, clean and shifted, at the model input.
        clean_masks, shifted_masks: bool ``(k, H, W)`` ground truth, or None (no masks).
        maps: row group (e.g. ``"per-class"``, ``"global"``) -> column title -> float
            ``(k, h, w)`` anomaly maps already divided by their threshold; every group has the
            same columns in the same order.
        scores: the same keys -> ``k`` image scores divided by their threshold.
        titles: ``k`` image labels (e.g. ``"crack · 003.png"``).
        clean_columns: the column titles drawn over the clean image (the clean phase).
    """
    clean, shifted = _rgb(clean, "clean"), _rgb(shifted, "shifted")
    k, H, W = clean.shape[:3]
    if shifted.shape[:3] != (k, H, W) or len(titles) != k:
        raise AdlocError(f"shift_examples_figure: {len(shifted)} shifted images, {len(titles)} titles, {k} clean images of {H}x{W}")
    masks = {}
    for what, m in (("clean", clean_masks), ("shifted", shifted_masks)):
        if m is not None and np.shape(m) != (k, H, W):
            raise AdlocError(f"shift_examples_figure: {what} masks shape {np.shape(m)} does not match images {(k, H, W)}")
        masks[what] = None if m is None else np.asarray(m).astype(bool)
    columns = _check(maps, scores, k)
    groups = list(maps)
    vals = np.concatenate([np.asarray(a, np.float64).ravel() for g in groups for a in maps[g].values()])
    vals = vals[np.isfinite(vals)]
    lo = float(vals.min()) if vals.size else 0.0
    hi = float(np.percentile(vals, SCALE_PERCENTILE)) if vals.size else 1.0
    hi = max(hi, 1.0 + 1e-6, lo + 1e-6)  # the decision boundary (1) always on the scale
    import matplotlib as mpl
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    cmap = mpl.colormaps["jet"]
    extent = (0, W, H, 0)
    n_rows, n_cols = k * len(groups), 3 + len(columns)
    with style():
        fig = new_figure(panel_size * n_cols, panel_size * n_rows + 1.3)
        axes = fig.subplots(n_rows, n_cols, squeeze=False)
        for i in range(k):
            for gi, group in enumerate(groups):
                row = axes[i * len(groups) + gi]
                if gi == 0:
                    _image_panels(row, i, clean[i], shifted[i], masks, titles[i], extent, head=i == 0)
                else:
                    for ax in row[:3]:
                        ax.set_axis_off()
                for c, name in enumerate(columns):
                    ax = row[3 + c]
                    on_clean = name in clean_columns
                    base = clean[i] if on_clean else shifted[i]
                    ax.imshow(base.mean(axis=-1), cmap="gray", extent=extent)
                    ax.imshow(np.asarray(maps[group][name][i], np.float64), cmap=cmap, alpha=0.5,
                              vmin=lo, vmax=hi, extent=extent, interpolation="bilinear")
                    m = masks["clean" if on_clean else "shifted"]
                    _contour(ax, None if m is None else m[i], "white")
                    v = float(scores[group][name][i])
                    verdict = "flagged" if v >= 1 else "passed"
                    head = f"{name}\n" if i == 0 and gi == 0 else ""
                    ax.set_title(f"{head}{v:.2f} {verdict}", fontsize=8)
                    if c == 0:
                        ax.text(0.03, 0.97, group, transform=ax.transAxes, ha="left", va="top", fontsize=7,
                                bbox={"facecolor": "white", "alpha": 0.85, "linewidth": 0, "pad": 1.5})
        for ax in axes.ravel():
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
        sm = ScalarMappable(norm=Normalize(lo, hi), cmap=cmap)
        cb = fig.colorbar(sm, ax=list(axes[:, 3:].ravel()), location="bottom", shrink=0.8, aspect=35,
                          pad=0.01, extend="max")
        cb.set_label("anomaly score / that phase's threshold for this class (1 = decision boundary); "
                     "panel titles: image score / threshold", fontsize=8)
        cb.ax.tick_params(labelsize=7)
        fig.suptitle(suptitle or "Test images clean and shifted, ground truth and anomaly maps by phase")
    return fig


def _image_panels(row, i, clean, shifted, masks, title, extent, head: bool) -> None:
    """The clean image (clean mask's contour), the shifted copy and the shifted mask."""
    row[0].imshow(clean, extent=extent)
    _contour(row[0], None if masks["clean"] is None else masks["clean"][i], "red")
    row[0].set_ylabel(title, fontsize=8)
    row[1].imshow(shifted, extent=extent)
    sm = None if masks["shifted"] is None else masks["shifted"][i]
    row[2].imshow(np.zeros(shifted.shape[:2]) if sm is None else sm, cmap="gray", vmin=0, vmax=1, extent=extent)
    note = "no mask available" if sm is None else ("" if sm.any() else "normal: no defect")
    if note:
        row[2].text(0.5, 0.5, note, transform=row[2].transAxes, ha="center", va="center", fontsize=8,
                    color="white")
    if head:
        for ax, t in zip(row, ("clean\n(mask contour)", "shifted", "ground truth\n(shifted)")):
            ax.set_title(t, fontsize=9)


__all__ = ["shift_examples_figure", "SCALE_PERCENTILE"]
