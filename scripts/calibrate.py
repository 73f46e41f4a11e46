"""Rules calibrate / calibrate_global: F1-max thresholds on the validation split, one file each.

``calibrate`` writes a per-class model's threshold for its class; ``calibrate_global`` writes the
global model's threshold for every class (model-unified) and ONE threshold on the pooled
validation split of every class (``pooled``, the absolute-unified scope). Rule evaluate reads them.
"""

from pathlib import Path

try:  # scripts/_common.py: this checkout's src/ first on sys.path
    from _common import as_list, run_script
except ModuleNotFoundError:  # a remote module (github(...)): the installed adloc
    from adloc.workflow import as_list, run_script


def main(smk):
    from adloc.data.splits import read_splits, val_anomaly_advice
    from adloc.errors import CalibrationError
    from adloc.io import load_npz, write_json
    from adloc.pipeline import calibrate_scores

    w = smk.wildcards
    cfg = smk.params.threshold
    files = as_list(smk.input.scores)
    scores = [load_npz(f, what="scores file") for f in files]
    classes = [Path(f).stem for f in files]
    # each class's fix for a validation split without anomalies, from its split file's counts
    advice = {Path(f).stem: val_anomaly_advice(read_splits(f)) for f in as_list(smk.input.splits)}
    model = w.get("cls", "global")
    jobs = []  # (output, scope, classes, scores)
    if model == "global":
        outs = as_list(smk.output.per_class)
        jobs += [(o, "global", [c], [s]) for o, c, s in zip(outs, classes, scores)]
        jobs.append((smk.output.pooled, "unified_abs", classes, scores))
    else:
        jobs.append((smk.output[0], "per_class", classes, scores))
    for out, scope, cls, sc in jobs:
        try:
            result = calibrate_scores(sc, cfg, cls, advice=advice.get(cls[0]) if len(cls) == 1 else None)
        except CalibrationError as exc:  # say which classes and model: the message alone does not
            if scope == "unified_abs":
                what = f"pooled validation split of {', '.join(cls)}, {w.method} global model"
            else:
                what = f"class {cls[0]}, {w.method} {scope} model ({files[classes.index(cls[0])]})"
            raise CalibrationError(f"{what}: {exc}") from None
        result.update(method=w.method, model=model, scope=scope)
        write_json(out, result)


run_script(snakemake, main)  # noqa: F821
