"""t-SNE views and the global memory bank's composition.

The study's t-SNE embeds mean-pooled frozen backbone features of the training images: that view
is fixed by the backbone and says nothing about any trained model. The view that depends on the
global PatchCore model is its memory bank (the coreset patches it compares every test patch
against), coloured by the class each patch came from; :func:`memory_bank_composition` counts it.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import AdlocError
from ..io import write_csv
from .figures import class_colors, new_figure, style

BANK_TITLE = "Global {method} memory bank, coloured by source class"  # .format(method=label)
BACKBONE_TITLE = ("Frozen backbone features, mean-pooled per image\n"
                  "(the study's view: says nothing about the global model)")

#: Feature dimensions above this are first reduced by an exact (deterministic) PCA.
PCA_DIM = 50


def subsample_per_class(labels: Sequence, max_per_class: int | None, seed: int = 0) -> np.ndarray:
    """Sorted indices keeping at most ``max_per_class`` items of each label (seeded, no
    replacement); all indices when ``max_per_class`` is None."""
    labels = np.asarray(labels).astype(str)
    if max_per_class is None:
        return np.arange(labels.size)
    if max_per_class < 1:
        raise AdlocError(f"max_per_class must be >= 1, got {max_per_class}")
    rng = np.random.default_rng(seed)
    keep = []
    for cls in sorted(set(labels.tolist())):
        idx = np.flatnonzero(labels == cls)
        if idx.size > max_per_class:
            idx = rng.choice(idx, max_per_class, replace=False)
        keep.append(idx)
    return np.sort(np.concatenate(keep)) if keep else np.arange(0)


#: Features whose largest per-dimension standard deviation is at most this fraction of their
#: magnitude count as identical: scikit-learn's PCA start divides by the first component's
#: spread (at least that standard deviation), so NaN follows and its Barnes-Hut tree segfaults.
SPREAD_RTOL = 1e-10

NA_HINT = ("check the class's images (all black, or one constant colour, give identical "
           "features); the other figures and tables do not depend on this view")


def degenerate_reason(x: np.ndarray, labels: Sequence | None = None) -> str | None:
    """Why ``x`` (N, D) cannot be embedded by t-SNE, naming the classes of ``labels`` involved,
    or None: fewer than 4 points, NaN or inf features, or points that are all identical."""
    x = np.asarray(x, dtype=np.float64)
    lab = None if labels is None else np.asarray(labels).astype(str)
    if x.ndim != 2:
        return f"features must be (N, D), got shape {x.shape}"
    n = x.shape[0]
    if n < 4:
        return f"t-SNE needs at least 4 points, got {n}"
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        who = "" if lab is None else f" (classes {', '.join(sorted(set(lab[bad].tolist())))})"
        return f"{int(bad.sum())} of {n} points have NaN or inf features{who}"
    scale = max(1.0, float(np.abs(x).max()))
    if float(x.std(axis=0).max()) <= SPREAD_RTOL * scale:
        who = "" if lab is None else f" (classes {', '.join(sorted(set(lab.tolist())))})"
        return f"all {n} points have identical features{who}"
    return None


def identical_class_warnings(x: np.ndarray, labels: Sequence, what: str) -> list[str]:
    """One sentence per class of ``labels`` with two or more points whose features in ``x`` are
    all identical (e.g. an all-black class): their spread in the ``what`` view means nothing."""
    x = np.asarray(x, dtype=np.float64)
    lab = np.asarray(labels).astype(str)
    out = []
    for cls in sorted(set(lab.tolist())):
        xc = x[lab == cls]
        if xc.shape[0] < 2 or not np.isfinite(xc).all():
            continue
        if float(xc.std(axis=0).max()) <= SPREAD_RTOL * max(1.0, float(np.abs(xc).max())):
            out.append(f"class {cls}: its {xc.shape[0]} points of the t-SNE view '{what}' have "
                       f"identical features (all-black or constant images?): {NA_HINT}.")
    return out


def tsne_embed(
    x: np.ndarray, seed: int = 0, perplexity: float = 30.0, max_iter: int = 1000
) -> np.ndarray:
    """2-D t-SNE of ``x`` (N, D): scikit-learn TSNE, PCA init, fixed seed (same seed, same data,
    same output on CPU). Features wider than :data:`PCA_DIM` are first reduced by an exact PCA.
    The perplexity is capped at (N - 1) / 3 so small sets still embed. Input that t-SNE cannot
    embed (:func:`degenerate_reason`: scikit-learn would segfault on identical points) raises
    :class:`AdlocError`.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x = np.asarray(x, dtype=np.float64)
    reason = degenerate_reason(x)
    if reason is not None:
        raise AdlocError(f"tsne_embed: {reason}")
    n = x.shape[0]
    if x.shape[1] > PCA_DIM and n > PCA_DIM:
        x = PCA(n_components=PCA_DIM, svd_solver="full").fit_transform(x)
    perp = float(min(perplexity, max(1.0, (n - 1) / 3.0)))
    tsne = TSNE(n_components=2, perplexity=perp, init="pca", learning_rate="auto",
                random_state=seed, n_jobs=1, method="barnes_hut", max_iter=max_iter)
    return tsne.fit_transform(x).astype(np.float64)


def embed_view(
    x: np.ndarray, labels: Sequence, seed: int = 0, perplexity: float = 30.0,
    max_points_per_class: int | None = 600, max_iter: int = 1000,
) -> tuple[np.ndarray, np.ndarray]:
    """Subsample per class (:func:`subsample_per_class`) then :func:`tsne_embed`.
    Returns ``(coords (n, 2), labels (n,))``."""
    labels = np.asarray(labels).astype(str)
    x = np.asarray(x)
    if labels.shape[0] != x.shape[0]:
        raise AdlocError(f"embed_view: {x.shape[0]} points but {labels.shape[0]} labels")
    idx = subsample_per_class(labels, max_points_per_class, seed)
    return (tsne_embed(x[idx], seed=seed, perplexity=perplexity, max_iter=max_iter),
            labels[idx])


def safe_view(
    title: str, x: np.ndarray, labels: Sequence, seed: int = 0, perplexity: float = 30.0,
    max_points_per_class: int | None = 600, max_iter: int = 1000,
) -> tuple[tuple, list[str]]:
    """:func:`embed_view` as a panel for :func:`plot_tsne`, and warnings (sentences).

    A view t-SNE cannot embed (:func:`degenerate_reason`) becomes an N/A panel ``(title,
    None, labels, reason)`` with a warning naming its classes, instead of an error (or the
    segfault scikit-learn gives on identical points); classes whose points are identical among
    themselves (:func:`identical_class_warnings`) are drawn (their spread there means nothing),
    with a warning each.
    """
    labels = np.asarray(labels).astype(str)
    x = np.asarray(x)
    if labels.shape[0] != x.shape[0]:
        raise AdlocError(f"safe_view: {x.shape[0]} points but {labels.shape[0]} labels")
    idx = subsample_per_class(labels, max_points_per_class, seed)
    xs, ls = np.asarray(x[idx], dtype=np.float64), labels[idx]
    what = title.splitlines()[0]
    reason = degenerate_reason(xs, ls)
    if reason is not None:
        return (title, None, ls, reason), [
            f"t-SNE view '{what}' not drawn (N/A in figures/tsne.png): {reason}; {NA_HINT}."]
    warnings = identical_class_warnings(xs, ls, what)
    coords = tsne_embed(xs, seed=seed, perplexity=perplexity, max_iter=max_iter)
    return (title, coords, ls), warnings


def plot_tsne(views: Sequence[tuple], classes: Sequence[str] | None = None):
    """Side-by-side panels, one per ``(title, coords (n, 2), labels (n,))``; the same colour per
    class in every panel. t-SNE axes carry no units, so ticks are hidden. A view ``(title, None,
    labels, reason)`` (:func:`safe_view`) is an N/A panel that says why."""
    import textwrap

    from matplotlib.lines import Line2D

    if not views:
        raise AdlocError("plot_tsne: no views")
    if classes is None:
        classes = sorted({str(c) for v in views for c in np.asarray(v[2]).tolist()})
    colors = class_colors(list(classes))
    with style():
        fig = new_figure(4.6 * len(views) + 1.4, 4.6)
        axes = fig.subplots(1, len(views), squeeze=False)[0]
        for ax, (title, coords, labels, *why) in zip(axes, views):
            labels = np.asarray(labels).astype(str)
            if coords is None:
                ax.set_title(f"N/A: {title}", fontsize=9)
                ax.text(0.5, 0.5, "N/A: t-SNE not computed\n\n" + textwrap.fill(
                    str(why[0] if why else "degenerate features"), 44), ha="center",
                    va="center", transform=ax.transAxes, fontsize=8, color="0.25")
                ax.set_xticks([])
                ax.set_yticks([])
                continue
            coords = np.asarray(coords)
            size = 6 if coords.shape[0] > 800 else 14
            for cls in classes:
                m = labels == cls
                if m.any():
                    ax.scatter(coords[m, 0], coords[m, 1], s=size, color=colors[cls], alpha=0.7,
                               linewidths=0, label=f"{cls} ({int(m.sum())})")
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("t-SNE 1")
            ax.set_ylabel("t-SNE 2")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.text(0.01, 0.01, f"{coords.shape[0]} points", transform=ax.transAxes,
                    fontsize=7, color="0.4", va="bottom")
        handles = [Line2D([], [], marker="o", linestyle="none", color=colors[c], label=c)
                   for c in classes]
        fig.legend(handles=handles, loc="outside right upper", title="class", frameon=False)
    return fig


def duplicate_train_images(train_sha256: Mapping[str, Sequence[str]]) -> dict[str, tuple[int, list[str]]]:
    """Class -> (how many of its training images are byte-identical to a training image of
    another class, those classes sorted), from the sha256s the split files record.

    The coreset never picks a patch twice, so of two classes sharing images only one gets
    bank entries for them: the other's patches are covered, not missing.
    """
    owners: dict[str, set[str]] = {}
    for cls, hashes in train_sha256.items():
        for h in hashes:
            if h:
                owners.setdefault(h, set()).add(str(cls))
    out = {}
    for cls, hashes in train_sha256.items():
        others = [owners.get(h, set()) - {str(cls)} for h in hashes if h]
        out[str(cls)] = (sum(1 for o in others if o), sorted(set().union(*others)) if others else [])
    return out


def pooled_backbone_features(feature_sets: Sequence, classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The study's view: each image's stage maps mean-pooled over space, layers concatenated
    (``(N, sum of channels)`` float32, each map converted to float32 first, so float16 feature
    sets (``load_features(..., keep_dtype=True)``) give the same values), and each image's class
    (object array).

    ``feature_sets``: one :class:`adloc.features.FeatureSet` per class, in the order of ``classes``.
    """
    if len(feature_sets) != len(classes):
        raise AdlocError(f"pooled_backbone_features: {len(feature_sets)} feature sets for "
                         f"{len(classes)} classes")
    pooled, labels = [], []
    for fs, cls in zip(feature_sets, classes):
        pooled.append(np.concatenate(
            [v.float().mean(dim=(2, 3)).numpy() for v in fs.layers.values()], axis=1))
        labels += [cls] * len(fs.paths)
    return np.concatenate(pooled), np.asarray(labels, dtype=object)


def bank_by_source(model) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """A fitted global PatchCore model's memory bank ``(M, D)``, the source class of every bank
    entry (object array), and the training patches per class the bank was selected from."""
    if model.bank_origin is None or model.source_names is None or model.train_sources is None:
        raise AdlocError("the model was fitted without source classes (a per-class "
                         "model?); the memory-bank view needs the global model")
    source = np.asarray(model.source_names, dtype=object)[model.bank_origin.numpy()]
    per_image = model.grid[0] * model.grid[1]
    patches = {c: n * per_image for c, n in model.train_sources.items()}
    return model.bank.numpy(), source, patches


def memory_bank_composition(
    bank_source: Sequence,
    n_train_patches_per_class: Mapping[str, int],
    duplicates: Mapping[str, tuple[int, Sequence[str]]] | None = None,
) -> pd.DataFrame:
    """Where the global memory bank's entries came from.

    Args:
        bank_source: (M,) class name of each memory-bank entry.
        n_train_patches_per_class: class -> number of training patches the coreset was drawn
            from (train images x patches per image). Its order is the row order.
        duplicates: :func:`duplicate_train_images` output (None: not known, columns blank).

    Returns:
        columns ``class``, ``bank_entries``, ``bank_share`` (of the bank), ``train_patches``,
        ``kept_share`` (entries / training patches), ``duplicate_train_images`` (training images
        byte-identical to another class's: their patches can be in the bank under that class's
        name, so few or 0 entries then mean "covered", not "not represented") and
        ``duplicate_of``; a last ``total`` row.
    """
    src = np.asarray(bank_source).astype(str)
    unknown = sorted(set(src.tolist()) - set(map(str, n_train_patches_per_class)))
    if unknown:
        raise AdlocError(
            f"memory_bank_composition: bank entries from classes {unknown} that have no "
            "training-patch count"
        )
    m = src.size
    rows = []
    for cls, n_train in n_train_patches_per_class.items():
        k = int((src == str(cls)).sum())
        dup = None if duplicates is None else duplicates.get(str(cls), (0, []))
        rows.append({
            "class": str(cls), "bank_entries": k, "bank_share": k / m if m else float("nan"),
            "train_patches": int(n_train),
            "kept_share": k / n_train if n_train else float("nan"),
            "duplicate_train_images": None if dup is None else int(dup[0]),
            "duplicate_of": None if dup is None else ";".join(dup[1]),
        })
    total_train = int(sum(int(v) for v in n_train_patches_per_class.values()))
    rows.append({
        "class": "total", "bank_entries": m, "bank_share": 1.0 if m else float("nan"),
        "train_patches": total_train, "kept_share": m / total_train if total_train else float("nan"),
        "duplicate_train_images": None if duplicates is None else int(
            sum(int(v[0]) for v in duplicates.values())),
        "duplicate_of": None,
    })
    df = pd.DataFrame(rows)
    df["duplicate_train_images"] = df["duplicate_train_images"].astype("Int64")
    return df


def covered_sentences(df: pd.DataFrame) -> list[str]:
    """One sentence per class of a composition table whose training images duplicate another
    class's (so its bank entries undercount what the bank covers of it)."""
    out = []
    if "duplicate_train_images" not in df:
        return out
    for _, r in df[df["class"] != "total"].iterrows():
        n = r["duplicate_train_images"]
        if pd.isna(n) or int(n) == 0:
            continue
        of = str(r["duplicate_of"]).replace(";", ", ") if isinstance(r["duplicate_of"], str) else "?"
        k = int(r["bank_entries"])
        if k == 0:
            out.append(
                f"{r['class']}: 0 bank entries, but its {int(n)} training images are byte-identical "
                f"to training images of {of}, whose entries already cover their patches (the "
                "coreset never picks a patch twice): covered, not unrepresented."
            )
        else:
            out.append(
                f"{r['class']}: {int(n)} of its training images are byte-identical to training "
                f"images of {of}; its {k} bank entries cover those shared patches as well."
            )
    return out


def write_bank_composition(path, df: pd.DataFrame) -> None:
    write_csv(path, df)


def read_bank_composition(path) -> pd.DataFrame:
    """Read a table written by :func:`write_bank_composition`."""
    from .tables import read_table_csv

    df = read_table_csv(path, "memory bank composition", dtype={"class": str, "duplicate_of": str})
    df["class"] = df["class"].astype(object)
    if "duplicate_train_images" in df:
        df["duplicate_train_images"] = df["duplicate_train_images"].astype("Int64")
        df["duplicate_of"] = [None if pd.isna(v) else v for v in df["duplicate_of"]]
    return df
