"""Small dataset archives in the real MVTec AD and VisA layouts, and a local HTTP server.

The server (127.0.0.1, a free port) serves bytes from a dict, honours ``Range: bytes=N-`` with
``206 Partial Content``, records every request, and can cut the connection of the first
``cut_times`` responses after ``cut_at`` bytes (headers announce the full length, then the
socket closes), which is what a dropped download looks like to the client.
"""

from __future__ import annotations

import csv
import hashlib
import io
import shutil
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from PIL import Image

from workflow_utils import TINY_COUNTS

KINDS = {"synth_nut": "object", "synth_carpet": "texture"}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tar_bytes(folder: Path, mode: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for p in sorted(folder.rglob("*")):
            tar.add(p, arcname=p.relative_to(folder).as_posix(), recursive=False)
    return buf.getvalue()


def mvtec_tree(dest: Path, classes, counts=TINY_COUNTS, size=64) -> Path:
    """An MVTec AD-like tree: class folders at the top plus license.txt / readme.txt."""
    from adloc.data.synthetic import generate_class

    dest.mkdir(parents=True, exist_ok=True)
    for i, cls in enumerate(classes):
        generate_class(dest, cls, counts=dict(counts), image_size=size, seed=i, kind=KINDS.get(cls, "object"))
        (dest / cls / "synthetic.json").unlink(missing_ok=True)
    (dest / "license.txt").write_text("CC BY-NC-SA 4.0\n")
    (dest / "readme.txt").write_text("test archive\n")
    return dest


def mvtec_archive(work: Path, classes, **kw) -> bytes:
    """``mvtec_anomaly_detection.tar.xz`` bytes (class folders at the archive's top level)."""
    return tar_bytes(mvtec_tree(work / "mvtec_src", classes, **kw), "w:xz")


def visa_tree(dest: Path, classes, counts=TINY_COUNTS, size=64) -> Path:
    """A VisA-like tree: ``split_csv/1cls.csv``, ``<cls>/Data/Images/{Normal,Anomaly}/*.JPG``,
    ``<cls>/Data/Masks/Anomaly/*.png`` whose defect pixels hold small non-zero values (1..3)."""
    src = mvtec_tree(dest.parent / (dest.name + "_mvtec"), classes, counts=counts, size=size)
    rows = []
    for cls in classes:
        data = dest / cls / "Data"
        for sub in ("Images/Normal", "Images/Anomaly", "Masks/Anomaly"):
            (data / sub).mkdir(parents=True, exist_ok=True)
        n = 0
        for split, folder in (("train", src / cls / "train" / "good"), ("test", src / cls / "test" / "good")):
            for p in sorted(folder.glob("*.png")):
                name = f"{n:04d}.JPG"
                Image.open(p).convert("RGB").save(data / "Images" / "Normal" / name, format="JPEG", quality=95)
                rows.append([cls, split, "normal", f"{cls}/Data/Images/Normal/{name}", ""])
                n += 1
        a = 0
        for ddir in sorted(d for d in (src / cls / "test").iterdir() if d.name != "good"):
            for p in sorted(ddir.glob("*.png")):
                name = f"{a:03d}"
                Image.open(p).convert("RGB").save(data / "Images" / "Anomaly" / f"{name}.JPG", format="JPEG", quality=95)
                m = np.asarray(Image.open(src / cls / "ground_truth" / ddir.name / f"{p.stem}_mask.png")) > 0
                Image.fromarray((m * (1 + a % 3)).astype(np.uint8), mode="L").save(data / "Masks" / "Anomaly" / f"{name}.png")
                rows.append([cls, "test", "anomaly", f"{cls}/Data/Images/Anomaly/{name}.JPG",
                             f"{cls}/Data/Masks/Anomaly/{name}.png"])
                a += 1
        (dest / cls / "image_anno.csv").write_text("image,label,mask\n")
    (dest / "split_csv").mkdir(parents=True, exist_ok=True)
    with open(dest / "split_csv" / "1cls.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["object", "split", "label", "image", "mask"])
        w.writerows(rows)
    (dest / "LICENSE-DATASET").write_text("CC BY-NC-SA 4.0\n")
    shutil.rmtree(src)
    return dest


def visa_archive(work: Path, classes, **kw) -> bytes:
    """``VisA_20220922.tar`` bytes (VisA's own layout at the archive's top level)."""
    return tar_bytes(visa_tree(work / "visa_src", classes, **kw), "w")


class FileServer:
    """``with FileServer({"/a.tar": data}) as srv: srv.url("/a.tar")``; ``srv.requests``."""

    def __init__(self, files: dict[str, bytes], cut_at: int | None = None, cut_times: int = 1):
        self.files, self.cut_at, self.cuts_left = files, cut_at, cut_times
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                server.requests.append((self.path, rng))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                if rng and rng.startswith("bytes=") and rng.endswith("-"):
                    start = int(rng[len("bytes="):-1])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if server.cut_at is not None and server.cuts_left > 0 and start < server.cut_at:
                    server.cuts_left -= 1
                    self.wfile.write(body[: server.cut_at - start])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def __enter__(self) -> "FileServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
