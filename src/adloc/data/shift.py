"""Domain shift ("MVTec-Shift", the study's phases 2, 6 and 7): a shifted copy of a class's images.

The recipe (study_reference "Domain shift"; each operation in :mod:`adloc.data.shift_ops`):

1. geometric, image and mask together: longest side to ``resize`` (268), reflect-101 pad to
   ``resize x resize``, affine (rotation U[-10, 10] degrees, translation U[-0.1, 0.1] of the
   side in x and y, scale x and y drawn independently from U[0.9, 1.0], no shear; bilinear for
   the image, nearest for the mask, reflect-101 border), centre crop ``crop`` (224);
2. image only: colour jitter (ONE factor U[0.7, 1.3] for brightness, contrast and saturation,
   hue 0, the three in a random order), Gaussian blur (kernel 3 or 5, sigma U[0.1, 2.0], p 0.5),
   additive Gaussian noise (sigma U[0.01, 0.05] of the full range, p 0.5), an illumination gain
   (strength U[0.4, 0.7], smoothed with a Gaussian of sigma 80) multiplied in.

It starts from the DECODED ORIGINAL image (``load_image`` of the class index's file), not from the
image cache ``images/<cls>.pt``: the cache is already resized to 256 and centre-cropped to 224, so
starting there would resize twice (268 from 224 upsamples) and lose the border the study's
reflect padding and affine read; the study's ShiftDomainTransform ran on the original image.
The output is the model input itself (``crop x crop``, read as the study read its shifted images:
its clean transform was a no-op resize there), so ``crop`` must equal the clean input size.

Variants: ``paper`` (default; what the study's configuration and report say): illumination a
LINEAR gradient in a random direction (U[0, 360) degrees) with p 0.5. ``study`` (what the study
generated: a demo cell changed its configuration in place): RADIAL from the top, p 1.0; and its
longest-side resize without antialiasing (albumentations' ``LongestMaxSize`` is OpenCV
``INTER_LINEAR``, which samples without a low-pass when it shrinks; ``paper`` antialiases, as
adloc's clean torchvision chain does). Both are recorded per image (``illumination_mode``,
``resize_antialias``).

Seeding: image ``i`` of a class (its position in the class index: train/good, then the test
folders, the image cache's order, so the same in every split and repeat; a class-wide position
rather than one per train / test folder, so that train image 0 and test image 0 never share their
parameters, and rather than one per study split, whose positions move with the split seed) draws every parameter
from ``numpy.random.default_rng(seed + i)`` in a fixed order, all parameters always drawn (a
switched-off blur still draws its kernel), so one image's shift depends only on ``(seed, i)``,
never on which other images exist; its noise field comes from ``default_rng([seed + i, 1])``.
Every parameter is recorded per image (:func:`sample_params`, one row of the parameter table),
and :func:`apply_shift` of a recorded row reproduces the image bit for bit.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..errors import ConfigError, DatasetError
from . import shift_ops as ops
from .shifted import SEED_STRIDE, check_seed_spacing, read_params, repeat_shift_seeds  # noqa: F401 (re-exported: torch-free)

PathLike = str | os.PathLike

VARIANTS = ("paper", "study")
#: (illumination mode, probability) of each variant
VARIANT_ILLUMINATION = {"paper": ("linear", 0.5), "study": ("radial", 1.0)}
#: the recorded parameters (the table's columns after index / path), in this order
PARAM_COLUMNS = (
    "seed", "resize_h", "resize_w", "resize_antialias", "pad_left", "pad_top", "pad_right", "pad_bottom",
    "angle", "tx", "ty", "sx", "sy", "jitter", "jitter_order",
    "blur", "blur_kernel", "blur_sigma", "noise", "noise_sigma",
    "illumination", "illumination_mode", "illumination_strength", "illumination_direction",
    "illumination_sigma", "crop",
)


@dataclasses.dataclass(frozen=True)
class ShiftSpec:
    """The shift section of the config (schema ``shift``), ranges as (low, high)."""

    seed: int = 0
    variant: str = "paper"
    resize: int = 268
    crop: int = 224
    rotation: tuple[float, float] = (-10.0, 10.0)
    translate: tuple[float, float] = (-0.1, 0.1)
    scale: tuple[float, float] = (0.9, 1.0)
    jitter: tuple[float, float] = (0.7, 1.3)
    blur_kernels: tuple[int, ...] = (3, 5)
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_p: float = 0.5
    noise_sigma: tuple[float, float] = (0.01, 0.05)
    noise_p: float = 0.5
    illumination_strength: tuple[float, float] = (0.4, 0.7)
    illumination_sigma: float = 80.0

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ConfigError(f"shift.variant must be one of {list(VARIANTS)}, got {self.variant!r}.")
        if not 1 <= self.crop <= self.resize:
            raise ConfigError(f"shift.crop ({self.crop}) must be between 1 and shift.resize ({self.resize}).")
        if any(k < 1 or k % 2 == 0 for k in self.blur_kernels) or not self.blur_kernels:
            raise ConfigError(f"shift.blur_kernels must be odd sizes >= 1, got {list(self.blur_kernels)}.")
        for name in ("rotation", "translate", "scale", "jitter", "blur_sigma", "noise_sigma", "illumination_strength"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ConfigError(f"shift.{name} must be [low, high] with low <= high, got {[lo, hi]}.")

    @property
    def illumination(self) -> tuple[str, float]:
        """(mode, probability) of the variant's illumination gradient."""
        return VARIANT_ILLUMINATION[self.variant]

    @classmethod
    def from_config(cls, d: Mapping[str, Any]) -> "ShiftSpec":
        """From the config's ``shift`` section (``enabled`` is the workflow's, not read here)."""
        kw = {f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d}
        for k, v in kw.items():
            if isinstance(v, list):
                kw[k] = tuple(v)
        return cls(**kw)

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def sample_params(spec: ShiftSpec, index: int, h: int, w: int) -> dict[str, Any]:
    """Image ``index``'s parameters (an ``h x w`` original): a row of the parameter table.

    Drawn from ``default_rng(spec.seed + index)`` in :data:`PARAM_COLUMNS`' order, every draw
    made whatever the switches, so the row depends only on (seed, index, the original's size).
    """
    seed = int(spec.seed) + int(index)
    rng = np.random.default_rng(seed)
    u = lambda r: float(rng.uniform(r[0], r[1]))  # noqa: E731
    rh, rw = ops.longest_side(h, w, spec.resize)
    left, top, right, bottom = ops.pad_box(rh, rw, spec.resize)
    mode, p_illum = spec.illumination
    row = {
        "seed": seed, "resize_h": rh, "resize_w": rw, "resize_antialias": spec.variant == "paper",
        "pad_left": left, "pad_top": top, "pad_right": right, "pad_bottom": bottom,
        "angle": u(spec.rotation), "tx": u(spec.translate), "ty": u(spec.translate),
        "sx": u(spec.scale), "sy": u(spec.scale), "jitter": u(spec.jitter),
        "jitter_order": "".join("bcs"[i] for i in rng.permutation(3)),
        "blur": bool(rng.uniform() < spec.blur_p),
        "blur_kernel": int(spec.blur_kernels[int(rng.integers(len(spec.blur_kernels)))]),
        "blur_sigma": u(spec.blur_sigma),
        "noise": bool(rng.uniform() < spec.noise_p), "noise_sigma": u(spec.noise_sigma),
        "illumination": bool(rng.uniform() < p_illum), "illumination_mode": mode,
        "illumination_strength": u(spec.illumination_strength),
        "illumination_direction": float(rng.uniform(0.0, 360.0)),
        "illumination_sigma": float(spec.illumination_sigma), "crop": int(spec.crop),
    }
    if mode == "radial":
        row["illumination_direction"] = None  # drawn (fixed stream) but unused: from the top
    return row


def geometric(t, row: Mapping[str, Any], nearest: bool = False):
    """Step 1 of the recipe on a float image ``(3, H, W)`` or 0/1 mask ``(H, W)``."""
    hw = (int(row["resize_h"]), int(row["resize_w"]))
    t = ops.resize_mask(t, hw) if nearest else ops.resize_image(t, hw, antialias=_flag(row["resize_antialias"]))
    box = tuple(int(row[k]) for k in ("pad_left", "pad_top", "pad_right", "pad_bottom"))
    t = ops.pad_reflect101(t, box)
    t = ops.affine(t, float(row["angle"]), float(row["tx"]), float(row["ty"]), float(row["sx"]),
                   float(row["sy"]), nearest=nearest)
    return ops.centre_crop(t, int(row["crop"]))


def photometric(t, row: Mapping[str, Any]):
    """Step 2 of the recipe (image only) on a float image ``(3, S, S)``."""
    t = ops.colour_jitter(t, float(row["jitter"]), str(row["jitter_order"]))
    if _flag(row["blur"]):
        t = ops.gaussian_blur(t, int(row["blur_kernel"]), float(row["blur_sigma"]))
    if _flag(row["noise"]):
        t = ops.add_noise(t, float(row["noise_sigma"]), int(row["seed"]))
    if _flag(row["illumination"]):
        d = row["illumination_direction"]
        gain = ops.illumination_gain(
            int(t.shape[-2]), int(t.shape[-1]), str(row["illumination_mode"]),
            float(row["illumination_strength"]), 0.0 if _missing(d) else float(d),
            float(row["illumination_sigma"]),
        )
        t = ops.illuminate(t, gain)
    return t


def apply_shift(img: np.ndarray, mask: np.ndarray | None, row: Mapping[str, Any]):
    """uint8 ``(H, W, 3)`` original (+ bool ``(H, W)`` mask) -> (uint8 ``(3, S, S)`` tensor,
    bool ``(S, S)`` array or None) with the parameters ``row`` (:func:`sample_params`, or a row
    read back from the parameter table)."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).to(torch.float32).div_(255.0)
    out = ops.to_uint8(photometric(geometric(t, row), row)).contiguous()
    if mask is None:
        return out, None
    m = geometric(torch.from_numpy(mask.astype(np.float32)), row, nearest=True)
    return out, m.numpy() > 0.5


def shift_image(spec: ShiftSpec, index: int, img: np.ndarray, mask: np.ndarray | None = None):
    """(image, mask, parameter row) of image ``index`` of its class (module docstring)."""
    row = sample_params(spec, index, int(img.shape[0]), int(img.shape[1]))
    out, m = apply_shift(img, mask, row)
    return out, m, row


def shift_class(
    root: PathLike,
    cls: str,
    entries: Sequence[Mapping[str, Any]],
    spec: ShiftSpec,
    out_dir: PathLike,
    bit_depth: int | None = None,
    mask_threshold: int | None = None,
    workers: int = 1,
) -> list[dict[str, Any]]:
    """Shift every entry of class ``cls``'s index (:func:`adloc.data.splits.index_entries`),
    image ``i`` seeded ``spec.seed + i``, and write the copy in MVTec layout under ``out_dir``
    (the class folder: ``train/good/*.png``, ``test/<defect>/*.png``,
    ``ground_truth/<defect>/*.png`` as 0/255 masks; each file at its original's relative path,
    as PNG). Returns the parameter rows (``index``, ``path``, ``shifted``, ``shifted_mask``, then
    :data:`PARAM_COLUMNS`). Images are decoded exactly as the clean chain decodes them
    (``load_image`` with the index's bit depth; masks with the preprocess' grey threshold) on
    ``workers`` threads, each image independently, so the result does not depend on ``workers``."""
    from PIL import Image

    from .mvtec import load_image, load_mask

    entries = list(entries)
    out = Path(out_dir)
    has_masks = any(e.get("mask") for e in entries)
    targets = [_target(cls, e["path"]) for e in entries]
    if len(set(targets)) != len(targets):
        dup = next(t for t in targets if targets.count(t) > 1)
        raise DatasetError(f"class {cls}: two images map to the shifted file {dup} (same name, other format); rename one.")
    rows: list[dict[str, Any]] = [{} for _ in entries]

    def one(i: int) -> None:
        e = entries[i]
        img = load_image(root, e["path"], bit_depth=bit_depth)
        m = None
        if has_masks and not e.get("mask") and int(e.get("label", 0)) == 1:
            raise DatasetError(
                f"anomalous image {e['path']} (under {root}) has no mask while other images of "
                "the class do: add its mask to ground_truth/ (the shifted masks must stay aligned)."
            )
        if e.get("mask"):
            m = load_mask(root, e["mask"], shape=img.shape[:2], grey_threshold=mask_threshold)
        shifted, mo, row = shift_image(spec, i, img, m)
        (out / targets[i]).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(shifted.permute(1, 2, 0).numpy(), mode="RGB").save(out / targets[i], format="PNG")
        mask_rel = None
        if mo is not None:
            mask_rel = _target(cls, e["mask"])
            (out / mask_rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mo.astype(np.uint8) * 255, mode="L").save(out / mask_rel, format="PNG")
        rows[i] = {"index": i, "path": e["path"], "shifted": targets[i], "shifted_mask": mask_rel, **row}

    _run(one, len(entries), workers)
    return rows


def _target(cls: str, rel: str) -> str:
    """A file's path inside the shifted class folder: its path under the class, as ``.png``."""
    parts = Path(rel).parts
    if len(parts) < 2 or parts[0] != cls:
        raise DatasetError(f"index path {rel} is not under class folder {cls}/; rebuild the index (delete results/<run>/index/{cls}.json).")
    return str(Path(*parts[1:]).with_suffix(".png"))


def params_frame(rows: Iterable[Mapping[str, Any]]):
    """The parameter table (pandas): index, path, shifted, shifted_mask, then :data:`PARAM_COLUMNS`."""
    import pandas as pd

    return pd.DataFrame(list(rows), columns=["index", "path", "shifted", "shifted_mask", *PARAM_COLUMNS])


def shift_folder_name(d: Mapping[str, Any]) -> str:
    """The shifted copy's folder under results/<run>/shift/: ``<variant>-s<seed>``."""
    return f"{d['variant']}-s{int(d['seed'])}"


def check_shift_config(cfg: Mapping[str, Any]) -> ShiftSpec:
    """The run's :class:`ShiftSpec`: ``shift.crop`` null is the clean model input, ``shift.resize``
    null ``round(crop * 268 / 224)`` (268 at 224); ConfigError when ``shift.crop`` differs from the
    clean model input (the shifted images are read by the clean models and their feature grid)."""
    pre = cfg["preprocess"]
    size = pre["crop"] if pre.get("crop") is not None else pre["resize"]
    d = dict(cfg["shift"])
    if d.get("crop") is None:
        d["crop"] = int(size)
    if d.get("resize") is None:  # the recipe's 268 for 224, the same ratio otherwise
        d["resize"] = int(round(int(d["crop"]) * 268 / 224))
    spec = ShiftSpec.from_config(d)
    if int(spec.crop) != int(size):
        raise ConfigError(
            f"config key shift.crop ({spec.crop}) differs from the clean model input ({size}: "
            "preprocess.crop, or preprocess.resize without a crop); the shifted images go to the "
            f"clean models as they are. Set shift.crop: {size} (and shift.resize about 1.2x it)."
        )
    return spec


def _flag(v: Any) -> bool:
    return v if isinstance(v, (bool, np.bool_)) else str(v).strip().lower() in ("true", "1")


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or v == ""


def _run(fn, n: int, workers: int) -> None:
    if workers <= 1 or n < 2:
        for i in range(n):
            fn(i)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=int(workers)) as pool:
        list(pool.map(fn, range(n)))  # list() re-raises the first failing image's error


__all__ = [
    "VARIANTS", "PARAM_COLUMNS", "ShiftSpec", "sample_params", "geometric", "photometric",
    "apply_shift", "shift_image", "shift_class", "params_frame", "read_params",
    "shift_folder_name", "check_shift_config", "SEED_STRIDE", "repeat_shift_seeds",
    "check_seed_spacing",
]
