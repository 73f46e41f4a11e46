"""Rule evaluate: threshold from the class's val split, image + pixel metrics on its test split."""

import json

from _common import run_script


def main(smk):
    from adloc.data.splits import read_splits
    from adloc.data.transforms import Preprocess
    from adloc.errors import CalibrationError
    from adloc.io import load_npz, write_json
    from adloc.pipeline import evaluate_scores

    p = smk.params
    w = smk.wildcards
    scope = "global" if w.scope == "global" else "per_class"
    scores = load_npz(smk.input.scores, what="scores file")
    try:
        result = evaluate_scores(
            scores,
            read_splits(smk.input.splits),
            root=p.root,
            pre=Preprocess(resize=p.preprocess["resize"], crop=p.preprocess["crop"]),
            threshold_cfg=p.threshold,
            eval_cfg=p.evaluation,
            scope=scope,
        )
    except CalibrationError as exc:  # say which class and model: the message alone does not
        raise CalibrationError(f"class {w.cls}, {w.method} {scope} model ({smk.input.scores}): {exc}") from None
    result.update(
        method=w.method,
        scope=scope,
        model=w.scope,
        provenance=json.loads(str(scores["provenance"])),
    )
    result["class"] = w.cls
    write_json(smk.output[0], result)


run_script(snakemake, main)  # noqa: F821
