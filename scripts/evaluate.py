"""Rules evaluate / evaluate_global: image + pixel metrics on a class's test split at the
calibrated threshold (rule calibrate). ``evaluate_global`` writes the global model's two scopes
(model-unified: the class's own threshold; absolute-unified: the pooled one) from one scores
file, computing the pixel metrics once."""

import json

try:  # scripts/_common.py: this checkout's src/ first on sys.path
    from _common import run_script
except ModuleNotFoundError:  # a remote module (github(...)): the installed adloc
    from adloc.workflow import run_script


def main(smk):
    from adloc.data.splits import check_unchanged, read_splits
    from adloc.data.transforms import Preprocess
    from adloc.io import load_npz, write_json
    from adloc.pipeline import evaluate_scores, read_threshold

    p = smk.params
    w = smk.wildcards
    scores = load_npz(smk.input.scores, what="scores file")
    splits = read_splits(smk.input.splits)
    # the masks are read here, long after the images were: they must be the split's
    check_unchanged(p.root, splits, smk.input.splits, names=("test",), keys=("mask",))
    pre = Preprocess.from_config(p.preprocess)
    if "pooled" in smk.input.keys():
        jobs = [("global", smk.input.threshold, smk.output.unified), ("unified_abs", smk.input.pooled, smk.output.pooled)]
        model = "global"
    else:
        jobs = [("per_class", smk.input.threshold, smk.output[0])]
        model = w.cls
    pixel = None
    for scope, thr_file, out in jobs:
        result = evaluate_scores(
            scores,
            splits,
            root=p.root,
            pre=pre,
            threshold=read_threshold(thr_file)["threshold"],
            eval_cfg=p.evaluation,
            scope=scope,
            pixel=pixel,
        )
        pixel = result["pixel"]
        result.update(
            method=w.method,
            scope=scope,
            model=model,
            provenance=json.loads(str(scores["provenance"])),
        )
        result["class"] = w.cls
        write_json(out, result)


run_script(snakemake, main)  # noqa: F821
