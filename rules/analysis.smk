# Aggregates: metrics table, per-class vs global gap, cross-class confusion ("identical
# shortcut"), t-SNE views and example maps.


rule metrics_table:
    input:
        metric_files(),
    output:
        report(
            f"{RESULTS}/tables/metrics.csv",
            caption="../report/metrics.rst",
            category="Tables",
        ),
    log:
        f"{RESULTS}/logs/metrics_table.log",
    conda:
        "../envs/analysis.yaml"
    script:
        "../scripts/metrics_table.py"


rule gap:
    input:
        metrics=metric_files(),
        per_class=[scores_of(m, c, c) for m in METHODS for c in CLASSES],
        unified=[scores_of(m, GLOBAL, c) for m in METHODS for c in CLASSES],
    output:
        table=report(
            f"{RESULTS}/tables/gap.csv",
            caption="../report/gap_table.rst",
            category="Tables",
        ),
        figure=report(
            f"{RESULTS}/figures/gap.png",
            caption="../report/gap.rst",
            category="Figures",
        ),
    log:
        f"{RESULTS}/logs/gap.log",
    benchmark:
        f"{RESULTS}/benchmarks/gap.tsv"
    conda:
        "../envs/analysis.yaml"
    params:
        bootstrap=config["evaluation"]["bootstrap"],
    script:
        "../scripts/gap.py"


rule confusion:
    input:
        thresholds=expand(
            f"{RESULTS}/thresholds/{{{{method}}}}/{GLOBAL}/{{cls}}.json", cls=CLASSES
        ),
        pooled=f"{RESULTS}/thresholds/{{method}}/pooled.json",
        scores=expand(
            f"{RESULTS}/scores/{{{{method}}}}/{GLOBAL}/{{cls}}.npz", cls=CLASSES
        ),
    output:
        table=report(
            f"{RESULTS}/tables/confusion_{{method}}.csv",
            caption="../report/confusion_table.rst",
            category="Tables",
        ),
        figure=report(
            f"{RESULTS}/figures/confusion_{{method}}.png",
            caption="../report/confusion.rst",
            category="Figures",
        ),
    log:
        f"{RESULTS}/logs/confusion/{{method}}.log",
    conda:
        "../envs/analysis.yaml"
    params:
        normals=config["analysis"]["confusion_normals"],
    script:
        "../scripts/confusion.py"


rule tsne:
    input:
        model=(
            f"{RESULTS}/models/patchcore/{GLOBAL}.pt" if "patchcore" in METHODS else []
        ),
        features=expand(f"{RESULTS}/features/{TSNE_FSET}/{{cls}}/train.pt", cls=CLASSES),
        splits=expand(f"{RESULTS}/splits/{{cls}}.json", cls=CLASSES),
    output:
        figure=report(
            f"{RESULTS}/figures/tsne.png",
            caption="../report/tsne.rst",
            category="Figures",
        ),
        composition=(
            report(
                f"{RESULTS}/tables/memory_bank_composition.csv",
                caption="../report/composition.rst",
                category="Tables",
            )
            if "patchcore" in METHODS
            else []
        ),
    log:
        f"{RESULTS}/logs/tsne.log",
    benchmark:
        f"{RESULTS}/benchmarks/tsne.tsv"
    conda:
        "../envs/torch.yaml"
    params:
        classes=CLASSES,
        tsne=config["analysis"]["tsne"],
    script:
        "../scripts/tsne.py"


rule examples:
    input:
        splits=f"{RESULTS}/splits/{{cls}}.json",
        scores=lambda w: [
            scores_of(m, s, w.cls) for m in METHODS for s in (w.cls, GLOBAL)
        ],
        metrics=lambda w: [
            f"{RESULTS}/metrics/{m}/{s}/{w.cls}.json"
            for m in METHODS
            for s in (w.cls, GLOBAL)
        ],
        data=class_images,
    output:
        report(
            f"{RESULTS}/figures/examples_{{cls}}.png",
            caption="../report/examples.rst",
            category="Figures",
            subcategory="{cls}",
        ),
    log:
        f"{RESULTS}/logs/examples/{{cls}}.log",
    conda:
        "../envs/torch.yaml"
    params:
        root=DATA_ROOT,
        preprocess=config["preprocess"],
        methods=METHODS,
        n=config["analysis"]["examples_per_class"],
    script:
        "../scripts/examples.py"
