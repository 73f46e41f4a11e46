"""Real-IAD (Wang et al., CVPR 2024): a manual download converted to the MVTec AD layout.

Real-IAD is gated on Hugging Face (https://huggingface.co/datasets/REAL-IAD/Real-IAD; the
authors approve each request), so adloc never downloads it: place the download (unzipped) at
``<dataset.downloads>/Real-IAD/`` and rerun. Its layout (as anomalib's RealIAD reads it)::

    realiad_1024/<category>/OK/S0001/<category>_0001_OK_C1_<time>.jpg          normal
    realiad_1024/<category>/NG/<defect>/S0002/<category>_0002_NG_C3_<time>.jpg  defective
    realiad_1024/<category>/NG/<defect>/S0002/<category>_0002_NG_C3_<time>_mask.png
    realiad_jsons/realiad_jsons/<category>.json   {"train": [...], "test": [...]} with entries
        {"image_path", "mask_path" (null for normals), "anomaly_class" ("OK" or the defect)}
        relative to realiad_1024/<category>/

30 categories (:data:`REAL_IAD_CLASSES`); each sample (S0001) is photographed from 5 camera
views C1..C5. :func:`convert_realiad` follows the authors' multi-view JSON split (train rows are
normal, test rows normal or defective) and pools the five views: every view is one image of the
class, its file name keeping sample and view (``..._S0001_C1_...``), so
``<out>/<category>/{train/good, test/good, test/<defect>}`` plus
``ground_truth/<defect>/<stem>_mask.png`` (binarised). Images are hard-linked (JPEG bytes
unchanged). The 1024-px images are used (``realiad_1024``); a different resolution folder can be
placed under that name.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from ..errors import DatasetError
from .layout import link_or_copy, write_binary_mask
from .sources import Archive, FetchError

log = logging.getLogger("adloc.realiad")

REAL_IAD_CLASSES = (
    "audiojack", "bottle_cap", "button_battery", "end_cap", "eraser", "fire_hood", "mint", "mounts",
    "pcb", "phone_battery", "plastic_nut", "plastic_plug", "porcelain_doll", "regulator",
    "rolled_strip_base", "sim_card_set", "switch", "tape", "terminalblock", "toothbrush", "toy",
    "toy_brick", "transistor1", "u_block", "usb", "usb_adaptor", "vcpill", "wooden_beads",
    "woodstick", "zipper",
)
RAW_NAME = "Real-IAD"
IMAGES = "realiad_1024"
JSONS = Path("realiad_jsons") / "realiad_jsons"


def raw_folder(downloads: Path, archive: Archive) -> Path:
    """``<downloads>/Real-IAD`` when it holds the JSONs and images, else FetchError (one line)."""
    raw = Path(downloads) / RAW_NAME
    if not ((raw / JSONS).is_dir() and (raw / IMAGES).is_dir()):
        raise FetchError(
            f"{archive.name} is a manual download: request access at {archive.manual}, download it and "
            f"unzip it into {raw} (so that {raw / JSONS} and {raw / IMAGES} exist), then rerun"
        )
    return raw


def _rows(path: Path) -> dict[str, list[dict]]:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read Real-IAD split file {path}: {exc}") from None
    if not isinstance(meta, dict) or not all(isinstance(meta.get(k), list) for k in ("train", "test")):
        raise DatasetError(f"{path}: expected a JSON object with lists 'train' and 'test'")
    return {k: meta[k] for k in ("train", "test")}


def convert_realiad(raw_root: str | os.PathLike, out_root: str | os.PathLike) -> dict[str, dict[str, int]]:
    """Write Real-IAD (``raw_root`` = the ``Real-IAD`` folder) to ``out_root`` (MVTec layout)."""
    raw_root, out_root = Path(raw_root), Path(out_root)
    files = sorted((raw_root / JSONS).glob("*.json"))
    if not files:
        raise DatasetError(f"no Real-IAD split files {raw_root / JSONS}/<category>.json")
    counts: dict[str, dict[str, int]] = {}
    for jf in files:
        cls, cdir = jf.stem, raw_root / IMAGES / jf.stem
        c = counts.setdefault(cls, {"train_good": 0, "test_good": 0, "test_bad": 0})
        for split, rows in _rows(jf).items():
            for n, r in enumerate(rows):
                where = f"{jf} {split}[{n}]"
                if not isinstance(r, dict) or not r.get("image_path") or not r.get("anomaly_class"):
                    raise DatasetError(f"{where}: needs image_path and anomaly_class")
                defect = str(r["anomaly_class"])
                normal = defect == "OK"
                if split == "train" and not normal:
                    raise DatasetError(f"{where}: a defective image in the train split ({r['image_path']})")
                if not normal and not r.get("mask_path"):
                    raise DatasetError(f"{where}: defective image {r['image_path']} has no mask_path")
                img = cdir / r["image_path"]
                folder = "good" if normal else defect
                link_or_copy(img, out_root / cls / split / folder / img.name, f"Real-IAD image listed in {jf}")
                if not normal:
                    write_binary_mask(cdir / r["mask_path"], out_root / cls / "ground_truth" / folder /
                                      f"{img.stem}_mask.png", f"Real-IAD mask listed in {jf}")
                c[f"{split}_{'good' if normal else 'bad'}"] += 1
        log.info("Real-IAD %s: %d train good, %d test good, %d test defective (5 views pooled)",
                 cls, c["train_good"], c["test_good"], c["test_bad"])
    return counts
