"""Image and mask preprocessing (torchvision ops), shared by every backbone.

Two protocols:

* paper (default): ``Preprocess(resize=256, crop=224)`` -- square bilinear resize to 256x256,
  then a 224x224 center crop (the PatchCore/PaDiM papers' protocol on MVTec's square images).
* study: ``Preprocess(resize=224, crop=None)`` -- straight 224x224 bilinear resize, no crop.

Images (``resize_backend``): ``"torchvision"`` (default): bilinear resize *with antialias* on the
uint8 tensor (torchvision's uint8 antialiased kernel matches PIL's ``Image.resize(BILINEAR)``,
which the study used, to within 1 grey level); ``"pil"`` (the study preset): PIL's
``Image.resize(BILINEAR)`` itself, as the study's ``torchvision.transforms.functional.resize`` of a
PIL image ran it, so the model input equals the study's bit for bit. Then center crop (:func:`image_uint8_tensor`: uint8 ``(3, S, S)``), then ``/255`` and ImageNet
mean/std normalisation (:func:`normalize_images`); :func:`image_tensor` is the two in a row.
The feature extractor takes the uint8 tensors (``load_split_images(..., as_uint8=True)``: 4x less
host memory and host->device traffic) and runs the same :func:`normalize_images` on its device,
so its features equal those of the float tensors bit for bit on the CPU.
Masks: PIL ``NEAREST`` resize (pixel-centre nearest neighbour, as the study did; identical to
torchvision's ``NEAREST_EXACT``, which a test checks; torch's legacy ``NEAREST`` is shifted by half
a pixel), the same crop, ``> 0.5``. With ``resize_backend="pil"`` masks are also read as the study
read them: converted to 8-bit grey (PIL ``convert("L")``) and ``> 127`` (its ``> 0.5`` after
``/255``; the same before or after a nearest resize), instead of any pixel ``> 0``; the two
differ only for masks with grey levels 1-127. Mask and display-image geometry use PIL only, so rules that
evaluate or draw (no model) never import torch: torch is imported lazily by the model-input path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
from PIL import Image

from ..errors import DatasetError
from .mvtec import image_size, load_image, load_mask

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

PathLike = str | os.PathLike


#: image resize implementations (module docstring)
RESIZE_BACKENDS = ("torchvision", "pil")


@dataclass(frozen=True)
class Preprocess:
    """Square resize to ``resize`` x ``resize`` then (optional) center crop to ``crop``."""

    resize: int = 256
    crop: int | None = 224
    resize_backend: str = "torchvision"

    def __post_init__(self) -> None:
        if self.resize_backend not in RESIZE_BACKENDS:
            raise DatasetError(
                f"preprocess.resize_backend must be one of {list(RESIZE_BACKENDS)}, got {self.resize_backend!r}."
            )
        if int(self.resize) < 1:
            raise DatasetError(f"preprocess.resize must be >= 1, got {self.resize}.")
        if self.crop is not None and not 1 <= int(self.crop) <= int(self.resize):
            raise DatasetError(
                f"preprocess.crop must be between 1 and resize ({self.resize}), got {self.crop}."
            )

    @property
    def output_size(self) -> int:
        """Side S of the square tensors produced."""
        return int(self.crop) if self.crop is not None else int(self.resize)

    @classmethod
    def study(cls) -> "Preprocess":
        return cls(resize=224, crop=None, resize_backend="pil")

    @classmethod
    def from_config(cls, d: Mapping[str, Any]) -> "Preprocess":
        """From the config's ``preprocess`` section (``resize_backend`` defaults to torchvision)."""
        crop = d.get("crop")
        return cls(
            resize=int(d["resize"]),
            crop=None if crop is None else int(crop),
            resize_backend=str(d.get("resize_backend", "torchvision")),
        )

    @property
    def mask_threshold(self) -> int | None:
        """Grey level a mask pixel must exceed (the study's path: 127), None: any pixel > 0."""
        return 127 if self.resize_backend == "pil" else None

    @classmethod
    def paper(cls) -> "Preprocess":
        return cls(resize=256, crop=224)

    def as_dict(self) -> dict[str, Any]:
        return {
            "resize": int(self.resize),
            "crop": None if self.crop is None else int(self.crop),
            "resize_backend": self.resize_backend,
        }


def _geometry(t, pre: Preprocess, interp):
    """torchvision resize (+ center crop) of a ``(C, H, W)`` tensor."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    t = TF.resize(
        t,
        [pre.resize, pre.resize],
        interpolation=interp,
        antialias=interp == InterpolationMode.BILINEAR,
    )
    if pre.crop is not None and pre.crop != pre.resize:
        t = TF.center_crop(t, [pre.crop, pre.crop])
    return t


def _crop_box(size: int, crop: int | None) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of torchvision's center crop of a ``size`` square."""
    if crop is None or crop == size:
        return 0, 0, size, size
    off = int(round((size - crop) / 2.0))
    return off, off, off + crop, off + crop


def _pil_geometry(im: Image.Image, pre: Preprocess, resample) -> Image.Image:
    im = im.resize((pre.resize, pre.resize), resample=resample)
    return im.crop(_crop_box(pre.resize, pre.crop))


def image_uint8_tensor(img: np.ndarray, pre: Preprocess):
    """uint8 ``(H, W, 3)`` RGB -> uint8 ``(3, S, S)`` (contiguous), ``S = pre.output_size``.

    The model input's geometry (antialiased bilinear resize + center crop on the uint8 tensor,
    or PIL's with ``resize_backend="pil"``), not normalised: :func:`normalize_images` of it is
    :func:`image_tensor`.
    """
    import torch
    from torchvision.transforms import InterpolationMode

    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise DatasetError(
            "image_tensor and image_uint8_tensor expect a uint8 HxWx3 array, "
            f"got {img.dtype} {tuple(img.shape)}."
        )
    if pre.resize_backend == "pil":
        return torch.from_numpy(np.array(image_uint8(img, pre))).permute(2, 0, 1).contiguous()
    t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)
    return _geometry(t, pre, InterpolationMode.BILINEAR).contiguous()


def normalize_images(t, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """uint8 ``(..., 3, H, W)`` -> float32: ``/255`` then ``(x - mean) / std``, on ``t``'s device.

    ``x.float() / 255`` (as torchvision's ``to_tensor``, which the study and the reference
    PatchCore code used; ``to_dtype(scale=True)`` multiplies by ``1/255`` instead, which differs
    in the last bit) and torchvision's ``normalize``; elementwise, so a batch gives the
    same bits as its images one at a time. ``mean`` / ``std``: sequences of 3 floats, or float32
    tensors already on ``t``'s device (then nothing is copied host->device, so a CUDA caller is
    not synchronised with its stream).
    """
    import torch
    from torchvision.transforms.v2 import functional as TF

    if t.dtype != torch.uint8:
        raise DatasetError(f"normalize_images expects a uint8 tensor, got {t.dtype}.")
    t = t.to(torch.float32).div_(255.0)
    if not isinstance(mean, torch.Tensor):
        mean = list(mean)
    if not isinstance(std, torch.Tensor):
        std = list(std)
    return TF.normalize(t, mean=mean, std=std)


def image_tensor(img: np.ndarray, pre: Preprocess):
    """uint8 ``(H, W, 3)`` RGB -> normalised float32 ``(3, S, S)``, ``S = pre.output_size``."""
    return normalize_images(image_uint8_tensor(img, pre))


def image_uint8(img: np.ndarray, pre: Preprocess) -> np.ndarray:
    """uint8 ``(H, W, 3)`` -> uint8 ``(S, S, 3)`` with the model's geometry (PIL bilinear).

    For figures (within 1 grey level of the torchvision kernel), and the model input itself with
    ``resize_backend="pil"``.
    """
    return np.asarray(_pil_geometry(Image.fromarray(np.ascontiguousarray(img)), pre, Image.BILINEAR))


def mask_array(mask: np.ndarray, pre: Preprocess) -> np.ndarray:
    """bool ``(H, W)`` -> bool ``(S, S)``: nearest resize, the images' crop, ``> 0.5``."""
    if mask.ndim != 2:
        raise DatasetError(f"mask_array expects an HxW array, got shape {tuple(mask.shape)}.")
    im = Image.fromarray(np.ascontiguousarray(mask.astype(np.uint8) * 255))
    return np.asarray(_pil_geometry(im, pre, Image.NEAREST)) > 127


def load_split_masks(root: PathLike, entries: Iterable[dict[str, Any]], pre: Preprocess) -> np.ndarray | None:
    """Ground-truth masks at the model's input geometry: bool ``(N, S, S)``, or None.

    None when no entry has a mask (a class without ground truth); good images get all-False
    masks. An anomalous entry without a mask in a split that has masks raises, as does a mask
    whose size differs from its image's (read from the image's header). Torch-free.
    """
    entries = list(entries)
    if not any(e.get("mask") for e in entries):
        return None
    s = pre.output_size
    masks = np.zeros((len(entries), s, s), dtype=bool)
    for i, e in enumerate(entries):
        if e.get("mask"):
            m = load_mask(root, e["mask"], shape=image_size(root, e["path"]), grey_threshold=pre.mask_threshold)
            masks[i] = mask_array(m, pre)
        elif int(e.get("label", 0)) == 1:
            raise DatasetError(
                f"anomalous image {e['path']} (under {root}) has no mask while other images of "
                "the split do. Add its mask to ground_truth/, or remove the class's ground_truth "
                "folder to run without pixel metrics."
            )
    return masks


def load_split_images(
    root: PathLike,
    entries: Iterable[dict[str, Any]],
    pre: Preprocess,
    with_masks: bool = True,
    workers: int | None = None,
    as_uint8: bool = False,
    bit_depth: int | None = None,
) -> tuple["torch.Tensor", np.ndarray | None]:
    """Load and preprocess split entries (dicts with ``path``, ``label``, ``mask``).

    Images are decoded and preprocessed by ``workers`` threads (default: up to 8, one per CPU;
    PIL and torch release the GIL), each image independently, so the result is identical to a
    sequential loop; the first failing entry (in split order) raises.

    Returns ``images`` float32 ``(N, 3, S, S)`` (:func:`image_tensor`), or with ``as_uint8=True``
    uint8 ``(N, 3, S, S)`` (:func:`image_uint8_tensor`, not normalised; :func:`normalize_images`
    of it equals the float tensor exactly), and ``masks`` bool ``(N, S, S)``: all-False for
    good images; ``None`` when ``with_masks`` is False or no entry has a mask (a class without
    ground truth). An anomalous entry with no mask in a split that has masks raises, as does a
    mask whose size differs from its image's (the error names both files' sizes).
    ``bit_depth``: what 16-bit images are scaled by (the split file's ``bit_depth``; see
    :func:`adloc.data.mvtec.load_image`).
    """
    root = Path(root)
    entries = list(entries)
    s = pre.output_size
    import torch

    imgs = torch.empty((len(entries), 3, s, s), dtype=torch.uint8 if as_uint8 else torch.float32)
    convert = image_uint8_tensor if as_uint8 else image_tensor

    def one(i: int) -> None:
        imgs[i] = convert(load_image(root, entries[i]["path"], bit_depth=bit_depth), pre)

    n_workers = min(8, os.cpu_count() or 1) if workers is None else max(1, int(workers))
    if n_workers == 1 or len(entries) < 2:
        for i in range(len(entries)):
            one(i)
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            for _ in pool.map(one, range(len(entries))):  # re-raises the first error in order
                pass
    masks = load_split_masks(root, entries, pre) if with_masks else None
    return imgs, masks
