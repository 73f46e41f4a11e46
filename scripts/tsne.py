"""Rule tsne: the global PatchCore memory bank by source class, beside the study's backbone view."""

from pathlib import Path

import numpy as np

from _common import as_list, run_script


def main(smk):
    import torch

    from adloc.analysis import embed_view, memory_bank_composition, plot_tsne, savefig, write_bank_composition
    from adloc.analysis.tsne import BACKBONE_TITLE, BANK_TITLE, duplicate_train_images
    from adloc.data.splits import read_splits
    from adloc.features import load_features

    p = smk.params
    t = p.tsne
    kw = dict(seed=t["seed"], perplexity=t["perplexity"], max_points_per_class=t["max_points_per_class"])
    views = []
    pooled, labels, patches = [], [], {}
    for f, cls in zip(as_list(smk.input.features), p.classes):
        assert Path(f).parent.name == cls, (f, cls)
        fs = load_features(f)
        pooled.append(torch.cat([v.float().mean(dim=(2, 3)) for v in fs.layers.values()], dim=1).numpy())
        labels += [cls] * len(fs.paths)
    if smk.input.model:
        from adloc.models import load_model

        model = load_model("patchcore", smk.input.model)
        origin = model.bank_origin.numpy()
        bank_source = np.asarray(model.source_names, dtype=object)[origin]
        per_image = model.grid[0] * model.grid[1]
        patches = {c: n * per_image for c, n in model.train_sources.items()}
        hashes = {}  # class -> sha256 of its training images: exact duplicates across classes
        for f in as_list(smk.input.splits):
            sp = read_splits(f)
            hashes[sp["class"]] = [e["sha256"] for e in sp["splits"]["train"]]
        composition = memory_bank_composition(bank_source, patches, duplicate_train_images(hashes))
        write_bank_composition(smk.output.composition, composition)
        views.append((BANK_TITLE, *embed_view(model.bank.numpy(), bank_source, **kw)))
    views.append((BACKBONE_TITLE, *embed_view(np.concatenate(pooled), np.asarray(labels, dtype=object), **kw)))
    savefig(plot_tsne(views), smk.output.figure)


run_script(snakemake, main)  # noqa: F821
