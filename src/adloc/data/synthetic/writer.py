"""Write classes in MVTec AD layout: parallel rendering, atomic class folders, provenance."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from ...errors import DatasetError
from .counts import (
    DEFAULT_STYLE,
    DEFECTS,
    STUDY_CLASSES,
    analogue_of,
    check_counts,
    class_seed,
    image_rng,
    kind_of,
    mvtec_counts,
    style_of,
)
from .primitives import SOURCES
from .render import render_pair

GENERATOR_VERSION = 1


def save_png(path: Path, arr: np.ndarray) -> None:
    Image.fromarray(arr).save(path, format="PNG", compress_level=3)


def write_image(task: tuple) -> None:
    """Render and write one image (and its mask): a task of :func:`generate_class`."""
    kind, style, size, cseed, group, index, defect, image_path, mask_path = task
    rng = image_rng(cseed, group, index)
    good, bad, mask = render_pair(kind, size, rng, defect=defect, style=style)
    if defect is None:
        save_png(image_path, good)
    else:
        save_png(image_path, bad)
        save_png(mask_path, mask.astype(np.uint8) * 255)


def run_tasks(tasks: list[tuple], workers: int) -> None:
    workers = int(workers)
    if workers < 0:
        raise DatasetError(f"workers must be >= 0 (0: one per CPU), got {workers}.")
    if workers == 0:
        workers = os.cpu_count() or 1
    workers = min(workers, len(tasks))
    if workers <= 1:
        for t in tasks:
            write_image(t)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # fork: no re-import of the caller's main module (a Snakemake script runs at import)
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    chunk = max(1, len(tasks) // (workers * 4))
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        for _ in pool.map(write_image, tasks, chunksize=chunk):
            pass


def generate_class(
    root: str | os.PathLike,
    cls: str,
    counts: dict[str, int] | None = None,
    image_size: int = 256,
    seed: int = 0,
    kind: str | None = None,
    workers: int = 1,
) -> Path:
    """Write class ``cls`` in MVTec layout under ``root``; returns ``root/cls``.

    ``counts``: ``{"train_good", "test_good", "anomalies"}`` (default DEFAULT_COUNTS; see
    :func:`mvtec_counts`). Anomaly ``i`` gets defect type ``DEFECTS[kind][i % n]`` and file index
    ``i // n`` in its folder. The class is built in a hidden temporary sibling folder and renamed
    onto ``root/cls`` (an old one is removed), so a killed run never leaves a half class. Also
    writes ``root/cls/synthetic.json`` (parameters, for provenance). Concurrent generation of
    the same class into the same root is not supported.

    ``workers``: processes that render and write images in parallel (0: one per CPU). Every
    image has its own seed, so the files are byte-identical for any number of workers.
    """
    kind = kind_of(cls, kind)
    style = style_of(cls, kind)
    c = check_counts(counts)
    size = int(image_size)
    if not 8 <= size <= 4096:
        raise DatasetError(f"image_size must be between 8 and 4096, got {image_size}.")
    if not cls or "/" in cls or cls.startswith("."):
        raise DatasetError(f"invalid class name '{cls}'.")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    target = root / cls
    for pattern in (f".{cls}.tmp-*", f".{cls}.old-*"):  # left by a killed run
        for stale in root.glob(pattern):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{cls}.tmp-", dir=root))
    os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; the class folder is an ordinary folder
    try:
        cseed = class_seed(seed, cls)
        defects = DEFECTS[kind]
        folders = {"train_good": tmp / "train" / "good", "test_good": tmp / "test" / "good"}
        for f in folders.values():
            f.mkdir(parents=True)
        tasks = [
            (kind, style, size, cseed, group, i, None, folders[group] / f"{i:03d}.png", None)
            for group in ("train_good", "test_good")
            for i in range(c[group])
        ]
        for d in defects[: max(0, min(len(defects), c["anomalies"]))]:
            (tmp / "test" / d).mkdir(parents=True)
            (tmp / "ground_truth" / d).mkdir(parents=True)
        for i in range(c["anomalies"]):
            d = defects[i % len(defects)]
            j = i // len(defects)
            tasks.append(
                (
                    kind,
                    style,
                    size,
                    cseed,
                    "anomalies",
                    i,
                    d,
                    tmp / "test" / d / f"{j:03d}.png",
                    tmp / "ground_truth" / d / f"{j:03d}_mask.png",
                )
            )
        run_tasks(tasks, workers)
        meta = {
            "class": cls,
            "kind": kind,
            "analogue": analogue_of(cls, kind),
            "counts": c,
            "image_size": size,
            "seed": int(seed),
            "generator_version": GENERATOR_VERSION,
            "defects": list(defects),
            "sources": [f"skimage.data.{s}" for s in SOURCES],
        }
        if style != DEFAULT_STYLE[kind]:  # (the original three classes' files stay as they were)
            meta["style"] = style
        (tmp / "synthetic.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{cls}.old-", dir=root))
            os.replace(target, old / cls)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def generate_dataset(
    root: str | os.PathLike,
    classes: list[str] | None = None,
    image_size: int = 256,
    seed: int = 0,
    use_mvtec_counts: bool = False,
    counts: dict[str, int] | None = None,
    workers: int = 1,
) -> list[Path]:
    """Generate several classes (default: STUDY_CLASSES, the study's three); ``workers`` as
    :func:`generate_class`."""
    out = []
    for cls in classes or list(STUDY_CLASSES):
        cnt = mvtec_counts(cls) if use_mvtec_counts else counts
        out.append(
            generate_class(root, cls, cnt, image_size=image_size, seed=seed, workers=workers)
        )
    return out
