"""Reader for datasets in the MVTec AD folder layout.

Layout (any class names; image extensions png/jpg/jpeg/bmp/tif/tiff, case-insensitive)::

    {root}/{class}/train/good/*.png
    {root}/{class}/test/good/*.png
    {root}/{class}/test/<defect>/*.png
    {root}/{class}/ground_truth/<defect>/<stem>_mask.png

The normal folders are found case-insensitively (``train/Good``, ``test/GOOD``); a test folder
whose name only *looks* normal (``OK``, ``normal``, ``good_2``, ...) stops the scan, since it
would otherwise be read as a defect type and its images labelled anomalous. Masks must be
lossless (PNG, BMP, TIFF): a JPEG mask's compression noise would grow every defect once
binarised, so ``_mask.jpg`` is an error, not a guess. Links (symbolic links to folders or files)
are followed.

Decoding (EXIF orientation, 16-bit bit depth) is :mod:`adloc.data.imageio`'s; its functions are
re-exported here.

Every path a :class:`Sample` carries is a POSIX path *relative to the dataset root*
(``carpet/test/hole/000.png``), so split files and caches stay valid when the dataset moves.

:func:`scan_class` only lists files and checks the layout (no image is decoded); image and mask
sizes are checked when they are loaded (:func:`load_mask` with ``shape``). Every problem raises
:class:`adloc.errors.DatasetError` whose message names the offending path and says how to fix it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DatasetError
from .imageio import (  # noqa: F401  (re-exported: the reader's public API)
    ImageHeader,
    image_header,
    image_size,
    infer_bit_depth,
    load_image,
)
from .masks import load_mask  # noqa: F401  (re-exported: the reader's public API)

PathLike = str | os.PathLike

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: Lossy formats: accepted for images, refused for masks (compression noise is not a defect).
LOSSY_EXTENSIONS = (".jpg", ".jpeg")
MASK_SUFFIX = "_mask"
NORMAL = "good"
#: Test folder names (lower case, "-"/" " read as "_") that look like normal images but are
#: not ``good``: stopping on them beats labelling normal images anomalous.
NORMAL_LOOKALIKES = (
    "ok", "normal", "nominal", "no_defect", "nodefect", "defect_free", "defectfree", "clean",
    "negative", "pass", "passed", "anomaly_free", "good_images", "goods",
)


@dataclass(frozen=True)
class Sample:
    """One image of a class.

    ``path``/``mask`` are POSIX paths relative to the dataset root; ``label`` is 0 (good) or 1
    (anomalous); ``defect`` is ``"good"`` or the defect folder name; ``mask`` is None for good
    images and for classes without a ``ground_truth`` folder.
    """

    path: str
    label: int
    defect: str
    mask: str | None = None


@dataclass
class ClassIndex:
    """The files of one class: ``train`` = train/good sorted by file name; ``test`` = every
    test/<folder> sorted by folder name then file name (``good`` included, in its sorted place)."""

    root: Path
    name: str
    train: list[Sample] = field(default_factory=list)
    test: list[Sample] = field(default_factory=list)
    has_masks: bool = False

    @property
    def defects(self) -> list[str]:
        """Sorted defect folder names (``good`` excluded)."""
        return sorted({s.defect for s in self.test if s.label == 1})


def _is_image(p: Path) -> bool:
    return p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS


def _images(folder: Path) -> list[Path]:
    """Image files of ``folder`` sorted by file name (plain string order, as ``sorted(glob)``)."""
    return sorted((p for p in folder.iterdir() if _is_image(p)), key=lambda p: p.name)


def _subdirs(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.name,
    )


def normal_folder(parent: Path, where: str) -> Path | None:
    """The subfolder of ``parent`` named ``good`` in any case; None if none; DatasetError if
    two differ only in case (``good`` and ``Good``): which one is normal is then ambiguous."""
    if not parent.is_dir():
        return None
    found = [p for p in _subdirs(parent) if p.name.lower() == NORMAL]
    if len(found) > 1:
        names = ", ".join(f"{where}/{p.name}" for p in found)
        raise DatasetError(
            f"{names} differ only in case: which one holds the normal images is ambiguous. "
            f"Merge them into one {where}/good folder."
        )
    return found[0] if found else None


def looks_normal(name: str) -> bool:
    """True for folder names such as OK, Normal, good_2, no-defect: normal-looking, not ``good``."""
    n = re.sub(r"[\s\-]+", "_", name.strip().lower())
    return n != NORMAL and (n in NORMAL_LOOKALIKES or n.startswith(NORMAL))


def list_classes(root: PathLike) -> list[str]:
    """Class folders under ``root`` (sorted): non-hidden folders that contain ``train/``."""
    root = Path(root)
    if not root.is_dir():
        return []
    return [p.name for p in _subdirs(root) if (p / "train").is_dir()]


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def check_class_folders(root: PathLike, classes) -> None:
    """DatasetError unless ``root`` and every ``root/<class>`` folder exist (the message lists
    the classes found). Cheap: the workflow calls it when it builds its job graph, so a missing
    class stops ``snakemake -n`` instead of its first job."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise DatasetError(
            f"dataset root {root} is a file, not a folder. Set dataset.root to the folder that "
            "holds the class folders (e.g. .../mvtec_anomaly_detection), or unpack the archive "
            "there first."
        )
    if not root.is_dir():
        raise DatasetError(
            f"dataset root not found: {root}. Set dataset.root in the config to the folder that "
            "holds the class folders (e.g. .../mvtec_anomaly_detection), or use the embedded "
            "synthetic dataset."
        )
    missing = [str(root / c) for c in classes if not (root / c).is_dir()]
    if missing:
        found = list_classes(root)
        raise DatasetError(
            f"class folder not found: {', '.join(missing)}. Classes found under {root}: "
            f"{', '.join(found) if found else '(none)'}. Fix the config key classes (or dataset.root), "
            "or rename the folder."
        )


def class_files(folder: PathLike) -> list[str]:
    """Every file under ``folder``, links to folders and files followed (each real folder
    visited once, so a link loop ends), sorted: the inputs that make a class's jobs rerun."""
    out: list[str] = []
    seen: set[str] = set()
    for top, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        out += [os.path.join(top, f) for f in files if os.path.isfile(os.path.join(top, f))]
    return sorted(out)


def scan_class(root: PathLike, cls: str) -> ClassIndex:
    """List and validate the files of class ``cls`` under dataset ``root``.

    Raises :class:`DatasetError` (naming the path and the fix) for: a missing dataset root; a
    missing class folder (the classes found are listed); a missing or empty ``train/good``; no
    test images; a defect image without a mask when the class has a ``ground_truth`` folder; a
    mask in ``ground_truth`` with no matching test image. A class with no ``ground_truth`` folder
    is allowed: ``has_masks`` is False and every mask is None (pixel metrics are then N/A).
    """
    root = Path(root)
    check_class_folders(root, [cls])
    cdir = root / cls
    train = _train_samples(root, cls)
    test_dir = cdir / "test"
    if not test_dir.is_dir():
        raise DatasetError(
            f"missing test folder {test_dir}: an MVTec-format class needs {cls}/test/good/ and/or "
            f"{cls}/test/<defect>/ with images. Add them, or fix dataset.root."
        )
    gt_dir = cdir / "ground_truth"
    has_masks = gt_dir.is_dir()
    test, used_masks = _test_samples(root, cls, gt_dir if has_masks else None)
    if not test:
        raise DatasetError(
            f"no test images in {test_dir}: expected images in {cls}/test/good/ and "
            f"{cls}/test/<defect>/."
        )
    if has_masks:
        _check_masks_used(root, cls, gt_dir, used_masks)
    return ClassIndex(root=root, name=cls, train=train, test=test, has_masks=has_masks)


def _train_samples(root: Path, cls: str) -> list[Sample]:
    """The class's ``train/good`` images (the normal folder in any case)."""
    cdir = root / cls
    train_dir = normal_folder(cdir / "train", f"{cls}/train") or cdir / "train" / NORMAL
    if not train_dir.is_dir():
        raise DatasetError(
            f"missing training folder {train_dir}: an MVTec-format class needs "
            f"{cls}/train/good/ with anomaly-free images. Move the class's training images there, "
            "or fix dataset.root."
        )
    train_imgs = _images(train_dir)
    if not train_imgs:
        raise DatasetError(
            f"no training images in {train_dir} (expected *.png/*.jpg/...). Put the class's "
            "anomaly-free training images there."
        )
    return [Sample(_rel(p, root), 0, "good", None) for p in train_imgs]


def _defect_masks(root: Path, gt_dir: Path, defect: str) -> dict[str, Path]:
    """Image stem -> mask file of one defect type (``ground_truth/<defect>/<stem>_mask.*``)."""
    masks: dict[str, Path] = {}
    mdir = gt_dir / defect
    if mdir.is_dir():
        for m in _images(mdir):
            if m.stem.endswith(MASK_SUFFIX):
                _check_lossless_mask(m, root)
                masks.setdefault(m.stem[: -len(MASK_SUFFIX)], m)
    return masks


def _test_samples(root: Path, cls: str, gt_dir: Path | None) -> tuple[list[Sample], set[str]]:
    """The class's test images, labelled by folder (test/good normal, every other a defect),
    with their masks when the class has ``ground_truth`` (``gt_dir``); and the masks used."""
    test_dir = root / cls / "test"
    good_test = normal_folder(test_dir, f"{cls}/test")
    test: list[Sample] = []
    used_masks: set[str] = set()
    for ddir in _subdirs(test_dir):
        label = 0 if ddir == good_test else 1
        defect = NORMAL if label == 0 else ddir.name
        if label and looks_normal(defect):
            raise DatasetError(
                f"test folder {_rel(ddir, root)} (under {root}) looks like a folder of normal "
                f"images, but only test/good is read as normal: every other test folder is a "
                f"defect type and its images would be labelled anomalous. Rename it to "
                f"{cls}/test/good if its images are defect-free (merge it into test/good if that "
                "exists), or give the defect type a name that does not look normal."
            )
        with_masks = bool(label and gt_dir is not None)
        masks_by_stem = _defect_masks(root, gt_dir, defect) if with_masks else {}
        for img in _images(ddir):
            mask = None
            if with_masks:
                m = masks_by_stem.get(img.stem)
                if m is None:
                    raise DatasetError(
                        f"defect image {_rel(img, root)} has no mask: expected "
                        f"{cls}/ground_truth/{defect}/{img.stem}{MASK_SUFFIX}.png under {root}. "
                        "Add the mask, or remove the whole ground_truth folder of the class to "
                        "run without pixel metrics."
                    )
                mask = _rel(m, root)
                used_masks.add(mask)
            test.append(Sample(_rel(img, root), label, defect, mask))
    return test, used_masks


def _check_masks_used(root: Path, cls: str, gt_dir: Path, used_masks: set[str]) -> None:
    """A mask whose image is missing means a naming slip: stop, naming it (cheap)."""
    for mdir in _subdirs(gt_dir):
        for m in _images(mdir):
            rel = _rel(m, root)
            if rel not in used_masks and mdir.name.lower() != NORMAL:
                raise DatasetError(
                    f"mask {rel} has no matching image in {cls}/test/{mdir.name}/ (masks are "
                    f"named <image stem>{MASK_SUFFIX}.png). Rename or remove it."
                )


def _check_lossless_mask(mask: Path, root: Path) -> None:
    if mask.suffix.lower() in LOSSY_EXTENSIONS:
        raise DatasetError(
            f"mask {_rel(mask, root)} (under {root}) is a JPEG: lossy compression adds grey "
            "noise around every edge, which a binarised mask reads as defect pixels (larger "
            "defects, lower pixel metrics). Export the masks losslessly as "
            f"<image stem>{MASK_SUFFIX}.png (or .bmp/.tif) from the original drawing; "
            "converting the JPEG keeps its noise."
        )
