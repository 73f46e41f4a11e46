"""summary.md: a short, deterministic results section for one run.

:func:`render_summary` takes already-computed tables (no file access, no timestamps), so two runs
with identical inputs produce identical bytes. ``ctx`` keys:

============================  =====================================================================
``config``                    validated config dict (required)
``metrics_table``             :func:`adloc.analysis.tables.metrics_table` output (required)
``gap_table``                 :func:`adloc.analysis.gap.gap_table` output, or None
``confusion``                 {method: :func:`adloc.analysis.confusion.confusion_matrix` output}
``bank_composition``          :func:`adloc.analysis.tsne.memory_bank_composition` output, or None
``splits``                    {class: {train, val_normal, val_anomalous, test_normal,
                              test_anomalous}}; default: val/test counts from the metrics table
``figures``                   [(caption, relative path such as ``figures/gap.png``), ...]
``side_by_side``              :func:`adloc.analysis.study_reference.side_by_side` output, or None
                              (shown only when ``config["study_reference"]`` is true)
``protocol``                  protocol name; default derived from the config (paper/study/custom)
``version``, ``config_hash``  footer; defaults: ``adloc.__version__``, :func:`config_hash`
``notes``                     optional list of extra sentences appended to the setup
``warnings``                  sentences on how inputs were interpreted (the split files'
                              ``warnings``: EXIF orientation applied, bit depth inferred, ...),
                              shown in a Warnings section before the results when any
``repeats``                   repeat names (the first one's tables are ``metrics_table`` etc.)
``metrics_across``            :func:`adloc.analysis.repeats.metrics_across_repeats` output, or None
``gap_across``                :func:`adloc.analysis.repeats.gap_across_repeats` output, or None
``routing``                   {feature set: :func:`adloc.analysis.routing.routing_tables` accuracy
                              table} of the first repeat, or None
============================  =====================================================================
"""

from __future__ import annotations

import hashlib
from typing import Any, Mapping

from ..io import json_text, write_text
from ..models.registry import bank_method
from .anchors import anchor_lines
from .confusion import VARIANTS
from .figures import method_label
from .repeats import summary_lines
from .summary_protocol import cfg_get as _get
from .summary_protocol import derive_protocol, protocol_differences
from .summary_sections import (SectionInputs, bank_section, confusion_section, feature_sets,
                               figures_section, gap_section, identity_section, identity_sentences,
                               results_section, setup_section, side_by_side_section,
                               warnings_section)


def config_hash(config: Mapping[str, Any]) -> str:
    """First 12 hex digits of the sha256 of the key-sorted JSON of ``config``."""
    blob = json_text(config, compact=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]


def default_figures(config: Mapping[str, Any], repeat: str | None = None) -> list[tuple[str, str]]:
    """``(caption, relative path)`` of every figure the workflow draws, for ``ctx["figures"]``
    (paths relative to summary.md, as in ``results/<run>/figures/*.png``; the confusion figures
    of ``repeat`` are in ``<repeat>/figures/``)."""
    methods = list(_get(config, "methods", []) or [])
    variant = VARIANTS.get(_get(config, "analysis.confusion_normals", "heldout"), "")
    figs = [("Per-class minus global model, test split (error bars: across-repeat 95% "
             "t-intervals, or with one repeat paired bootstrap 95% intervals)", "figures/gap.png")]
    sub = f"{repeat}/" if repeat else ""
    for m in methods:
        figs.append((f"{method_label(m)} global model: class A's threshold on class B's "
                     f"{variant}" + (f" (repeat {repeat})" if repeat else ""),
                     f"{sub}figures/confusion_{m}.png"))
    for fset in feature_sets(config):
        figs.append((f"Class routing of the test images (routed scope), {fset} features"
                     + (f" (repeat {repeat})" if repeat else ""), f"{sub}figures/routing_{fset}.png"))
    bm = bank_method(methods)
    tsne = (f"t-SNE: global {method_label(bm)} memory bank by source class, and frozen backbone "
            "features" if bm else "t-SNE: frozen backbone features")
    figs.append((tsne, "figures/tsne.png"))
    for cls in _get(config, "classes", []) or []:
        figs.append((f"{cls}: test images, ground truth and anomaly maps",
                     f"figures/examples_{cls}.png"))
    return figs


def shift_section(shift_lines: list[str] | None) -> list[str]:
    """summary.md's domain-shift section from rule shift_tables' lines (none when shift is off)."""
    if not shift_lines:
        return []
    return ["### Domain shift: does unification cost more, and which phase recovers it", "",
            "Phases: no adaptation (clean models and thresholds on the shifted test split), "
            "threshold only (thresholds re-fitted on the shifted validation split), full "
            "(models re-fitted on the shifted train split too); tables "
            "`tables/shift_*.csv`, figures `figures/shift_<method>.png` and `figures/shift_examples_<cls>.png`.", "",
            *shift_lines, ""]


def render_summary(ctx: Mapping[str, Any]) -> str:
    """Markdown text of summary.md (see the module docstring for ``ctx``): one renderer per
    section, in order."""
    from .. import __version__

    s = SectionInputs.of(ctx)
    cfg, mt = s.cfg, s.mt
    run = s.get("run_name", "run")
    lines: list[str] = [f"# adloc results: per-class vs global anomaly detection ({run})", ""]
    lines += setup_section(s) + warnings_section(s)
    lines += results_section(s) + gap_section(s) + identity_section(s)
    if ctx.get("metrics_across") is not None and ctx.get("gap_across") is not None:
        lines += summary_lines(ctx["metrics_across"], ctx["gap_across"], s.reps or ["?"])
    bank = ctx.get("bank_composition")
    lines += confusion_section(s) + bank_section(s) + figures_section(s)
    lines += side_by_side_section(s)
    lines += anchor_lines(cfg, mt)  # published MVTec AD / VisA numbers, when they apply
    lines += shift_section(ctx.get("shift_lines"))
    lines += ["## Protocol differences from the study", ""]
    lines += protocol_differences(cfg, mt, bank is not None and len(bank) > 0)
    lines.append("")
    version = ctx.get("version") or __version__
    chash = ctx.get("config_hash") or config_hash(cfg)
    lines += ["---", f"adloc {version} · config hash `{chash}` · run `{run}`", ""]
    return "\n".join(lines)


def write_summary(path, ctx: Mapping[str, Any]) -> str:
    """Render and write summary.md atomically; returns the text."""
    text = render_summary(ctx)
    write_text(path, text)
    return text


__all__ = ["config_hash", "default_figures", "shift_section", "render_summary", "write_summary",
           "derive_protocol", "feature_sets", "identity_sentences", "SectionInputs"]
