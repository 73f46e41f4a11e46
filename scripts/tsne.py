"""Rule tsne: the global PatchCore memory bank by source class, beside the study's backbone view."""

from _common import as_list, run_script


def main(smk):
    from adloc.analysis import embed_view, memory_bank_composition, plot_tsne, savefig, write_bank_composition
    from adloc.analysis.tsne import (
        BACKBONE_TITLE,
        BANK_TITLE,
        bank_by_source,
        duplicate_train_images,
        pooled_backbone_features,
    )
    from adloc.data.splits import read_splits
    from adloc.features import load_features

    p = smk.params
    t = p.tsne
    kw = dict(seed=t["seed"], perplexity=t["perplexity"], max_points_per_class=t["max_points_per_class"])
    views = []
    if smk.input.model:
        from adloc.models import load_model

        bank, source, patches = bank_by_source(load_model("patchcore", smk.input.model))
        hashes = {}  # class -> sha256 of its training images: exact duplicates across classes
        for f in as_list(smk.input.splits):
            sp = read_splits(f)
            hashes[sp["class"]] = [e["sha256"] for e in sp["splits"]["train"]]
        composition = memory_bank_composition(source, patches, duplicate_train_images(hashes))
        write_bank_composition(smk.output.composition, composition)
        views.append((BANK_TITLE, *embed_view(bank, source, **kw)))
    sets = [  # the first repeat's training images of each class
        load_features(f, paths=[e["path"] for e in read_splits(sf)["splits"]["train"]])
        for f, sf in zip(as_list(smk.input.features), as_list(smk.input.splits))
    ]
    views.append((BACKBONE_TITLE, *embed_view(*pooled_backbone_features(sets, p.classes), **kw)))
    savefig(plot_tsne(views), smk.output.figure)


run_script(snakemake, main)  # noqa: F821
