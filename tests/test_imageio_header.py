"""adloc.data.imageio.image_header: PNG EXIF orientation from the header, without decoding."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from adloc.data.imageio import image_header


def _chunk(ctype: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data) & 0xFFFFFFFF)


def _exif(orientation: int) -> bytes:
    e = Image.Exif()
    e[0x0112] = orientation
    return e.tobytes()


def _png(path, h=6, w=10, before=(), after=()):
    """An RGB PNG with extra chunks written before / after its image data (IDAT)."""
    Image.fromarray(np.arange(h * w * 3, dtype=np.uint8).reshape(h, w, 3)).save(path)
    raw = path.read_bytes()
    sig, body = raw[:8], raw[8:]
    chunks, pos = [], 0
    while pos < len(body):
        n, t = struct.unpack(">I4s", body[pos : pos + 8])
        chunks.append((t, body[pos : pos + 12 + n]))
        pos += 12 + n
    out = [sig]
    for t, c in chunks:
        if t == b"IDAT" and before is not None:
            out += [_chunk(*b) for b in before]
            before = None
        if t == b"IEND":
            out += [_chunk(*a) for a in after]
        out.append(c)
    path.write_bytes(b"".join(out))
    return path


@pytest.mark.parametrize("where", ["before", "after"])
@pytest.mark.parametrize("orientation,size", [(1, (6, 10)), (3, (6, 10)), (6, (10, 6)), (8, (10, 6))])
def test_png_exif_orientation_before_or_after_the_image_data(tmp_path, where, orientation, size):
    chunk = [(b"eXIf", _exif(orientation))]
    p = _png(tmp_path / "a.png", before=chunk if where == "before" else (), after=chunk if where == "after" else ())
    hd = image_header(p)
    with Image.open(p) as im:  # what PIL says once the whole file is read
        im.load()
        assert im.getexif().get(0x0112, 1) == orientation
    assert hd.orientation == orientation and (hd.height, hd.width) == size


def test_plain_png_header_is_read_without_decoding(tmp_path, monkeypatch):
    p = _png(tmp_path / "plain.png")

    def no_decode(self, *a, **k):
        raise AssertionError("the image data was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decode)
    hd = image_header(p)
    assert hd.orientation == 1 and (hd.height, hd.width) == (6, 10) and hd.mode == "RGB"


def test_text_chunk_after_the_image_data_is_read_as_pil_does(tmp_path):
    """A chunk after IDAT (here a text chunk) makes the header read decode, as PIL would."""
    p = _png(tmp_path / "t.png", after=[(b"tEXt", b"Comment\x00hello")])
    assert image_header(p).orientation == 1


def test_truncated_png_raises_naming_the_file(tmp_path):
    """A file cut after its IHDR is unreadable, as before the chunk walk existed."""
    from adloc.errors import DatasetError

    p = _png(tmp_path / "cut.png")
    p.write_bytes(p.read_bytes()[:40])
    with pytest.raises(DatasetError, match="cut.png.*unreadable"):
        image_header(p)
