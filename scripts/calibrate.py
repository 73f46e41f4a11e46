"""Rules calibrate / calibrate_global: F1-max thresholds on the validation split, one file each.

``calibrate`` writes a per-class model's threshold for its class; ``calibrate_global`` writes the
global model's threshold for every class (model-unified) and ONE threshold on the pooled
validation split of every class (``pooled``, the absolute-unified scope). Which file holds which
scope: :func:`adloc.scopes.calibration_plan` from the rule's ``params.model`` and output keys.
Rule evaluate reads them.
"""

from pathlib import Path

try:  # scripts/_common.py: this checkout's src/ first on sys.path
    from _common import as_list, run_script
except ModuleNotFoundError:  # a remote module (github(...)): the installed adloc
    from adloc.workflow import as_list, run_script


def main(smk):
    from adloc.data.splits import read_splits, val_anomaly_advice
    from adloc.errors import CalibrationError
    from adloc.io import write_json
    from adloc.pipeline import calibrate_scores
    from adloc.scopes import GLOBAL, UNIFIED_ABS, calibration_plan, scope_fields
    from adloc.scores import read_scores

    w = smk.wildcards
    cfg = smk.params.threshold
    files = as_list(smk.input.scores)
    classes = [Path(f).stem for f in files]
    scores = dict(zip(classes, (read_scores(f) for f in files)))
    # each class's fix for a validation split without anomalies, from its split file's counts
    advice = {Path(f).stem: val_anomaly_advice(read_splits(f)) for f in as_list(smk.input.splits)}
    model = smk.params.model
    for job in calibration_plan(model, dict(smk.output.items()), classes):
        cls = list(job.classes)
        try:
            result = calibrate_scores([scores[c] for c in cls], cfg, cls,
                                      advice=advice.get(cls[0]) if len(cls) == 1 else None)
        except CalibrationError as exc:  # say which classes and model: the message alone does not
            if job.scope == UNIFIED_ABS:
                what = f"pooled validation split of {', '.join(cls)}, {w.method} global model"
            else:
                what = f"class {cls[0]}, {w.method} {job.scope} model ({files[classes.index(cls[0])]})"
            raise CalibrationError(f"{what}: {exc}") from None
        result.update(method=w.method, model=GLOBAL if model == GLOBAL else w.cls, scope=job.scope,
                      **scope_fields(job.scope))
        write_json(job.output, result)


run_script(snakemake, main)  # noqa: F821
