# Aggregates: per repeat the metrics table, per-class vs global gap and cross-class confusion
# ("identical shortcut"); across repeats the tables and the gap figure; t-SNE views and example
# maps of the first repeat. The metrics and gap tables also per shift phase (ph, shift.smk).


rule metrics_table:
    input:
        repeat_metric_files,
    output:
        f"{REP}/{{ph}}tables/metrics.csv",
    log:
        f"{REP}/{{ph}}logs/metrics_table.log",
    conda:
        "../envs/analysis.yaml"
    script:
        "../scripts/metrics_table.py"


rule gap:
    input:
        metrics=repeat_metric_files,
        per_class=lambda w: [
            scores_of(m, c, c, w.repeat, score_ph(w.ph))
            for m in METHODS
            for c in CLASSES
        ],
        unified=lambda w: [
            scores_of(m, GLOBAL, c, w.repeat, score_ph(w.ph))
            for m in METHODS
            for c in CLASSES
        ],
    output:
        table=f"{REP}/{{ph}}tables/gap.csv",
    log:
        f"{REP}/{{ph}}logs/gap.log",
    benchmark:
        f"{REP}/{{ph}}benchmarks/gap.tsv"
    conda:
        "../envs/analysis.yaml"
    params:
        bootstrap=config["evaluation"]["bootstrap"],
    script:
        "../scripts/gap.py"


# Across repeats: every repeat's rows, then mean, sd and 95% t-interval per method x scope x
# class, the paired test of each gap, and the gap figure with the across-repeat spread.
rule repeats:
    input:
        metrics=expand(f"{RESULTS}/{{repeat}}/tables/metrics.csv", repeat=REPEATS),
        gap=expand(f"{RESULTS}/{{repeat}}/tables/gap.csv", repeat=REPEATS),
    output:
        metrics=report(
            f"{RESULTS}/tables/metrics.csv",
            caption="../report/metrics.rst",
            category="Tables",
        ),
        metrics_across=report(
            f"{RESULTS}/tables/metrics_across_repeats.csv",
            caption="../report/metrics_across.rst",
            category="Tables",
        ),
        gap=report(
            f"{RESULTS}/tables/gap.csv",
            caption="../report/gap_table.rst",
            category="Tables",
        ),
        gap_across=report(
            f"{RESULTS}/tables/gap_across_repeats.csv",
            caption="../report/gap_across.rst",
            category="Tables",
        ),
        figure=report(
            f"{RESULTS}/figures/gap.png",
            caption="../report/gap.rst",
            category="Figures",
        ),
    log:
        f"{RESULTS}/logs/repeats.log",
    conda:
        "../envs/analysis.yaml"
    params:
        repeats=REPEATS,
    script:
        "../scripts/repeats.py"


rule confusion:
    input:
        thresholds=expand(
            f"{REP_X}/thresholds/{{{{method}}}}/{GLOBAL}/{{cls}}.json", cls=CLASSES
        ),
        pooled=f"{REP}/thresholds/{{method}}/pooled.json",
        scores=expand(
            scores_of("{{method}}", GLOBAL, "{cls}", "{{repeat}}"), cls=CLASSES
        ),
    output:
        table=report(
            f"{REP}/tables/confusion_{{method}}.csv",
            caption="../report/confusion_table.rst",
            category="Tables",
            subcategory="{repeat}",
        ),
        figure=report(
            f"{REP}/figures/confusion_{{method}}.png",
            caption="../report/confusion.rst",
            category="Figures",
            subcategory="{repeat}",
        ),
    log:
        f"{REP}/logs/confusion/{{method}}.log",
    conda:
        "../envs/analysis.yaml"
    params:
        normals=config["analysis"]["confusion_normals"],
    script:
        "../scripts/confusion.py"


rule tsne:
    input:
        model=(
            f"{RESULTS}/{FIRST}/models/{BANK_METHOD}/{GLOBAL}.pt"
            if BANK_METHOD
            else []
        ),
        features=expand(f"{RESULTS}/features/{TSNE_FSET}/{{cls}}.pt", cls=CLASSES),
        splits=expand(f"{RESULTS}/{FIRST}/splits/{{cls}}.json", cls=CLASSES),
    output:
        figure=report(
            f"{RESULTS}/figures/tsne.png",
            caption="../report/tsne.rst",
            category="Figures",
        ),
        notes=f"{RESULTS}/tables/tsne_notes.json",
        composition=(
            report(
                f"{RESULTS}/tables/memory_bank_composition.csv",
                caption="../report/composition.rst",
                category="Tables",
            )
            if BANK_METHOD
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
        bank_method=BANK_METHOD,
    script:
        "../scripts/tsne.py"


rule examples:
    input:
        splits=f"{RESULTS}/{FIRST}/splits/{{cls}}.json",
        scores=lambda w: [
            scores_of(m, s, w.cls, FIRST) for m in METHODS for s in (w.cls, GLOBAL)
        ],
        metrics=lambda w: [
            f"{RESULTS}/{FIRST}/metrics/{m}/{s}/{w.cls}.json"
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
