"""The evaluation scopes and which files each calibrate / evaluate job writes (issue 20 §4).

A scope is "which model + which threshold": ``per_class`` (the class's own model and
threshold), ``global`` (model-unified: the global model, the class's threshold),
``unified_abs`` (absolute-unified: the global model, ONE threshold on the pooled validation
split of every class) and ``routed`` (absolute-unified with class routing: the global model,
the threshold of the class each test image is routed to, :mod:`adloc.routing`).

The scope names are the words of the paths and tables (kept: runs and the study reference use
them); every threshold and metrics file also says the two parts explicitly
(:func:`scope_fields`): ``model_type`` (which model: ``per_class`` | ``global``, the rules'
``params: model``) and ``threshold_type`` (which threshold: ``class``, the class's own;
``pooled``, one on every class's validation split; ``routed``, the predicted class's).
``model`` in those files is the model file's name (``models/<method>/<model>.pt``: the class,
or ``global``). ARCHITECTURE.md has the table.

The rules say which model a job is for (``params: model``: ``per_class`` or ``global``) and
name their outputs (and inputs) by key; :func:`calibration_plan` and :func:`evaluation_plan`
map them to scopes, so scripts never guess the scope from file names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .errors import AdlocError
from .workflow import as_list

PER_CLASS = "per_class"
GLOBAL = "global"
UNIFIED_ABS = "unified_abs"
ROUTED = "routed"
#: Every scope, in table order.
SCOPES = (PER_CLASS, GLOBAL, UNIFIED_ABS, ROUTED)
#: The two models a job can be for (rules' ``params: model``).
MODELS = (PER_CLASS, GLOBAL)
#: evaluate_global's output keys -> the scope each holds.
GLOBAL_OUTPUTS = {"unified": GLOBAL, "pooled": UNIFIED_ABS, "routed": ROUTED}
#: Which threshold (``threshold_type``): the class's own, one pooled, the routed class's.
CLASS_THRESHOLD, POOLED = "class", "pooled"
THRESHOLD_TYPES = (CLASS_THRESHOLD, POOLED, ROUTED)
#: scope -> (model_type, threshold_type)
SCOPE_PARTS = {PER_CLASS: (PER_CLASS, CLASS_THRESHOLD), GLOBAL: (GLOBAL, CLASS_THRESHOLD),
               UNIFIED_ABS: (GLOBAL, POOLED), ROUTED: (GLOBAL, ROUTED)}


def scope_fields(scope: str) -> dict[str, str]:
    """``{"model_type": ..., "threshold_type": ...}`` of a scope: which model and which
    threshold, written into every threshold and metrics file beside ``scope``."""
    if scope not in SCOPE_PARTS:
        raise AdlocError(f"unknown scope {scope!r}; the scopes are {list(SCOPES)}")
    model_type, threshold_type = SCOPE_PARTS[scope]
    return {"model_type": model_type, "threshold_type": threshold_type}


@dataclass(frozen=True)
class CalibrationJob:
    """One threshold file: ``output``, its ``scope`` and the ``classes`` whose validation split
    it is calibrated on (one, or every class for the pooled threshold)."""

    output: str
    scope: str
    classes: tuple[str, ...]


@dataclass(frozen=True)
class EvaluationJob:
    """One metrics file: ``output`` and its ``scope``; ``threshold``: the threshold file it
    reads (None for ``routed``: every class's, per image)."""

    output: str
    scope: str
    threshold: str | None


def _model(model: str, what: str) -> str:
    if model not in MODELS:
        raise AdlocError(f"{what}: params.model must be one of {list(MODELS)}, got {model!r}; fix the rule")
    return model


def _key(named: Mapping[str, Any], key: str, what: str):
    if key not in named:
        raise AdlocError(f"{what}: the rule names no {key!r} file (has {sorted(named)}); fix the rule")
    return named[key]


def calibration_plan(model: str, outputs: Mapping[str, Any], classes: Sequence[str]) -> list[CalibrationJob]:
    """The threshold files of one calibrate job.

    ``model`` ``per_class``: output ``threshold`` for the one class of ``classes``; ``global``:
    output ``per_class`` (one file per class, in the order of ``classes``: the global model's
    per-class thresholds) and ``pooled`` (one threshold on every class's validation split).
    """
    what = "calibrate"
    classes = [str(c) for c in classes]
    if _model(model, what) == PER_CLASS:
        if len(classes) != 1:
            raise AdlocError(f"{what}: a per-class model is calibrated on one class, got {classes}")
        return [CalibrationJob(str(_key(outputs, "threshold", what)), PER_CLASS, tuple(classes))]
    files = [str(f) for f in as_list(_key(outputs, "per_class", what))]
    if len(files) != len(classes):
        raise AdlocError(f"{what}: {len(files)} per-class threshold files for classes {classes}")
    jobs = [CalibrationJob(f, GLOBAL, (c,)) for f, c in zip(files, classes)]
    return jobs + [CalibrationJob(str(_key(outputs, "pooled", what)), UNIFIED_ABS, tuple(classes))]


def evaluation_plan(model: str, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> list[EvaluationJob]:
    """The metrics files of one evaluate job, in the order they are computed.

    ``model`` ``per_class``: input ``threshold`` -> output ``metrics``; ``global``: ``threshold``
    -> ``unified`` (model-unified), ``pooled`` -> ``pooled`` (absolute-unified) and, when the
    rule names a ``routed`` output, inputs ``routing`` and ``class_thresholds`` -> ``routed``.
    """
    what = "evaluate"
    if _model(model, what) == PER_CLASS:
        return [EvaluationJob(str(_key(outputs, "metrics", what)), PER_CLASS,
                              str(_key(inputs, "threshold", what)))]
    jobs = [EvaluationJob(str(_key(outputs, "unified", what)), GLOBAL, str(_key(inputs, "threshold", what))),
            EvaluationJob(str(_key(outputs, "pooled", what)), UNIFIED_ABS, str(_key(inputs, "pooled", what)))]
    if "routed" in outputs:
        _key(inputs, "routing", what)
        _key(inputs, "class_thresholds", what)
        jobs.append(EvaluationJob(str(outputs["routed"]), ROUTED, None))
    return jobs


__all__ = ["PER_CLASS", "GLOBAL", "UNIFIED_ABS", "ROUTED", "SCOPES", "MODELS", "GLOBAL_OUTPUTS",
           "CLASS_THRESHOLD", "POOLED", "THRESHOLD_TYPES", "SCOPE_PARTS", "scope_fields",
           "CalibrationJob", "EvaluationJob", "calibration_plan", "evaluation_plan"]
