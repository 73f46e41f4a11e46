"""Rule tsne: the global memory bank (first method with one, adloc.models.registry) by source
class, beside the study's backbone view.

A view t-SNE cannot embed (identical or non-finite features, e.g. an all-black class) is an N/A
panel; its warning goes to tables/tsne_notes.json, which the summary repeats."""

import logging

try:  # scripts/_common.py: this checkout's src/ first on sys.path
    from _common import as_list, run_script
except ModuleNotFoundError:  # a remote module (github(...)): the installed adloc
    from adloc.workflow import as_list, run_script

log = logging.getLogger("adloc.tsne")


def main(smk):
    from adloc.analysis import memory_bank_composition, plot_tsne, savefig, write_bank_composition
    from adloc.analysis.tsne import (
        BACKBONE_TITLE,
        BANK_TITLE,
        bank_by_source,
        duplicate_train_images,
        pooled_backbone_features,
        safe_view,
    )
    from adloc.data.splits import read_splits
    from adloc.features import load_features
    from adloc.io import write_json

    p = smk.params
    t = p.tsne
    kw = dict(seed=t["seed"], perplexity=t["perplexity"], max_points_per_class=t["max_points_per_class"])
    views, warnings = [], []
    if smk.input.model:
        from adloc.models import load_model, method_label

        bank, source, patches = bank_by_source(load_model(p.bank_method, smk.input.model))
        hashes = {}  # class -> sha256 of its training images: exact duplicates across classes
        for f in as_list(smk.input.splits):
            sp = read_splits(f)
            hashes[sp["class"]] = [e["sha256"] for e in sp["splits"]["train"]]
        composition = memory_bank_composition(source, patches, duplicate_train_images(hashes))
        write_bank_composition(smk.output.composition, composition)
        view, notes = safe_view(BANK_TITLE.format(method=method_label(p.bank_method)), bank, source, **kw)
        views.append(view)
        warnings += notes
    sets = [  # the first repeat's training images of each class
        load_features(f, paths=[e["path"] for e in read_splits(sf)["splits"]["train"]], keep_dtype=True)
        for f, sf in zip(as_list(smk.input.features), as_list(smk.input.splits))
    ]
    view, notes = safe_view(BACKBONE_TITLE, *pooled_backbone_features(sets, p.classes), **kw)
    views.append(view)
    warnings += notes
    for w in warnings:
        log.warning("%s", w)
    savefig(plot_tsne(views), smk.output.figure)
    write_json(smk.output.notes, {
        "views": [{"title": v[0], "drawn": v[1] is not None, "reason": v[3] if v[1] is None else None}
                  for v in views],
        "warnings": warnings,
    })


run_script(snakemake, main)  # noqa: F821
