"""summary.md's protocol parts: which protocol a config runs (paper / study / custom) and the
section "Protocol differences from the study", from the config and the methods that ran
(their registry entries' protocol switches and notes)."""

from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

from ..models.registry import REGISTRY, bank_method
from .figures import method_label, scope_label


def cfg_get(cfg: Mapping, dotted: str, default=None):
    """``cfg["a"]["b"]`` for ``"a.b"``; ``default`` where a level is missing."""
    cur: Any = cfg
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return default
        cur = cur[part]
    return cur


def ran_methods(cfg: Mapping) -> list:
    """The registry entries of the methods the config runs (unknown names skipped)."""
    return [REGISTRY[m] for m in (cfg_get(cfg, "methods", []) or []) if m in REGISTRY]


def derive_protocol(cfg: Mapping) -> str:
    """``paper`` / ``study`` when every protocol switch agrees (the run's own and those of the
    methods that ran, :attr:`Method.protocol`), else ``custom``."""
    own = [cfg_get(cfg, "threshold.mode", "exact") == "exact",
           cfg_get(cfg, "evaluation.pro_mode", "reference") == "reference",
           cfg_get(cfg, "analysis.confusion_normals", "heldout") == "heldout"]
    study = [cfg_get(cfg, "threshold.mode") == "study", cfg_get(cfg, "evaluation.pro_mode") == "study",
             cfg_get(cfg, "analysis.confusion_normals") == "train"]
    switches = [m.protocol(cfg) for m in ran_methods(cfg) if m.protocol is not None]
    if all(own) and all(s == "paper" for s in switches):
        return "paper"
    return "study" if all(study) and all(s == "study" for s in switches) else "custom"


def protocol_differences(cfg: Mapping, mt: pd.DataFrame, has_bank: bool) -> list[str]:
    """Numbered "Protocol differences from the study": the methods' items, then the run's."""
    g = lambda k, d=None: cfg_get(cfg, k, d)  # noqa: E731
    items = []
    # the methods' own items (adloc.models.describe), for the methods that ran
    for m in ran_methods(cfg):
        items += m.protocol_notes(cfg) if m.protocol_notes is not None else []
    crop = g("preprocess.crop")
    prep = (f"resize {g('preprocess.resize')} → centre crop {crop}" if crop
            else f"plain resize to {g('preprocess.resize')} (no crop)")
    backbones = ", ".join(f"{m.label} {g(m.name + '.backbone')}" for m in ran_methods(cfg))
    items.append(
        "Backbone and preprocessing: the study used ResNet-50 and a plain 224 resize. "
        f"**This run:** backbone {backbones}, {prep}."
    )
    # 3
    scopes_imgs = {}
    for scope in ("per_class", "global"):
        vals = {str(v) for v in mt.loc[(mt["scope"] == scope) & (mt["class"] != "macro"),
                                       "pixel_auroc_images"] if v is not None and not pd.isna(v)}
        if vals:
            scopes_imgs[scope] = ", ".join(sorted(vals))
    if len(set(scopes_imgs.values())) > 1:
        how = "; ".join(f"{scope_label(k)}: {v} test images" for k, v in scopes_imgs.items())
        items.append("Pixel AUROC: the study used all test images for per-class models and "
                     f"anomalous images only for the global model. **This run:** {how} (kept: "
                     "the two scopes are not directly comparable).")
    else:
        which = next(iter(scopes_imgs.values()), g("evaluation.pixel_auroc_images", "all"))
        items.append("Pixel AUROC: the study used all test images for per-class models and "
                     "anomalous images only for the global model. **This run:** "
                     f"{which} test images for both scopes (fixed: comparable).")
    # 4
    lim = g("evaluation.pro_fpr_limit", 0.3)
    if g("evaluation.pro_mode", "reference") == "reference":
        items.append("AU-PRO: the study used 200 linear thresholds, FPR over anomalous images only, "
                     "4-connected regions, no interpolation at the limit. **This run:** the "
                     f"reference definition (Bergmann et al. 2021): exact curve, 8-connected "
                     f"regions, FPR over all anomaly-free pixels, interpolated at FPR {lim} (fixed).")
    else:
        items.append("AU-PRO: the study used 200 linear thresholds, FPR over anomalous images only, "
                     "4-connected regions, no interpolation at the limit. **This run:** the "
                     f"study's computation, FPR limit {lim} (kept).")
    # 5
    if g("analysis.confusion_normals", "heldout") == "heldout":
        items.append("Cross-class thresholds: the study scored training normals the global model "
                     "had memorised. **This run:** held-out normals (val + test good) (fixed).")
    else:
        items.append("Cross-class thresholds: the study scored training normals the global model "
                     "had memorised. **This run:** training normals, in-sample (kept).")
    # 6
    bm = bank_method(cfg_get(cfg, "methods", []) or [])
    bank = (f"the global {method_label(bm)} memory bank coloured by source class, next to "
            if has_bank and bm else "")
    items.append("t-SNE: the study embedded mean-pooled frozen backbone features, which say "
                 f"nothing about the global model. **This run:** {bank}the backbone view, "
                 "labelled as such (fixed).")
    # 7
    nb = int(g("evaluation.bootstrap.n", 0) or 0)
    rep = cfg.get("repeats") or {}
    n_split = len(rep.get("split_seeds") or [None])
    n_model = len(rep.get("model_seeds") or [None])
    repeated = n_split * n_model > 1
    if repeated:
        seeds = (f"; {n_split} split seed(s) x {n_model} model seed(s), every gap with its "
                 "across-repeat t-interval and paired test")
    else:
        seeds = "; one split and one training seed (presets/repeats.yaml repeats both)"
    if nb > 0:
        items.append("Uncertainty: the study reported one seed on 89–116 test images per class "
                     f"with no intervals. **This run:** 95% bootstrap intervals ({nb} resamples, "
                     f"seed {g('evaluation.bootstrap.seed', 0)}), paired for the per-class − "
                     f"global gaps{seeds} (fixed).")
    else:
        items.append("Uncertainty: the study reported one seed with no intervals. **This run:** "
                     f"no bootstrap (evaluation.bootstrap.n = 0){seeds} "
                     f"({'fixed' if repeated else 'kept'}).")
    # 8
    if g("threshold.mode", "exact") == "exact":
        items.append("Thresholds: the study searched a 1000-point grid. **This run:** the exact "
                     "F1 maximum on each class's validation split (fixed).")
    else:
        items.append(f"Thresholds: the study searched a 1000-point grid. **This run:** the "
                     f"study's {g('threshold.grid_size', 1000)}-point grid (kept).")
    return [f"{i}. {t}" for i, t in enumerate(items, 1)]
