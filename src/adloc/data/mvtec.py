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

Images are decoded with their EXIF orientation applied (``PIL.ImageOps.exif_transpose``, as
photo viewers show them), masks likewise; 16-bit images are scaled by ``255 / (2**bit_depth -
1)`` where ``bit_depth`` is the class's (``dataset.bit_depth``, or inferred from the largest
value by :func:`infer_bit_depth` and reported), not always by 255/65535.

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

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import DatasetError

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
#: 16-bit (and 32-bit integer) PIL modes, scaled by the class's bit depth.
HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
#: Bit depths :func:`infer_bit_depth` chooses from (common camera sensors).
BIT_DEPTHS = (8, 10, 12, 14, 16)
#: EXIF orientation tag and the transposes of its values 2..8, for messages.
EXIF_ORIENTATION = 0x0112
_ORIENTATION_TEXT = {
    2: "mirrored", 3: "rotated 180°", 4: "flipped", 5: "transposed", 6: "rotated 90°",
    7: "transversed", 8: "rotated 270°",
}

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
    train = [Sample(_rel(p, root), 0, "good", None) for p in train_imgs]

    test_dir = cdir / "test"
    if not test_dir.is_dir():
        raise DatasetError(
            f"missing test folder {test_dir}: an MVTec-format class needs {cls}/test/good/ and/or "
            f"{cls}/test/<defect>/ with images. Add them, or fix dataset.root."
        )
    gt_dir = cdir / "ground_truth"
    has_masks = gt_dir.is_dir()

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
        masks_by_stem: dict[str, Path] = {}
        if label and has_masks:
            mdir = gt_dir / defect
            if mdir.is_dir():
                for m in _images(mdir):
                    if m.stem.endswith(MASK_SUFFIX):
                        _check_lossless_mask(m, root)
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
                if rel not in used_masks and mdir.name.lower() != NORMAL:
                    raise DatasetError(
                        f"mask {rel} has no matching image in {cls}/test/{mdir.name}/ (masks are "
                        f"named <image stem>{MASK_SUFFIX}.png). Rename or remove it."
                    )

    return ClassIndex(root=root, name=cls, train=train, test=test, has_masks=has_masks)


def _check_lossless_mask(mask: Path, root: Path) -> None:
    if mask.suffix.lower() in LOSSY_EXTENSIONS:
        raise DatasetError(
            f"mask {_rel(mask, root)} (under {root}) is a JPEG: lossy compression adds grey "
            "noise around every edge, which a binarised mask reads as defect pixels (larger "
            "defects, lower pixel metrics). Export the masks losslessly as "
            f"<image stem>{MASK_SUFFIX}.png (or .bmp/.tif) from the original drawing; "
            "converting the JPEG keeps its noise."
        )


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


def _orientation(im: Image.Image) -> int:
    """EXIF orientation (1..8) of an opened image; 1 when absent or unreadable."""
    try:
        o = im.getexif().get(EXIF_ORIENTATION, 1)
    except (OSError, SyntaxError, ValueError, TypeError):  # a damaged EXIF block: no tag
        return 1
    return int(o) if isinstance(o, int) and 1 <= o <= 8 else 1


def _upright(im: Image.Image) -> Image.Image:
    """``im`` with its EXIF orientation applied (as viewers display it); ``im`` when none."""
    return ImageOps.exif_transpose(im) if _orientation(im) != 1 else im


def _bit_scale(arr: np.ndarray, bit_depth: int | None, name: str) -> float:
    bits = 16 if bit_depth is None else int(bit_depth)
    top = (1 << bits) - 1
    peak = int(arr.max(initial=0))
    if peak > top:
        raise DatasetError(
            f"image {name} has values up to {peak}, above the {bits}-bit range (0..{top}) it is "
            "read with. Set dataset.bit_depth to the camera's bit depth (or null to infer it "
            "per class), then rerun from the splits rule (snakemake --forcerun splits)."
        )
    return 255.0 / top


def _to_uint8_rgb(im: Image.Image, bit_depth: int | None, name: str) -> np.ndarray:
    mode = im.mode
    if mode in HIGH_BIT_MODES or mode == "F":
        arr = np.asarray(im).astype(np.float64)
        if mode == "F":  # float images: assume [0, 1] when they fit, else 16-bit range
            scale = 255.0 if arr.max(initial=0) <= 1.0 else 255.0 / 65535.0
        else:  # 16-bit grayscale (PNG 16-bit opens as I;16 or I): the class's bit depth
            scale = _bit_scale(arr, bit_depth, name)
        g = np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2)
    if mode != "RGB":
        im = im.convert("RGB")  # L, 1, P (palette), RGBA/LA (alpha dropped), CMYK, YCbCr ...
    return np.asarray(im, dtype=np.uint8).copy()


def load_image(
    root: PathLike, rel_path: PathLike | None = None, bit_depth: int | None = None
) -> np.ndarray:
    """Decode an image to a uint8 ``(H, W, 3)`` RGB array, EXIF orientation applied.

    Call as ``load_image(root, "carpet/test/hole/000.png")`` or ``load_image(full_path)``.
    Grayscale, palette and 16-bit images are converted to RGB; an alpha channel is dropped.
    16-bit images are scaled by ``255 / (2**bit_depth - 1)`` (``bit_depth`` None: 16, the
    container's depth; the workflow passes the class's, see :func:`infer_bit_depth`); a value
    above that range raises. An unreadable or truncated file raises DatasetError naming it.
    """
    path, name = _resolve(root, rel_path)
    with _open_loaded(path, name, "image") as im:
        return _to_uint8_rgb(_upright(im), bit_depth, name)


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header says: upright ``(H, W)``, PIL mode and EXIF orientation (1..8)."""

    height: int
    width: int
    mode: str
    orientation: int = 1

    @property
    def high_bit(self) -> bool:
        return self.mode in HIGH_BIT_MODES

    @property
    def orientation_text(self) -> str:
        return _ORIENTATION_TEXT.get(self.orientation, "upright")


def image_header(root: PathLike, rel_path: PathLike | None = None) -> ImageHeader:
    """Size (after EXIF orientation), mode and orientation from the header only (cheap)."""
    path, name = _resolve(root, rel_path)
    try:
        with Image.open(path) as im:
            w, h = im.size
            mode, o = im.mode, _orientation(im)
    except FileNotFoundError:
        raise DatasetError(f"image not found: {name}.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(
            f"image {name} is unreadable ({type(exc).__name__}: {exc}). Replace the file."
        ) from None
    if o in (5, 6, 7, 8):  # a quarter turn: the upright image is W x H
        h, w = w, h
    return ImageHeader(int(h), int(w), mode, o)


def image_size(root: PathLike, rel_path: PathLike | None = None) -> tuple[int, int]:
    """Upright ``(H, W)`` (EXIF orientation applied) from the header only; DatasetError if
    unreadable."""
    hd = image_header(root, rel_path)
    return hd.height, hd.width


def infer_bit_depth(
    root: PathLike, high_bit_paths, declared: int | None = None
) -> tuple[int | None, str | None]:
    """The bit depth a class's 16-bit images are read with, and a warning when it was inferred.

    ``high_bit_paths``: the class's 16-bit images (:attr:`ImageHeader.high_bit`); only they are
    decoded. ``declared`` (``dataset.bit_depth``) wins; its range is checked when the images are
    read. Otherwise the depth is the smallest of :data:`BIT_DEPTHS` that holds the class's
    largest value, so 12-bit camera data in 16-bit PNGs keeps its 256 grey levels instead of 17.
    Returns ``(None, None)`` when there is no 16-bit image.
    """
    high = list(high_bit_paths)
    if not high:
        return None, None
    if declared is not None:
        return int(declared), None
    peak, where = -1, high[0]
    for r in high:
        path, name = _resolve(root, r)
        with _open_loaded(path, name, "image") as im:
            m = int(np.asarray(im).max(initial=0))
        if m > peak:
            peak, where = m, r
    bits = next((b for b in BIT_DEPTHS if peak < (1 << b)), 16)
    return bits, (
        f"{len(high)} 16-bit image(s); the largest value is {peak} ({Path(where).as_posix()}), "
        f"so they are read as {bits}-bit data (scaled by 255/{(1 << bits) - 1}, not 255/65535). "
        "Set dataset.bit_depth if the camera's bit depth differs."
    )


def load_mask(
    root: PathLike, rel_path: PathLike | None = None, shape: tuple[int, ...] | None = None
) -> np.ndarray:
    """Decode a ground-truth mask to a bool ``(H, W)`` array (any pixel > 0 is anomalous),
    EXIF orientation applied as for images.

    MVTec masks are 0/255, for which ``> 0`` and ``> 127`` are equivalent; ``> 0`` also accepts
    0/1 masks. Lossless masks only: :func:`scan_class` refuses JPEG masks. Colour or palette masks are converted to grayscale first. If ``shape`` (the
    image's ``(H, W)`` or ``(H, W, C)``) is given and differs, raises DatasetError naming the
    mask and both sizes.
    """
    path, name = _resolve(root, rel_path)
    with _open_loaded(path, name, "mask") as im:
        im = _upright(im)
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
