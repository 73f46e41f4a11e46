"""Shared figure style, atomic saving, and the qualitative examples figure.

Every figure in adloc is built on a bare :class:`matplotlib.figure.Figure` (no pyplot), so
plotting never touches a GUI backend or global figure state and works the same inside Snakemake
jobs, tests and notebooks. :func:`style` is the one place that sets fonts and sizes; every
``plot_*`` function in :mod:`adloc.analysis` draws inside it.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import matplotlib as mpl
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from ..errors import AdlocError
from ..io import atomic_path
from ..models.registry import method_label as registry_label

#: Resolution of every saved PNG.
DPI = 120

#: Display names of the methods (keys as in config ``methods``).

#: Display names of the model scopes.
SCOPE_LABELS = {"per_class": "per-class", "global": "global", "unified_abs": "absolute-unified",
                "routed": "routed"}

_RC = {
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "figure.titlesize": 12,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "savefig.dpi": DPI,
    "figure.dpi": DPI,
    "image.interpolation": "nearest",
    # deterministic PNG bytes: no software/date metadata differences between runs
    "svg.hashsalt": "adloc",
}


@contextlib.contextmanager
def style() -> Iterator[None]:
    """Context manager applying adloc's figure style (fonts, sizes, dpi) to figures built inside."""
    with mpl.rc_context(_RC):
        yield


def method_label(method: str) -> str:
    """A method's label from the registry (adloc.models.registry); unknown names unchanged."""
    return registry_label(method)


def scope_label(scope: str) -> str:
    return SCOPE_LABELS.get(str(scope), str(scope))


def class_palette(n: int) -> list[tuple]:
    """``n`` distinct colours: tab10 up to 10; beyond, tab20's ten strong colours then its ten
    light ones (so neighbours in class order never get a hue and its light twin), then tab20b
    and tab20c (60 in all; more classes repeat colours)."""
    if n <= 10:
        return [mpl.colormaps["tab10"](i) for i in range(n)]
    t20 = mpl.colormaps["tab20"]
    colors = [t20(i) for i in range(0, 20, 2)] + [t20(i) for i in range(1, 20, 2)]
    for name in ("tab20b", "tab20c"):
        colors += [mpl.colormaps[name](i) for i in range(20)]
    return [colors[i % len(colors)] for i in range(n)]


def class_colors(classes: Sequence[str]) -> dict[str, tuple]:
    """A fixed colour per class (:func:`class_palette` in the order of ``classes``), shared by
    every figure."""
    return dict(zip(classes, class_palette(len(classes))))


def new_figure(width: float, height: float) -> Figure:
    """A pyplot-free figure with constrained layout (labels never overlap)."""
    return Figure(figsize=(width, height), layout="constrained")


def savefig(fig: Figure, path, dpi: int = DPI) -> Path:
    """Write ``fig`` atomically (temp file + rename) as PNG (or the format of ``path``'s suffix).

    Metadata that changes between runs (software version, dates) is dropped so two identical runs
    give identical bytes.
    """
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    metadata = {"Software": None} if fmt == "png" else None
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=fmt, metadata=metadata, facecolor="white")
    return path


# ---------------------------------------------------------------------------------------------
# qualitative examples


def _group_of(name: str, groups: Mapping[str, str] | None) -> str:
    """Colour-scale group of a map column: explicit, else the first word ("PatchCore global")."""
    if groups and name in groups:
        return groups[name]
    return re.split(r"[\s_/-]+", name.strip(), maxsplit=1)[0]


def examples_figure(
    images: np.ndarray,
    masks: np.ndarray | None,
    maps: Mapping[str, np.ndarray],
    titles: Sequence[str],
    scores: Mapping[str, Sequence[float]] | None = None,
    groups: Mapping[str, str] | None = None,
    suptitle: str | None = None,
    panel_size: float = 2.1,
    thresholds: Mapping[str, float] | None = None,
) -> Figure:
    """Test images with ground truth and every model's anomaly map, one row per image.

    Args:
        images: uint8 ``(k, H, W, 3)`` (or ``(k, H, W)`` grey) images at the crop resolution.
        masks: bool ``(k, H, W)`` ground-truth masks, or None when the class has none (the GT
            column then says so). An all-False mask is drawn as "normal image".
        maps: column title -> float ``(k, h, w)`` anomaly maps, e.g. ``{"PatchCore per-class":
            ..., "PatchCore global": ..., "PaDiM per-class": ..., "PaDiM global": ...}``. Maps are
            stretched over the image extent, so ``(h, w)`` need not equal ``(H, W)``.
        titles: ``k`` row labels (e.g. ``"carpet · cut · 003.png"``).
        scores: column title -> ``k`` image scores shown in each panel's title (optional).
        groups: column title -> colour-scale group. Default: the first word of the title, so
            "PatchCore per-class" and "PatchCore global" share one scale (comparable) and PaDiM
            gets its own.
        suptitle: figure title (default names the content).
        thresholds: column title -> that model's decision threshold for the class. When given,
            every map and score is divided by its threshold and all maps share one colour scale
            (1 = the decision boundary), which makes models with different score ranges (e.g.
            PaDiM per-class vs global Mahalanobis distances) comparable at a glance.

    Returns:
        the Figure: columns image, ground truth (red contour), then one heat-map overlay per map
        with one labelled colour bar per group under the maps.
    """
    images, masks, arrays = _example_inputs(images, masks, maps, titles, scores)
    k, H, W = images.shape[:3]
    names = list(arrays)
    if thresholds is not None:
        missing = [n for n in names if n not in thresholds]
        if missing:
            raise AdlocError(f"examples_figure: no threshold for map(s) {missing}")
        arrays = {n: a / float(thresholds[n]) for n, a in arrays.items()}
        if scores is not None:
            scores = {n: [float(v) / float(thresholds[n]) for v in scores[n]] for n in scores}
        groups = {n: "all" for n in names}
    group_names: dict[str, list[str]] = {}
    for name in names:
        group_names.setdefault(_group_of(name, groups), []).append(name)
    limits = _group_limits(arrays, group_names)

    ncols = 2 + len(names)
    cmap = mpl.colormaps["jet"]
    with style():
        fig = new_figure(panel_size * ncols, panel_size * k + 0.9)
        axes = fig.subplots(k, ncols, squeeze=False)
        for r in range(k):
            _image_and_truth(axes[r, 0], axes[r, 1], images[r], None if masks is None else masks[r],
                             titles[r], first=r == 0)
            for c, name in enumerate(names):
                lo, hi = limits[_group_of(name, groups)]
                row_score = None if scores is None or name not in scores else float(scores[name][r])
                _map_panel(axes[r, 2 + c], images[r], arrays[name][r], (lo, hi), cmap, name,
                           row_score, thresholds is not None, first=r == 0)
        for ax in axes.ravel():
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
        for g, members in group_names.items():
            cols = [2 + names.index(m) for m in members]
            sm = ScalarMappable(norm=Normalize(*limits[g]), cmap=cmap)
            cb = fig.colorbar(
                sm, ax=list(axes[:, cols].ravel()), location="bottom",
                shrink=0.9, aspect=25, pad=0.01,
            )
            if thresholds is not None:
                label = "anomaly score / the model's threshold for this class (1 = decision boundary)"
            else:
                label = f"{g} anomaly score (one scale for its {len(members)} maps)"
            cb.set_label(label, fontsize=8)
            cb.ax.tick_params(labelsize=7)
        fig.suptitle(suptitle or "Test images, ground truth and anomaly maps")
    return fig


def _example_inputs(images, masks, maps, titles, scores):
    """examples_figure's inputs checked: images (k, H, W, 3), masks (k, H, W) bool or None, and
    every map as float64 (k, h, w) (in the order given)."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = np.repeat(images[..., None], 3, axis=-1)
    if images.ndim != 4:
        raise AdlocError(f"examples_figure: images must be (k, H, W, 3), got shape {images.shape}")
    k, H, W = images.shape[:3]
    if len(titles) != k:
        raise AdlocError(f"examples_figure: {len(titles)} titles for {k} images")
    if masks is not None:
        masks = np.asarray(masks).astype(bool)
        if masks.shape != (k, H, W):
            raise AdlocError(
                f"examples_figure: masks shape {masks.shape} does not match images {(k, H, W)}"
            )
    arrays = {}
    for name in maps:
        a = np.asarray(maps[name], dtype=np.float64)
        if a.ndim != 3 or a.shape[0] != k:
            raise AdlocError(
                f"examples_figure: map {name!r} must be (k={k}, h, w), got shape {a.shape}"
            )
        arrays[name] = a
        if scores is not None and name in scores and len(scores[name]) != k:
            raise AdlocError(f"examples_figure: {len(scores[name])} scores for map {name!r}, k={k}")
    return images, masks, arrays


def _group_limits(arrays: Mapping[str, np.ndarray], group_names: Mapping[str, list[str]]) -> dict:
    """One colour scale per group: (min, max) over all images and all maps of the group."""
    limits = {}
    for g, members in group_names.items():
        vals = np.concatenate([arrays[m][np.isfinite(arrays[m])].ravel() for m in members])
        lo, hi = (float(vals.min()), float(vals.max())) if vals.size else (0.0, 1.0)
        if hi <= lo:
            hi = lo + 1e-6
        limits[g] = (lo, hi)
    return limits


def _image_and_truth(ax_img, ax_gt, img, mask, title: str, first: bool, head_fs: int = 9) -> None:
    """A row's first two panels: the image, and the image with the mask's contour in red."""
    H, W = img.shape[:2]
    extent = (0, W, H, 0)
    ax_img.imshow(img, extent=extent)
    ax_img.set_ylabel(title, fontsize=8)
    if first:
        ax_img.set_title("image", fontsize=head_fs)
    ax_gt.imshow(img, extent=extent)
    if first:
        ax_gt.set_title("ground truth", fontsize=head_fs)
    note = None
    if mask is None:
        note = "no mask available"
    elif mask.any():
        ax_gt.contour(
            np.arange(W) + 0.5, np.arange(H) + 0.5, mask.astype(float),
            levels=[0.5], colors="red", linewidths=1.2,
        )
    else:
        note = "normal: no defect"
    if note:
        ax_gt.text(0.5, 0.04, note, transform=ax_gt.transAxes, ha="center", va="bottom",
                   fontsize=8, bbox={"facecolor": "white", "alpha": 0.8, "linewidth": 0})


def _map_panel(ax, img, amap, limits, cmap, name: str, score: float | None, relative: bool,
               first: bool, head_fs: int = 9) -> None:
    """One anomaly map over the grey image, titled with its score (or score / threshold)."""
    H, W = img.shape[:2]
    extent = (0, W, H, 0)
    ax.imshow(img.mean(axis=-1), cmap="gray", extent=extent)
    ax.imshow(amap, cmap=cmap, alpha=0.5, vmin=limits[0], vmax=limits[1],
              extent=extent, interpolation="bilinear")
    head = f"{name}\n" if first else ""
    if score is not None and relative:
        verdict = "flagged" if score >= 1 else "passed"
        ax.set_title(f"{head}score/thr {score:.3f} ({verdict})", fontsize=8)
    elif score is not None:
        ax.set_title(f"{head}score {score:#.4g}", fontsize=8)
    elif head:
        ax.set_title(head.strip(), fontsize=head_fs)


def select_examples(labels: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Indices of ``k`` test images to show: one normal image (when any, and k >= 2) + anomalies.

    Seeded and sorted, so the same split always gives the same examples. Returns fewer than ``k``
    indices when the split is smaller.
    """
    labels = np.asarray(labels).astype(int)
    rng = np.random.default_rng(seed)
    normal = np.flatnonzero(labels == 0)
    anomalous = np.flatnonzero(labels == 1)
    n_norm = 1 if (k >= 2 and normal.size) else 0
    n_anom = min(k - n_norm, anomalous.size)
    n_norm = min(k - n_anom, normal.size)
    pick = np.concatenate([
        rng.choice(anomalous, n_anom, replace=False) if n_anom else np.empty(0, int),
        rng.choice(normal, n_norm, replace=False) if n_norm else np.empty(0, int),
    ])
    return np.sort(pick).astype(int)
