"""Reader for datasets in the MVTec AD folder layout.

Layout (any class names; image extensions png/jpg/jpeg/bmp/tif/tiff, case-insensitive)::

    {root}/{class}/train/good/*.png
    {root}/{class}/test/good/*.png
    {root}/{class}/test/<defect>/*.png
    {root}/{class}/ground_truth/<defect>/<stem>_mask.png

Every path a :class:`Sample` carries is a POSIX path *relative to the dataset root*
(``carpet/test/hole/000.png``), so split files and caches stay valid when the dataset moves.

:func:`scan_class` only lists files and checks the layout (no image is decoded); image and mask
sizes are checked when they are loaded (:func:`load_mask` with ``shape``). Every problem raises
:class:`adloc.errors.DatasetError` whose message names the offending path and says how to fix it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DatasetError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
MASK_SUFFIX = "_mask"

PathLike = str | os.PathLike


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


def list_classes(root: PathLike) -> list[str]:
    """Class folders under ``root`` (sorted): non-hidden folders that contain ``train/``."""
    root = Path(root)
    if not root.is_dir():
        return []
    return [p.name for p in _subdirs(root) if (p / "train").is_dir()]


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def scan_class(root: PathLike, cls: str) -> ClassIndex:
    """List and validate the files of class ``cls`` under dataset ``root``.

    Raises :class:`DatasetError` (naming the path and the fix) for: a missing dataset root; a
    missing class folder (the classes found are listed); a missing or empty ``train/good``; no
    test images; a defect image without a mask when the class has a ``ground_truth`` folder; a
    mask in ``ground_truth`` with no matching test image. A class with no ``ground_truth`` folder
    is allowed: ``has_masks`` is False and every mask is None (pixel metrics are then N/A).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(
            f"dataset root not found: {root}. Set dataset.root in the config to the folder that "
            "holds the class folders (e.g. .../mvtec_anomaly_detection), or use the embedded "
            "synthetic dataset."
        )
    cdir = root / cls
    if not cdir.is_dir():
        found = list_classes(root)
        raise DatasetError(
            f"class folder not found: {cdir}. Classes found under {root}: "
            f"{', '.join(found) if found else '(none)'}. Fix the config key classes (or dataset.root), "
            "or rename the folder."
        )

    train_dir = cdir / "train" / "good"
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
    train = [Sample(_rel(p, root), 0, "good", None) for p in train_imgs]

    test_dir = cdir / "test"
    if not test_dir.is_dir():
        raise DatasetError(
            f"missing test folder {test_dir}: an MVTec-format class needs {cls}/test/good/ and/or "
            f"{cls}/test/<defect>/ with images. Add them, or fix dataset.root."
        )
    gt_dir = cdir / "ground_truth"
    has_masks = gt_dir.is_dir()

    test: list[Sample] = []
    used_masks: set[str] = set()
    for ddir in _subdirs(test_dir):
        defect = ddir.name
        label = 0 if defect == "good" else 1
        masks_by_stem: dict[str, Path] = {}
        if label and has_masks:
            mdir = gt_dir / defect
            if mdir.is_dir():
                for m in _images(mdir):
                    if m.stem.endswith(MASK_SUFFIX):
                        masks_by_stem.setdefault(m.stem[: -len(MASK_SUFFIX)], m)
        for img in _images(ddir):
            mask = None
            if label and has_masks:
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
    if not test:
        raise DatasetError(
            f"no test images in {test_dir}: expected images in {cls}/test/good/ and "
            f"{cls}/test/<defect>/."
        )

    if has_masks:  # cheap consistency check: a mask whose image is missing means a naming slip
        for mdir in _subdirs(gt_dir):
            for m in _images(mdir):
                rel = _rel(m, root)
                if rel not in used_masks and mdir.name != "good":
                    raise DatasetError(
                        f"mask {rel} has no matching image in {cls}/test/{mdir.name}/ (masks are "
                        f"named <image stem>{MASK_SUFFIX}.png). Rename or remove it."
                    )

    return ClassIndex(root=root, name=cls, train=train, test=test, has_masks=has_masks)


def _resolve(root: PathLike, rel_path: PathLike | None) -> tuple[Path, str]:
    """Full path plus the name used in messages (the relative path when given)."""
    if rel_path is None:
        return Path(root), str(root)
    return Path(root) / rel_path, Path(rel_path).as_posix() + f" (under {root})"


def _open_loaded(path: Path, name: str, what: str) -> Image.Image:
    """Open and fully decode ``path``; truncated or unreadable files raise DatasetError.

    PIL raises ``OSError: image file is truncated`` from ``.load()`` as long as
    ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` stays False (adloc never sets it).
    """
    try:
        im = Image.open(path)
        im.load()
        return im
    except FileNotFoundError:
        raise DatasetError(
            f"{what} not found: {name}. Check the dataset folder, or rerun the splits rule if "
            "the dataset changed."
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(
            f"{what} {name} is unreadable or truncated ({type(exc).__name__}: {exc}). "
            "Replace the file with an intact copy."
        ) from None


def _to_uint8_rgb(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(im).astype(np.float64)
        if mode == "F":  # float images: assume [0, 1] when they fit, else 16-bit range
            scale = 255.0 if arr.max(initial=0) <= 1.0 else 255.0 / 65535.0
        else:  # 16-bit grayscale (PNG 16-bit opens as I;16 or I)
            scale = 255.0 / 65535.0
        g = np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2)
    if mode != "RGB":
        im = im.convert("RGB")  # L, 1, P (palette), RGBA/LA (alpha dropped), CMYK, YCbCr ...
    return np.asarray(im, dtype=np.uint8).copy()


def load_image(root: PathLike, rel_path: PathLike | None = None) -> np.ndarray:
    """Decode an image to a uint8 ``(H, W, 3)`` RGB array.

    Call as ``load_image(root, "carpet/test/hole/000.png")`` or ``load_image(full_path)``.
    Grayscale, palette and 16-bit images are converted to RGB (16-bit scaled by 255/65535);
    an alpha channel is dropped. An unreadable or truncated file raises DatasetError naming it.
    """
    path, name = _resolve(root, rel_path)
    with _open_loaded(path, name, "image") as im:
        return _to_uint8_rgb(im)


def image_size(root: PathLike, rel_path: PathLike | None = None) -> tuple[int, int]:
    """``(H, W)`` from the file header only (cheap); DatasetError if unreadable."""
    path, name = _resolve(root, rel_path)
    try:
        with Image.open(path) as im:
            w, h = im.size
    except FileNotFoundError:
        raise DatasetError(f"image not found: {name}.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(
            f"image {name} is unreadable ({type(exc).__name__}: {exc}). Replace the file."
        ) from None
    return h, w


def load_mask(
    root: PathLike, rel_path: PathLike | None = None, shape: tuple[int, ...] | None = None
) -> np.ndarray:
    """Decode a ground-truth mask to a bool ``(H, W)`` array (any pixel > 0 is anomalous).

    MVTec masks are 0/255, for which ``> 0`` and ``> 127`` are equivalent; ``> 0`` also accepts
    0/1 masks. Colour or palette masks are converted to grayscale first. If ``shape`` (the
    image's ``(H, W)`` or ``(H, W, C)``) is given and differs, raises DatasetError naming the
    mask and both sizes.
    """
    path, name = _resolve(root, rel_path)
    with _open_loaded(path, name, "mask") as im:
        if im.mode not in ("1", "L", "I", "I;16", "I;16B", "I;16L", "F"):
            im = im.convert("L")
        m = np.asarray(im) > 0
    if m.ndim != 2:  # pragma: no cover - every mode above decodes to 2-D
        m = m.any(axis=-1)
    if shape is not None:
        h, w = int(shape[0]), int(shape[1])
        if m.shape != (h, w):
            raise DatasetError(
                f"mask {name} is {m.shape[0]}x{m.shape[1]} (HxW) but its image is {h}x{w}. "
                "Regenerate or resize the mask to its image's size."
            )
    return m
