"""What summary.md says about each built-in method (torch-free; referenced by the registry).

Each method entry may give three functions of the whole config (:class:`.registry.Method`):

* ``setup(cfg) -> str``: its settings for the summary's setup paragraph;
* ``protocol(cfg) -> "paper" | "study" | None``: which protocol its own switches follow (None:
  it has none), for :func:`adloc.analysis.summary.derive_protocol`;
* ``protocol_notes(cfg) -> list[str]``: its items of "Protocol differences from the study",
  each ending in "(fixed)" or "(kept)".

The summary prints them only for the methods that ran.
"""

from __future__ import annotations

from typing import Any, Mapping


def patchcore_setup(cfg: Mapping[str, Any]) -> str:
    pc = cfg.get("patchcore", {})
    emb = pc.get("target_embed_dim")
    return (f"PatchCore: coreset ratio {pc.get('coreset_ratio')}, {pc.get('num_neighbors')} "
            f"neighbours, {'embedding ' + str(emb) if emb else 'no embedding reduction'}, "
            f"{pc.get('scoring')} scoring, blur σ {pc.get('blur_sigma')}")


def patchcore_protocol(cfg: Mapping[str, Any]) -> str:
    return "study" if cfg.get("patchcore", {}).get("scoring") == "study" else "paper"


def patchcore_notes(cfg: Mapping[str, Any]) -> list[str]:
    pc = cfg.get("patchcore", {})
    emb = pc.get("target_embed_dim")
    study = "the study used squared L2 (faiss), which makes the re-weighting a no-op"
    if pc.get("scoring", "paper") == "paper":
        dist = f"PatchCore distances: {study}. **This run:** L2 distances with the paper's re-weighting (fixed)."
    else:
        dist = f"PatchCore distances: {study}. **This run:** the study's squared-L2 scoring (kept)."
    maps = ("PatchCore maps: the study used no 1536→1024 reduction and no blur on PatchCore maps. "
            f"**This run:** {'target embedding ' + str(emb) if emb else 'no embedding reduction'}, "
            f"blur σ {pc.get('blur_sigma')} ({'fixed' if float(pc.get('blur_sigma') or 0) > 0 else 'kept'}).")
    return [dist, maps]


def padim_setup(cfg: Mapping[str, Any]) -> str:
    pd_ = cfg.get("padim", {})
    n = pd_.get("n_features")
    return (f"PaDiM: {n if n is not None else 'backbone-default'} random channels, covariance ε "
            f"{pd_.get('covariance_eps')}, blur σ {pd_.get('blur_sigma')}")


def spade_setup(cfg: Mapping[str, Any]) -> str:
    sp = cfg.get("spade", {})
    layers = list(sp.get("layers") or [])
    return (f"SPADE: image score = mean distance to the k = {sp.get('k')} nearest training images "
            f"by pooled {layers[-1] if layers else '?'} feature (all of them when a model has "
            f"fewer), maps = nearest-patch distance among those images on the "
            f"{'+'.join(layers)} pyramid, blur σ {sp.get('blur_sigma')}")
