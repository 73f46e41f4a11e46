"""Rules score / score_global: image scores and test anomaly maps of one model on val and test.

``score`` handles one per-class model and its class; ``score_global`` loads the global model
once and writes one scores file per class (outputs, inputs and classes in the same order). A
split's images are the rows of the class's features that the repeat's split file lists.
"""

import logging

try:  # scripts/_common.py: this checkout's src/ first on sys.path
    from _common import as_list, run_script
except ModuleNotFoundError:  # a remote module (github(...)): the installed adloc
    from adloc.workflow import as_list, run_script

log = logging.getLogger("adloc.score")


def main(smk):
    from adloc.data.splits import read_splits
    from adloc.models import load_model
    from adloc.pipeline import score_splits
    from adloc.runtime import device_label, resolve_device
    from adloc.scores import write_scores

    device = resolve_device(smk.params.device)
    model = load_model(smk.wildcards.method, smk.input.model, device=str(device))
    provenance = {**model.provenance, "score_device": device_label(device)}
    for k, out in enumerate(smk.output):
        splits = read_splits(as_list(smk.input.splits)[k])
        # the method's predict options (adloc.models.registry)
        results = score_splits(model, as_list(smk.input.features)[k], splits, smk.params.splits,
                               smk.params.predict, log=log)
        write_scores(out, provenance, results)


run_script(snakemake, main)  # noqa: F821
