# Per repeat: thresholds (rule calibrate: F1-max on the validation split, one file each) and test metrics,
# for every method, scope and class. Scopes: per-class (the class's own model and threshold),
# global or model-unified (one model, the class's threshold) and unified_abs or
# absolute-unified (one model, ONE threshold from the pooled validation split of every class)
# and routed (absolute-unified with class routing: one model, each test image judged at the
# threshold of the class rule route predicts for it from the image; adloc.routing). Which file
# holds which scope: params model + the file keys (adloc.scopes).
# With shift on, the same rules under a phase word (ph, rules/common.smk): phases threshold and
# full calibrate on the shifted val split; phase none keeps the clean thresholds; every phase
# is evaluated on the shifted test split (its masks from the shifted copy).


rule calibrate:
    input:
        scores=lambda w: scores_of(w.method, w.cls, w.cls, w.repeat, score_ph(w.ph)),
        splits=lambda w: splits_of(w.cls, w.repeat, dom_of(w.ph)),
    output:
        threshold=f"{REP}/{{ph}}thresholds/{{method}}/{{cls}}/{{cls}}.json",
    log:
        f"{REP}/{{ph}}logs/calibrate/{{method}}/{{cls}}.log",
    wildcard_constraints:
        ph=ph_re("threshold", "full"),  # phase none keeps the clean thresholds
    conda:
        "../envs/analysis.yaml"
    params:
        model=PER_CLASS,
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
        model=GLOBAL,
        threshold=config["threshold"],
    script:
        "../scripts/calibrate.py"


rule evaluate:
    input:
        unpack(evaluate_inputs),
    output:
        metrics=f"{REP}/{{ph}}metrics/{{method}}/{{cls}}/{{cls}}.json",
    log:
        f"{REP}/{{ph}}logs/evaluate/{{method}}/{{cls}}/{{cls}}.log",
    benchmark:
        f"{REP}/{{ph}}benchmarks/evaluate/{{method}}/{{cls}}/{{cls}}.tsv"
    conda:
        "../envs/torch.yaml"
    params:
        model=PER_CLASS,
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
        routed=f"{REP}/{{ph}}metrics/{{method}}/{ROUTED}/{{cls}}.json",
    log:
        f"{REP}/{{ph}}logs/evaluate/{{method}}/{GLOBAL}/{{cls}}.log",
    benchmark:
        f"{REP}/{{ph}}benchmarks/evaluate/{{method}}/{GLOBAL}/{{cls}}.tsv"
    conda:
        "../envs/torch.yaml"
    params:
        model=GLOBAL,
        root=data_root,
        preprocess=preprocess_of,
        evaluation=config["evaluation"],
    script:
        "../scripts/evaluate.py"


# Class routing (the routed scope): every test image's class predicted from the image alone, a
# k-NN vote (routing.k) among every class's training images on mean-pooled backbone features;
# no test label is read. Method-independent: one job per repeat and feature set (fset). In a
# shift phase the training images are the phase's models' (clean, or shifted in phase full) and
# the test images the shifted ones; phase threshold reuses phase none's routing.
rule route:
    input:
        unpack(route_inputs),
    output:
        routing=f"{REP}/{{ph}}routing/{{fset}}.json",
        accuracy=f"{REP}/{{ph}}tables/routing_accuracy_{{fset}}.csv",
        confusion=f"{REP}/{{ph}}tables/routing_{{fset}}.csv",
        figure=report(
            f"{REP}/{{ph}}figures/routing_{{fset}}.png",
            caption="../report/routing.rst",
            category="Figures",
            subcategory="{repeat}",
        ),
    log:
        f"{REP}/{{ph}}logs/route/{{fset}}.log",
    benchmark:
        f"{REP}/{{ph}}benchmarks/route/{{fset}}.tsv"
    wildcard_constraints:
        ph=ph_re("none", "full"),
        fset=FSET_RE,
    conda:
        "../envs/torch.yaml"
    params:
        classes=CLASSES,
        k=config["routing"]["k"],
        fset=lambda w: w.fset,
    script:
        "../scripts/route.py"
