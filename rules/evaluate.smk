# Per repeat: thresholds (rule calibrate: F1-max on the validation split, one file each) and test metrics,
# for every method, scope and class. Scopes: per-class (the class's own model and threshold),
# global or model-unified (one model, the class's threshold) and unified_abs or
# absolute-unified (one model, ONE threshold from the pooled validation split of every class).


rule calibrate:
    input:
        scores=scores_of("{method}", "{cls}", "{cls}"),
        splits=f"{REP}/splits/{{cls}}.json",
    output:
        f"{REP}/thresholds/{{method}}/{{cls}}/{{cls}}.json",
    log:
        f"{REP}/logs/calibrate/{{method}}/{{cls}}.log",
    conda:
        "../envs/analysis.yaml"
    params:
        threshold=config["threshold"],
    script:
        "../scripts/calibrate.py"


rule calibrate_global:
    input:
        scores=expand(
            scores_of("{{method}}", GLOBAL, "{cls}", "{{repeat}}"), cls=CLASSES
        ),
        splits=expand(f"{REP_X}/splits/{{cls}}.json", cls=CLASSES),
    output:
        per_class=expand(
            f"{REP_X}/thresholds/{{{{method}}}}/{GLOBAL}/{{cls}}.json", cls=CLASSES
        ),
        pooled=f"{REP}/thresholds/{{method}}/pooled.json",
    log:
        f"{REP}/logs/calibrate/{{method}}/{GLOBAL}.log",
    conda:
        "../envs/analysis.yaml"
    params:
        threshold=config["threshold"],
    script:
        "../scripts/calibrate.py"


rule evaluate:
    input:
        scores=scores_of("{method}", "{cls}", "{cls}"),
        threshold=f"{REP}/thresholds/{{method}}/{{cls}}/{{cls}}.json",
        splits=f"{REP}/splits/{{cls}}.json",
    output:
        f"{REP}/metrics/{{method}}/{{cls}}/{{cls}}.json",
    log:
        f"{REP}/logs/evaluate/{{method}}/{{cls}}/{{cls}}.log",
    benchmark:
        f"{REP}/benchmarks/evaluate/{{method}}/{{cls}}/{{cls}}.tsv"
    conda:
        "../envs/torch.yaml"
    params:
        root=DATA_ROOT,
        preprocess=config["preprocess"],
        evaluation=config["evaluation"],
    script:
        "../scripts/evaluate.py"


rule evaluate_global:
    input:
        scores=scores_of("{method}", GLOBAL, "{cls}"),
        threshold=f"{REP}/thresholds/{{method}}/{GLOBAL}/{{cls}}.json",
        pooled=f"{REP}/thresholds/{{method}}/pooled.json",
        splits=f"{REP}/splits/{{cls}}.json",
    output:
        unified=f"{REP}/metrics/{{method}}/{GLOBAL}/{{cls}}.json",
        pooled=f"{REP}/metrics/{{method}}/{UNIFIED_ABS}/{{cls}}.json",
    log:
        f"{REP}/logs/evaluate/{{method}}/{GLOBAL}/{{cls}}.log",
    benchmark:
        f"{REP}/benchmarks/evaluate/{{method}}/{GLOBAL}/{{cls}}.tsv"
    conda:
        "../envs/torch.yaml"
    params:
        root=DATA_ROOT,
        preprocess=config["preprocess"],
        evaluation=config["evaluation"],
    script:
        "../scripts/evaluate.py"
