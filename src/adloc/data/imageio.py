"""Decoding images exactly: EXIF orientation, 16-bit bit depth, size from headers.

Images are decoded with their EXIF orientation applied (``PIL.ImageOps.exif_transpose``, as
photo viewers show them; masks likewise, in :mod:`adloc.data.masks`); 16-bit images are scaled by ``255 / (2**bit_depth -
1)`` where ``bit_depth`` is the class's (``dataset.bit_depth``, else the significant bits every
16-bit PNG declares in its sBIT chunk, else inferred from the largest value and reported: see
:func:`class_bit_depth`), not always by 255/65535.

Every path is given as ``(root, relative path)`` or one full path; every problem raises
:class:`adloc.errors.DatasetError` naming the file and the fix. :mod:`adloc.data.mvtec`
re-exports these functions.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from ..errors import DatasetError

PathLike = str | os.PathLike

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


def resolve_path(root: PathLike, rel_path: PathLike | None) -> tuple[Path, str]:
    """Full path plus the name used in messages (the relative path when given)."""
    if rel_path is None:
        return Path(root), str(root)
    return Path(root) / rel_path, Path(rel_path).as_posix() + f" (under {root})"


def open_loaded(path: Path, name: str, what: str) -> Image.Image:
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


def _orientation(im: Image.Image, get_exif=None) -> int:
    """EXIF orientation (1..8) of an opened image; 1 when absent or unreadable.
    ``get_exif``: how to read its EXIF (default ``im.getexif``)."""
    try:
        o = (get_exif or im.getexif)().get(EXIF_ORIENTATION, 1)
    except (OSError, SyntaxError, ValueError, TypeError):  # a damaged EXIF block: no tag
        return 1
    return int(o) if isinstance(o, int) and 1 <= o <= 8 else 1


def _png_reads_more_on_load(path: PathLike) -> bool:
    """Whether decoding the PNG at ``path`` would add metadata to ``im.info``: True when a chunk
    other than IDAT or IEND follows its first IDAT (eXIf, text or XMP written after the image
    data, animation frames), or when the chunk layout cannot be walked (then PIL decides).

    Pillow's ``PngImageFile.getexif()`` decodes the whole image whenever the header had no
    eXIf chunk, because one may follow the image data; this walk (chunk lengths only, no
    decompression) tells when that cannot be, so a header read stays a header read.
    """
    try:
        with open(path, "rb") as fp:
            if fp.read(8) != PNG_SIGNATURE:
                return True
            seen_idat = False
            while True:
                head = fp.read(8)
                if len(head) < 8:
                    return True
                length, ctype = struct.unpack(">I4s", head)
                if ctype == b"IEND":
                    return False
                if ctype == b"IDAT":
                    seen_idat = True
                elif seen_idat:
                    return True
                fp.seek(length + 4, os.SEEK_CUR)  # data and CRC
    except OSError:
        return True


def _header_orientation(im: Image.Image, path: PathLike) -> int:
    """:func:`_orientation` of an image opened from ``path``, without decoding a PNG whose
    metadata all precedes its image data (then the header already holds everything)."""
    if im.format == "PNG" and "exif" not in im.info and not _png_reads_more_on_load(path):
        return _orientation(im, lambda: Image.Image.getexif(im))  # the header's info only
    return _orientation(im)


def upright(im: Image.Image) -> Image.Image:
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
            "per class), then rerun from the index rule (snakemake --forcerun index)."
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
    path, name = resolve_path(root, rel_path)
    with open_loaded(path, name, "image") as im:
        return _to_uint8_rgb(upright(im), bit_depth, name)


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
    path, name = resolve_path(root, rel_path)
    try:
        with Image.open(path) as im:
            w, h = im.size
            mode, o = im.mode, _header_orientation(im, path)
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


#: The PNG file signature and, per IHDR colour type, the sBIT chunk's length and colour channels.
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SBIT_LAYOUT = {0: (1, 1), 2: (3, 3), 3: (3, 3), 4: (2, 1), 6: (4, 3)}


def png_significant_bits(root: PathLike, rel_path: PathLike | None = None) -> int | None:
    """Significant bits a PNG declares in its sBIT chunk (the largest over its colour channels,
    alpha excluded); None for a file that is not a PNG or has no sBIT chunk before its image data.

    Pillow skips sBIT when reading, so the chunks are walked with its ``PngStream`` (length, type,
    data, CRC checked) up to the first IDAT. A malformed chunk raises DatasetError naming the file.
    """
    path, name = resolve_path(root, rel_path)
    try:
        with open(path, "rb") as fp:
            if fp.read(8) != PNG_SIGNATURE:
                return None
            stream, depth, ctype = PngImagePlugin.PngStream(fp), 16, 0
            while True:
                cid, _, length = stream.read()
                if cid in (b"IDAT", b"IEND"):
                    return None
                data = fp.read(length)
                if len(data) != length:
                    raise SyntaxError(f"chunk {cid!r} is truncated")
                stream.crc(cid, data)
                if cid == b"IHDR":
                    depth, ctype = (8 if data[9] == 3 else data[8]), data[9]
                elif cid == b"sBIT":
                    size, channels = _SBIT_LAYOUT.get(ctype, (len(data), len(data)))
                    bits = max(data[:channels], default=0)
                    if len(data) != size or not 1 <= bits <= depth:
                        raise SyntaxError(f"sBIT chunk {data.hex()} does not fit a {depth}-bit image")
                    return int(bits)
    except FileNotFoundError:
        raise DatasetError(f"image not found: {name}.") from None
    except (OSError, SyntaxError, ValueError, IndexError, struct.error) as exc:
        raise DatasetError(
            f"image {name} has a malformed PNG chunk ({exc}). Replace the file with an intact "
            "copy, or set dataset.bit_depth so its sBIT chunk is not read."
        ) from None


def _peak(root: PathLike, rel: PathLike) -> int:
    path, name = resolve_path(root, rel)
    with open_loaded(path, name, "image") as im:
        return int(np.asarray(im).max(initial=0))


def class_bit_depth(
    root: PathLike, high_bit_paths, declared: int | None = None
) -> tuple[int | None, str | None, str | None]:
    """The bit depth a class's 16-bit images are read with, a warning when it was inferred, and
    a note (info, not a warning) when every image's PNG sBIT chunk declared it.

    ``high_bit_paths``: the class's 16-bit images (:attr:`ImageHeader.high_bit`); only they are
    decoded. ``declared`` (``dataset.bit_depth``) wins; its range is checked when the images are
    read. Otherwise, when every image declares the same significant bits (sBIT), that is the
    depth; values above that range, or images declaring different bits, raise DatasetError
    (naming the files; the fix is dataset.bit_depth). Otherwise the depth is the smallest of
    :data:`BIT_DEPTHS` that holds the class's largest value (no lower than any sBIT declared),
    so 12-bit camera data in 16-bit PNGs keeps its 256 grey levels instead of 17.
    Returns ``(None, None, None)`` when there is no 16-bit image.
    """
    high = list(high_bit_paths)
    if not high:
        return None, None, None
    if declared is not None:
        return int(declared), None, None
    fix = "then rerun from the index rule (snakemake --forcerun index)."
    peaks = {r: _peak(root, r) for r in high}
    sbit = {r: b for r in high if (b := png_significant_bits(root, r)) is not None}
    for r, b in sbit.items():
        if peaks[r] > (1 << b) - 1:
            raise DatasetError(
                f"16-bit image {Path(r).as_posix()} (under {root}) has values up to {peaks[r]}, "
                f"above the {b}-bit range (0..{(1 << b) - 1}) its PNG sBIT chunk declares: its "
                "samples were scaled to 16 bits (as the PNG specification prescribes) or the "
                "chunk is wrong. Set dataset.bit_depth (16 for scaled samples, else the camera's "
                f"bit depth), {fix}"
            )
    if len(set(sbit.values())) > 1:
        first: dict[int, str] = {}
        for r, b in sbit.items():
            first.setdefault(b, Path(r).as_posix())
        (ba, a), (bb, b) = sorted(first.items())[:2]
        raise DatasetError(
            f"the 16-bit images of one class declare different significant bits in their PNG "
            f"sBIT chunks ({a}: {ba}, {b}: {bb}, under {root}), but a class is read with one bit "
            f"depth. Set dataset.bit_depth to the camera's bit depth, {fix}"
        )
    if len(sbit) == len(high):
        bits = next(iter(sbit.values()))
        return bits, None, (
            f"{len(high)} 16-bit image(s) read as {bits}-bit data, as their PNG sBIT chunks "
            f"declare (scaled by 255/{(1 << bits) - 1})."
        )
    where = max(high, key=lambda r: peaks[r])
    peak = peaks[where]
    bits = max([next((b for b in BIT_DEPTHS if peak < (1 << b)), 16), *sbit.values()])
    partial = (
        f" Only {len(sbit)} of them declare {next(iter(sbit.values()))} significant bits in a "
        f"PNG sBIT chunk (e.g. {Path(next(iter(sbit))).as_posix()})." if sbit else ""
    )
    return bits, (
        f"{len(high)} 16-bit image(s); the largest value is {peak} ({Path(where).as_posix()}), "
        f"so they are read as {bits}-bit data (scaled by 255/{(1 << bits) - 1}"
        + (", not 255/65535)." if bits < 16 else ").")
        + f"{partial} Set dataset.bit_depth if the camera's bit depth differs."
    ), None


def infer_bit_depth(
    root: PathLike, high_bit_paths, declared: int | None = None
) -> tuple[int | None, str | None]:
    """:func:`class_bit_depth` without its sBIT note: ``(bit depth, warning when inferred)``."""
    bits, warning, _ = class_bit_depth(root, high_bit_paths, declared)
    return bits, warning
