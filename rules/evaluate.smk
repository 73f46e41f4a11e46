# Per repeat: thresholds (rule calibrate: F1-max on the validation split, one file each) and test metrics,
# for every method, scope and class. Scopes: per-class (the class's own model and threshold),
# global or model-unified (one model, the class's threshold) and unified_abs or
# absolute-unified (one model, ONE threshold from the pooled validation split of every class).
# With shift on, the same rules under a phase word (ph, rules/common.smk): phases threshold and
# full calibrate on the shifted val split; phase none keeps the clean thresholds; every phase
# is evaluated on the shifted test split (its masks from the shifted copy).


rule calibrate:
    input:
        scores=lambda w: scores_of(w.method, w.cls, w.cls, w.repeat, score_ph(w.ph)),
        splits=lambda w: splits_of(w.cls, w.repeat, dom_of(w.ph)),
    output:
        f"{REP}/{{ph}}thresholds/{{method}}/{{cls}}/{{cls}}.json",
    log:
        f"{REP}/{{ph}}logs/calibrate/{{method}}/{{cls}}.log",
    wildcard_constraints:
        ph=ph_re("threshold", "full"),  # phase none keeps the clean thresholds
    conda:
        "../envs/analysis.yaml"
    params:
        threshold=config["threshold"],
    script:
        "../scripts/calibrate.py"


rule calibrate_global:
    input:
        scores=lambda w: [
            scores_of(w.method, GLOBAL, c, w.repeat, score_ph(w.ph)) for c in CLASSES
        ],
        splits=lambda w: [splits_of(c, w.repeat, dom_of(w.ph)) for c in CLASSES],
    output:
        per_class=expand(
            f"{REP_X}/{{{{ph}}}}thresholds/{{{{method}}}}/{GLOBAL}/{{cls}}.json",
            cls=CLASSES,
        ),
        pooled=f"{REP}/{{ph}}thresholds/{{method}}/pooled.json",
    log:
        f"{REP}/{{ph}}logs/calibrate/{{method}}/{GLOBAL}.log",
    wildcard_constraints:
        ph=ph_re("threshold", "full"),
    conda:
        "../envs/analysis.yaml"
    params:
        threshold=config["threshold"],
    script:
        "../scripts/calibrate.py"


rule evaluate:
    input:
        unpack(evaluate_inputs),
    output:
        f"{REP}/{{ph}}metrics/{{method}}/{{cls}}/{{cls}}.json",
    log:
        f"{REP}/{{ph}}logs/evaluate/{{method}}/{{cls}}/{{cls}}.log",
    benchmark:
        f"{REP}/{{ph}}benchmarks/evaluate/{{method}}/{{cls}}/{{cls}}.tsv"
    conda:
        "../envs/torch.yaml"
    params:
        root=data_root,
        preprocess=preprocess_of,
        evaluation=config["evaluation"],
    script:
        "../scripts/evaluate.py"


rule evaluate_global:
    input:
        unpack(evaluate_global_inputs),
    output:
        unified=f"{REP}/{{ph}}metrics/{{method}}/{GLOBAL}/{{cls}}.json",
        pooled=f"{REP}/{{ph}}metrics/{{method}}/{UNIFIED_ABS}/{{cls}}.json",
    log:
        f"{REP}/{{ph}}logs/evaluate/{{method}}/{GLOBAL}/{{cls}}.log",
    benchmark:
        f"{REP}/{{ph}}benchmarks/evaluate/{{method}}/{GLOBAL}/{{cls}}.tsv"
    conda:
        "../envs/torch.yaml"
    params:
        root=data_root,
        preprocess=preprocess_of,
        evaluation=config["evaluation"],
    script:
        "../scripts/evaluate.py"
