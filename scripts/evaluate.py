"""Rules evaluate / evaluate_global: image + pixel metrics on a class's test split at the
calibrated threshold (rule calibrate). ``evaluate_global`` writes the global model's three
scopes from one scores file, computing the pixel metrics once: model-unified (the class's own
threshold), absolute-unified (the pooled one) and routed (each test image judged at the
threshold of the class rule route predicted for it; adloc.routing). Which file holds which
scope: :func:`adloc.scopes.evaluation_plan` from the rule's ``params.model`` and file keys."""

import json

try:  # scripts/_common.py: this checkout's src/ first on sys.path
    from _common import as_list, run_script
except ModuleNotFoundError:  # a remote module (github(...)): the installed adloc
    from adloc.workflow import as_list, run_script


def main(smk):
    from adloc.data.splits import check_unchanged, read_splits
    from adloc.data.transforms import Preprocess
    from adloc.io import write_json
    from adloc.pipeline import evaluate_scores, read_threshold
    from adloc.routing import evaluate_routed
    from adloc.scopes import GLOBAL, ROUTED, evaluation_plan, scope_fields
    from adloc.scores import read_scores

    p = smk.params
    w = smk.wildcards
    scores = read_scores(smk.input.scores)
    splits = read_splits(smk.input.splits)
    # the masks are read here, long after the images were: they must be the split's
    check_unchanged(p.root, splits, smk.input.splits, names=("test",), keys=("mask",))
    pre = Preprocess.from_config(p.preprocess)
    inputs = dict(smk.input.items())
    unified = None  # the model-unified result: the routed scope shares its threshold-free part
    for job in evaluation_plan(p.model, inputs, dict(smk.output.items())):
        if job.scope == ROUTED:
            result = evaluate_routed(unified, scores, w.cls, inputs["routing"], as_list(inputs["class_thresholds"]))
        else:
            result = evaluate_scores(
                scores,
                splits,
                root=p.root,
                pre=pre,
                threshold=read_threshold(job.threshold)["threshold"],
                eval_cfg=p.evaluation,
                scope=job.scope,
                pixel=None if unified is None else unified["pixel"],
            )
            result.update(provenance=json.loads(str(scores["provenance"])))
        result.update(method=w.method, scope=job.scope, model=GLOBAL if p.model == GLOBAL else w.cls,
                      **scope_fields(job.scope))
        result["class"] = w.cls
        if job.scope == GLOBAL:
            unified = result
        write_json(job.output, result)


run_script(snakemake, main)  # noqa: F821
