"""Image and mask preprocessing (torchvision ops), shared by every backbone.

Two protocols:

* paper (default): ``Preprocess(resize=256, crop=224)`` -- square bilinear resize to 256x256,
  then a 224x224 center crop (the PatchCore/PaDiM papers' protocol on MVTec's square images).
* study: ``Preprocess(resize=224, crop=None)`` -- straight 224x224 bilinear resize, no crop.

Images: bilinear resize *with antialias* on the uint8 tensor (torchvision's uint8 antialiased
kernel matches PIL's ``Image.resize(BILINEAR)``, which the study used, to within 1 grey level),
then center crop, ``/255``, ImageNet mean/std normalisation.
Masks: ``NEAREST_EXACT`` resize (pixel-centre nearest neighbour, the same rule as PIL's
``NEAREST`` that the study used; torch's legacy ``NEAREST`` is shifted by half a pixel), the
same crop, ``> 0.5``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from ..errors import DatasetError
from .mvtec import load_image, load_mask

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

PathLike = str | os.PathLike


@dataclass(frozen=True)
class Preprocess:
    """Square resize to ``resize`` x ``resize`` then (optional) center crop to ``crop``."""

    resize: int = 256
    crop: int | None = 224

    def __post_init__(self) -> None:
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
        return cls(resize=224, crop=None)

    @classmethod
    def paper(cls) -> "Preprocess":
        return cls(resize=256, crop=224)

    def as_dict(self) -> dict[str, Any]:
        return {"resize": int(self.resize), "crop": None if self.crop is None else int(self.crop)}


def _geometry(t: torch.Tensor, pre: Preprocess, interp: InterpolationMode) -> torch.Tensor:
    t = TF.resize(
        t,
        [pre.resize, pre.resize],
        interpolation=interp,
        antialias=interp == InterpolationMode.BILINEAR,
    )
    if pre.crop is not None and pre.crop != pre.resize:
        t = TF.center_crop(t, [pre.crop, pre.crop])
    return t


def image_tensor(img: np.ndarray, pre: Preprocess) -> torch.Tensor:
    """uint8 ``(H, W, 3)`` RGB -> normalised float32 ``(3, S, S)``, ``S = pre.output_size``."""
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise DatasetError(
            f"image_tensor expects a uint8 HxWx3 array, got {img.dtype} {tuple(img.shape)}."
        )
    t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)
    t = _geometry(t, pre, InterpolationMode.BILINEAR)
    t = TF.to_dtype(t, torch.float32, scale=True)
    return TF.normalize(t, mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD)).contiguous()


def image_uint8(img: np.ndarray, pre: Preprocess) -> np.ndarray:
    """uint8 ``(H, W, 3)`` -> uint8 ``(S, S, 3)`` with the model's geometry, for figures."""
    t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)
    return _geometry(t, pre, InterpolationMode.BILINEAR).permute(1, 2, 0).numpy()


def mask_array(mask: np.ndarray, pre: Preprocess) -> np.ndarray:
    """bool ``(H, W)`` -> bool ``(S, S)``: nearest resize, the images' crop, ``> 0.5``."""
    if mask.ndim != 2:
        raise DatasetError(f"mask_array expects an HxW array, got shape {tuple(mask.shape)}.")
    t = torch.from_numpy(np.ascontiguousarray(mask.astype(np.uint8)))[None]
    t = _geometry(t, pre, InterpolationMode.NEAREST_EXACT)
    return t[0].numpy().astype(np.float32) > 0.5


def load_split_images(
    root: PathLike,
    entries: Iterable[dict[str, Any]],
    pre: Preprocess,
    with_masks: bool = True,
) -> tuple[torch.Tensor, np.ndarray | None]:
    """Load and preprocess split entries (dicts with ``path``, ``label``, ``mask``).

    Returns ``images`` float32 ``(N, 3, S, S)`` and ``masks`` bool ``(N, S, S)``: all-False for
    good images; ``None`` when ``with_masks`` is False or no entry has a mask (a class without
    ground truth). An anomalous entry with no mask in a split that has masks raises, as does a
    mask whose size differs from its image's (the error names both files' sizes).
    """
    root = Path(root)
    entries = list(entries)
    s = pre.output_size
    imgs = torch.empty((len(entries), 3, s, s), dtype=torch.float32)
    any_mask = with_masks and any(e.get("mask") for e in entries)
    masks = np.zeros((len(entries), s, s), dtype=bool) if any_mask else None
    for i, e in enumerate(entries):
        img = load_image(root, e["path"])
        imgs[i] = image_tensor(img, pre)
        if masks is None:
            continue
        if e.get("mask"):
            m = load_mask(root, e["mask"], shape=img.shape[:2])
            masks[i] = mask_array(m, pre)
        elif int(e.get("label", 0)) == 1:
            raise DatasetError(
                f"anomalous image {e['path']} (under {root}) has no mask while other images of "
                "the split do. Add its mask to ground_truth/, or remove the class's ground_truth "
                "folder to run without pixel metrics."
            )
    return imgs, masks
