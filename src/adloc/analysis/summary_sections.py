"""summary.md's sections, one renderer each (:func:`adloc.analysis.summary.render_summary` calls
them in order): each takes the :class:`SectionInputs` built once from the summary's ``ctx`` (the
keys are listed in :mod:`adloc.analysis.summary`) and returns its markdown lines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..config import feature_set_name
from ..models.registry import REGISTRY, bank_method, method_names
from .confusion import VARIANTS, confusion_cells, summary_sentence
from .figures import method_label, scope_label
from .gap import METRIC_LABELS, significant_gaps, wide_gap_table
from .retrieval import retrieval_sentences
from .routing import routing_sentences
from .study_reference import wide_side_by_side
from .summary_protocol import cfg_get as _get
from .summary_protocol import derive_protocol
from .tables import display_table
from .tsne import covered_sentences


@dataclass(frozen=True)
class SectionInputs:
    """What every section renderer reads, built once by :func:`render_summary` from its ``ctx``:
    the mapping itself, the config, the first repeat's metrics table and the repeat names."""

    ctx: Mapping[str, Any]
    cfg: Mapping[str, Any]
    mt: pd.DataFrame
    reps: list[str]

    @classmethod
    def of(cls, ctx: Mapping[str, Any]) -> SectionInputs:
        return cls(ctx=ctx, cfg=ctx["config"], mt=ctx["metrics_table"],
                   reps=list(ctx.get("repeats") or []))

    def get(self, dotted: str, default=None):
        """A config value by dotted key (``"evaluation.bootstrap.n"``), ``default`` if unset."""
        return _get(self.cfg, dotted, default)

    @property
    def n_boot(self) -> int:
        return int(self.get("evaluation.bootstrap.n", 0) or 0)


def md_table(df: pd.DataFrame) -> str:
    """Markdown table; strings printed verbatim (no number re-parsing)."""
    return df.to_markdown(index=False, disable_numparse=True)


def fmt_number(x, d: int = 4) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)) or pd.isna(x):
        return "N/A"
    return f"{float(x):.{d}f}"


def provenance_parts(mt: pd.DataFrame) -> list[str]:
    out = []
    rows = mt[mt["class"] != "macro"]
    for method in dict.fromkeys(rows["method"]):
        r = rows[rows["method"] == method]
        bb = sorted({str(v) for v in r["backbone"] if v is not None and not pd.isna(v)})
        wt = sorted({str(v) for v in r["weights"] if v is not None and not pd.isna(v)})
        sh = sorted({str(v) for v in r["weights_sha256"] if v is not None and not pd.isna(v)})
        text = f"{method_label(method)}: backbone {', '.join(bb) or 'unknown'}"
        if any("random" in w.lower() for w in wt):
            text += (", **RANDOM weights** (seeded, not pretrained: the numbers measure a random "
                     "feature extractor, not the method as published)")
        else:
            text += f", weights {', '.join(wt) or 'unknown'}"
            if sh:
                text += " (sha256 " + ", ".join(s[:12] for s in sh) + "…)"
        dev = sorted({str(v) for v in r["device"] if v is not None and not pd.isna(v)})
        if dev:
            text += f", ran on: {' | '.join(dev)}"
        out.append(text)
    return out


def splits_table(ctx: Mapping, mt: pd.DataFrame) -> pd.DataFrame:
    splits = ctx.get("splits")
    cols = ["class", "train", "val normal", "val anomalous", "test normal", "test anomalous"]
    rows = []
    if splits:
        for cls, s in splits.items():
            rows.append([cls] + [str(s.get(k, "?")) for k in
                                 ("train", "val_normal", "val_anomalous", "test_normal",
                                  "test_anomalous")])
    else:
        pc = mt[(mt["class"] != "macro")].drop_duplicates("class")
        for _, r in pc.iterrows():
            def c(k):
                return "?" if pd.isna(r[k]) else str(int(r[k]))
            rows.append([r["class"], "?", c("n_val_normal"), c("n_val_anomalous"),
                         c("n_test_normal"), c("n_test_anomalous")])
    return pd.DataFrame(rows, columns=cols)


def identity_sentences(mt: pd.DataFrame) -> list[str]:
    """What knowing the class at inference buys: model-unified (the global model with each
    class's own threshold) minus absolute-unified (the same model, one pooled threshold), in F1
    and accuracy, macro over classes and the class where it matters most, and the routed scope
    (the predicted class's threshold) beside them when the table has it; one line per method."""
    out = []
    for method in dict.fromkeys(mt["method"]):
        d = mt[mt["method"] == method]
        gl = d[d["scope"] == "global"].set_index("class")
        ab = d[d["scope"] == "unified_abs"].set_index("class")
        rt = d[d["scope"] == "routed"].set_index("class")
        if gl.empty or ab.empty or "macro" not in gl.index or "macro" not in ab.index:
            continue
        parts = []
        for metric, label in (("f1", "F1"), ("accuracy", "accuracy")):
            a, b = gl.at["macro", metric], ab.at["macro", metric]
            diff = "N/A" if pd.isna(a) or pd.isna(b) else f"{a - b:+.4f}"
            text = (f"macro {label} {fmt_number(a)} with per-class thresholds vs {fmt_number(b)} with one "
                    f"threshold ({diff})")
            if "macro" in rt.index:
                r = rt.at["macro", metric]
                text += f" vs {fmt_number(r)} routed ({'N/A' if pd.isna(a) or pd.isna(r) else f'{a - r:+.4f}'})"
            parts.append(text)
        per = (gl["f1"] - ab["f1"]).drop("macro", errors="ignore").dropna()
        worst = ""
        if len(per) and per.max() > 0:
            cls = per.sort_values(ascending=False, kind="mergesort").index[0]
            worst = (f"; the class that gains most F1 from its own threshold: {cls} (F1 "
                     f"{fmt_number(gl.at[cls, 'f1'])} vs {fmt_number(ab.at[cls, 'f1'])}, threshold "
                     f"{fmt_number(gl.at[cls, 'threshold'], 4)} vs {fmt_number(ab.at[cls, 'threshold'], 4)})")
        elif len(per):
            worst = "; no class gains F1 from its own threshold"
        out.append(f"- {method_label(method)} global model: " + "; ".join(parts) + worst + ".")
    return out


def feature_sets(cfg: Mapping) -> dict[str, list[str]]:
    """Feature set -> the methods of the config that read it (each is routed on it)."""
    out: dict[str, list[str]] = {}
    for m in _get(cfg, "methods", []) or []:
        bb, wt = _get(cfg, f"{m}.backbone"), _get(cfg, f"{m}.weights")
        if bb and wt:
            out.setdefault(feature_set_name(bb, wt), []).append(m)
    return out


def setup_section(s: SectionInputs) -> list[str]:
    """**Setup.**: dataset, protocol, methods, preprocessing, thresholds, metrics, intervals; the split sizes."""
    ctx, cfg, mt, g = s.ctx, s.cfg, s.mt, s.get
    protocol = ctx.get("protocol") or derive_protocol(cfg)
    lines: list[str] = []
    synthetic = bool(g("dataset.generate", False))
    classes = list(g("classes", [])) or sorted(mt.loc[mt["class"] != "macro", "class"].unique())
    methods = list(dict.fromkeys(mt["method"])) or list(g("methods", []))
    crop = g("preprocess.crop")
    prep = (f"resized to {g('preprocess.resize')} and centre-cropped to {crop}" if crop
            else f"resized to {g('preprocess.resize')} (no crop)")
    nb = s.n_boot
    thr = ("the exact F1 maximum" if g("threshold.mode", "exact") == "exact"
           else f"the study's {g('threshold.grid_size', 1000)}-point F1 grid")
    pro = ("the reference AU-PRO (Bergmann et al.)" if g("evaluation.pro_mode") == "reference"
           else "the study's PRO computation")
    setup = (
        f"**Setup.** Dataset `{g('dataset.root')}` "
        f"({'SYNTHETIC, generated by adloc: numbers do not transfer to MVTec AD' if synthetic else 'real images'}), "
        f"classes {', '.join(classes)}; split sizes below. Protocol **{protocol}**. "
        f"Methods {', '.join(method_label(m) for m in methods)}, each trained once per class "
        "(per-class) and once on all classes' training images (global), the global model "
        "evaluated with each class's threshold (model-unified) and with one threshold from the "
        f"pooled validation split of every class (absolute-unified). {'; '.join(provenance_parts(mt))}. Images {prep}. "
        + "".join(f"{REGISTRY[m].setup(cfg)}. " for m in methods
                  if m in REGISTRY and REGISTRY[m].setup is not None)
        + f"Thresholds: {thr} on each "
        f"class's validation split. Pixel metrics: pixel AUROC over "
        f"{g('evaluation.pixel_auroc_images', 'all')} test images and {pro} up to FPR "
        f"{g('evaluation.pro_fpr_limit', 0.3)}"
        + (f" (AU-PRO strict: up to FPR {g('evaluation.pro_fpr_limit_strict')})"
           if g("evaluation.pro_fpr_limit_strict") is not None else "")
        + ". "
        + (f"Intervals: {nb}-resample bootstrap (seed {g('evaluation.bootstrap.seed', 0)})."
           if nb > 0 else "No bootstrap intervals (evaluation.bootstrap.n = 0).")
    )
    for note in ctx.get("notes") or []:
        setup += " " + str(note)
    lines += [setup, "", md_table(splits_table(ctx, mt)), ""]
    return lines


def warnings_section(s: SectionInputs) -> list[str]:
    """How inputs were interpreted (the split files' warnings), when any."""
    lines: list[str] = []
    warnings = list(s.ctx.get("warnings") or [])
    if warnings:
        lines += ["## Warnings", "",
                  "The reader interpreted these inputs instead of reading them verbatim, or a "
                  "view could not be drawn from them; check that this is what the data means:",
                  ""]
        lines += [f"- {w}" for w in warnings] + [""]

    return lines


def results_section(s: SectionInputs) -> list[str]:
    """The metrics table of the first repeat, N/A notes, threshold fallbacks."""
    mt, reps = s.mt, s.reps
    lines: list[str] = []
    of_rep = f", repeat {reps[0]}" if reps else ""
    lines += ["## Results", "", f"### Per-class vs global models (test split{of_rep})", "",
              md_table(display_table(mt)), "",
              "N/A: not defined (a class without ground-truth masks has no pixel metrics; one "
              "without anomalous test images no AUROC, AUPRC or F1; one without normal test "
              "images, an empty test/good, no AUROC, AUPRC or specificity, the last in "
              "tables/metrics.csv). Macro rows average the classes where a metric is defined; "
              "(k/n) marks a mean over k of the n classes (thresholds and intervals left blank).",
              ""]
    fb = mt[(mt["class"] != "macro") & mt["threshold_fallback"].notna()]
    if len(fb):
        lines += ["**Threshold fallbacks** (the validation split could not calibrate an F1 "
                  "threshold): " + "; ".join(
                      f"{method_label(r['method'])} {scope_label(r['scope'])} {r['class']}: "
                      f"{r['threshold_fallback']}" for _, r in fb.iterrows()) + ".", ""]

    return lines


def gap_section(s: SectionInputs) -> list[str]:
    """Per-class minus global gaps and which intervals exclude 0."""
    nb, reps = s.n_boot, s.reps
    lines: list[str] = []
    gap = s.ctx.get("gap_table")
    lines += [f"### Gap: per-class minus global{' (repeat ' + reps[0] + ')' if reps else ''}", ""]
    if gap is None or len(gap) == 0:
        lines += ["Not computed.", ""]
    else:
        lines += [md_table(wide_gap_table(gap)), ""]
        sig = significant_gaps(gap)
        if nb <= 0:
            lines += ["Point differences only (no bootstrap).", ""]
        elif sig.empty:
            lines += ["No AUROC or AUPRC gap has a paired-bootstrap 95% interval excluding 0: at "
                      "this test-set size the per-class and global models are not "
                      "distinguishable on ranking metrics.", ""]
        else:
            parts = [f"{method_label(r['method'])} {r['class']} "
                     f"{METRIC_LABELS.get(r['metric'], r['metric'])} "
                     f"{r['gap']:+.4f} [{r['gap_low']:+.4f}, {r['gap_high']:+.4f}]"
                     for _, r in sig.iterrows()]
            n_ci = int(gap["gap_low"].notna().sum())
            lines += [f"{len(sig)} of {n_ci} intervals exclude 0 (marked *): "
                      + "; ".join(parts) + ". Positive favours the per-class model.", ""]
        retrieval = retrieval_sentences(gap)  # methods that retrieve whole training images
        lines += retrieval + ([""] if retrieval else [])

    return lines


def identity_section(s: SectionInputs) -> list[str]:
    """What class identity at inference buys (model-unified vs absolute-unified vs routed), with routing accuracy."""
    mt, reps = s.mt, s.reps
    lines: list[str] = []
    ident = identity_sentences(mt)
    if ident:
        across = (" Across every repeat: the model-unified and absolute-unified rows of the macro "
                  "table under Across repeats." if len(reps) > 1 else "")
        lines += ["### What class identity at inference buys" + (f" (repeat {reps[0]})" if reps else ""), "",
                  "The global model with each class's own threshold (model-unified) against the "
                  "same model and scores with ONE threshold, F1-max on the pooled validation "
                  "split of every class (absolute-unified) and with the threshold of the class "
                  "each test image is routed to, predicted from the image (routed); positive = "
                  "knowing the class helps. Ranking and pixel metrics do not depend on the "
                  "threshold, so they are the same in all three scopes." + across, ""] + ident + [""]
        routing = s.ctx.get("routing") or {}
        if routing:
            methods_of = feature_sets(s.cfg)
            lines += ["Routing (the routed scope's predicted class; tables "
                      "`<repeat>/tables/routing_*.csv`, figures `<repeat>/figures/routing_*.png`):", ""]
            lines += routing_sentences(routing, int(s.get("routing.k", 5)), methods_of) + [""]

    return lines


def confusion_section(s: SectionInputs) -> list[str]:
    """Cross-class thresholds on the global model."""
    lines: list[str] = []
    conf = s.ctx.get("confusion") or {}
    variant = s.get("analysis.confusion_normals", "heldout")
    lines += ["### Cross-class thresholds on the global model", ""]
    if not conf:
        lines += ["Not computed.", ""]
    else:
        lines += [f"Cell (A, B): share of class B's {VARIANTS.get(variant, variant)} whose "
                  "global-model score reaches class A's threshold; the last row applies the one "
                  "pooled (absolute-unified) threshold.", ""]
        known = method_names()
        order = sorted(conf, key=lambda m: (known.index(m) if m in known else len(known), m))
        for method in order:
            lines.append(f"- {summary_sentence(conf[method], method)}")
        lines.append("")
        for method in order:
            lines += [f"{method_label(method)} (rows: threshold of class A; columns: normals of "
                      "class B):", "", md_table(confusion_cells(conf[method])), ""]

    return lines


def bank_section(s: SectionInputs) -> list[str]:
    """The global memory bank's composition, when a method has one."""
    lines: list[str] = []
    bank = s.ctx.get("bank_composition")
    if bank is not None and len(bank):
        lines += [f"### Global {method_label(bank_method(s.get('methods', []) or []))} memory bank", ""]
        b = bank.copy()
        b["bank_share"] = b["bank_share"].map(lambda x: fmt_number(x, 3))
        b["kept_share"] = b["kept_share"].map(lambda x: fmt_number(x, 4))
        b = b.astype(object).where(b.notna(), "").astype(str)
        lines += [md_table(b), ""]
        covered = covered_sentences(bank)
        if covered:
            lines += ["Duplicated training images: " + " ".join(covered), ""]

    return lines


def figures_section(s: SectionInputs) -> list[str]:
    """The run's figures, captioned."""
    lines: list[str] = []
    figs = s.ctx.get("figures") or []
    if figs:
        lines += ["### Figures", ""]
        for caption, path in figs:
            lines += [f"![{caption}]({path})", "", f"*{caption}*", ""]

    return lines


def side_by_side_section(s: SectionInputs) -> list[str]:
    """The study's published numbers beside ours (study_reference)."""
    lines: list[str] = []
    sbs = s.ctx.get("side_by_side")
    if s.get("study_reference", False):
        lines += ["### Side by side with the study's published numbers", ""]
        if sbs is None or len(sbs) == 0:
            lines += ["No class of this run matches the study's classes (hazelnut, carpet, "
                      "zipper); nothing to compare.", ""]
        else:
            lines += ["Each cell: ours / study (ours − study).", "",
                      md_table(wide_side_by_side(sbs)), "",
                      "The study's per-class pixel AUROC is over all test images, its global "
                      "pixel AUROC over anomalous images only; it published precision and "
                      "recall for the global model only (blank cells: nothing published).", ""]

    return lines


__all__ = ["SectionInputs", "md_table", "fmt_number", "provenance_parts", "splits_table",
           "identity_sentences", "feature_sets", "setup_section", "warnings_section",
           "results_section", "gap_section", "identity_section", "confusion_section",
           "bank_section", "figures_section", "side_by_side_section"]
