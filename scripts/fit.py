"""Rules fit_class / fit_global: fit one model of a registered method
(adloc.models.registry) on train-split features (the
rows of each class's features that the repeat's split file puts in train), with the repeat's
model seed."""

import logging
import time

try:  # scripts/_common.py: this checkout's src/ first on sys.path
    from _common import as_list, run_script
except ModuleNotFoundError:  # a remote module (github(...)): the installed adloc
    from adloc.workflow import as_list, run_script

log = logging.getLogger("adloc.fit")


def main(smk):
    from adloc.data.splits import read_splits
    from adloc.models import build_model
    from adloc.pipeline import load_training_set
    from adloc.runtime import device_label, resolve_device

    p = smk.params
    train_paths = [
        [e["path"] for e in read_splits(s)["splits"]["train"]] for s in as_list(smk.input.splits)
    ]
    classes = list(getattr(p, "classes", None) or [smk.wildcards.get("cls")])
    train, sources = load_training_set(as_list(smk.input.features), classes, train_paths)
    device = resolve_device(p.device)
    model = build_model(
        smk.wildcards.method,
        {**p.model, "image_size": p.image_size, "seed": p.seed, "device": str(device)},
    )
    extra = {}
    if p.replay_draws:  # the study's draws: the models fitted before this one, then this one
        before = [read_splits(s) for s in as_list(smk.input.get("order", []))]
        this = "global" if getattr(p, "classes", None) else classes[0]
        extra["draw_order"] = [(s["class"], len(s["splits"]["train"])) for s in before]
        extra["draw_order"].append((this, sum(len(t) for t in train_paths)))
    t0 = time.perf_counter()
    model.fit(train, sources=sources, release_features=True, **extra)  # maps not needed after
    model.provenance["fit_device"] = device_label(device)
    log.info("fit %s on %d images in %.2f s", smk.wildcards.method, len(sources), time.perf_counter() - t0)
    model.save(smk.output[0])


run_script(snakemake, main)  # noqa: F821
