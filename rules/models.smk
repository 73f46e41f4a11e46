# Per repeat: fit one model per class and one model-unified ("global") model on every class's
# train split (rows of the class's features selected by the repeat's split file), then score the
# val and test splits of each class with both. With shift on, the same rules under a phase word
# (ph, rules/common.smk): phase full fits on the shifted train split; phases none and full score
# the shifted val and test splits (none with the clean models).


rule fit_class:
    input:
        features=lambda w: features_of(w.method, w.cls, dom_of(w.ph)),
        splits=lambda w: splits_of(w.cls, w.repeat, dom_of(w.ph)),
        order=draw_order_splits,  # the study's draw order (same membership when shifted)
    output:
        f"{REP}/{{ph}}models/{{method}}/{{cls}}.pt",
    log:
        f"{REP}/{{ph}}logs/fit/{{method}}/{{cls}}.log",
    benchmark:
        f"{REP}/{{ph}}benchmarks/fit/{{method}}/{{cls}}.tsv"
    wildcard_constraints:
        ph=ph_re("full"),  # phases none and threshold score with the clean models
    conda:
        "../envs/torch.yaml"
    threads: MAX_THREADS
    resources:
        gpu=gpu_resource,
        mem_mb=16000,
        runtime=120,
    params:
        model=lambda w: model_params(w.method, w.cls),
        image_size=IMAGE_SIZE,
        device=device_param,
        seed=model_seed,
        replay_draws=replay_param,
    script:
        "../scripts/fit.py"


rule fit_global:
    input:
        features=lambda w: [features_of(w.method, c, dom_of(w.ph)) for c in CLASSES],
        splits=lambda w: [splits_of(c, w.repeat, dom_of(w.ph)) for c in CLASSES],
    output:
        f"{REP}/{{ph}}models/{{method}}/{GLOBAL}.pt",
    log:
        f"{REP}/{{ph}}logs/fit/{{method}}/{GLOBAL}.log",
    benchmark:
        f"{REP}/{{ph}}benchmarks/fit/{{method}}/{GLOBAL}.tsv"
    wildcard_constraints:
        ph=ph_re("full"),
    conda:
        "../envs/torch.yaml"
    threads: MAX_THREADS
    resources:
        gpu=gpu_resource,
        mem_mb=32000,
        runtime=240,
    params:
        model=lambda w: model_params(w.method),
        image_size=IMAGE_SIZE,
        device=device_param,
        seed=model_seed,
        classes=CLASSES,
        replay_draws=replay_param,
    script:
        "../scripts/fit.py"


rule score:
    input:
        unpack(score_inputs),
    output:
        scores_of("{method}", "{cls}", "{cls}", ph="{ph}"),
    log:
        f"{REP}/{{ph}}logs/score/{{method}}/{{cls}}.log",
    benchmark:
        f"{REP}/{{ph}}benchmarks/score/{{method}}/{{cls}}.tsv"
    wildcard_constraints:
        ph=ph_re("none", "full"),  # phase threshold reads phase none's scores
    conda:
        "../envs/torch.yaml"
    threads: MAX_THREADS
    resources:
        gpu=gpu_resource,
        mem_mb=16000,
        runtime=60,
    params:
        device=device_param,
        predict=predict_options(False),
        splits=["val", "test"],
    script:
        "../scripts/score.py"


# The global model scores every class in one job: it is loaded once, and any change to one
# class refits it (and so rescoring every class) anyway.
rule score_global:
    input:
        unpack(score_global_inputs),
    output:
        expand(
            scores_of("{{method}}", GLOBAL, "{cls}", "{{repeat}}", "{{ph}}"),
            cls=CLASSES,
        ),
    log:
        f"{REP}/{{ph}}logs/score/{{method}}/{GLOBAL}.log",
    benchmark:
        f"{REP}/{{ph}}benchmarks/score/{{method}}/{GLOBAL}.tsv"
    wildcard_constraints:
        ph=ph_re("none", "full"),
    conda:
        "../envs/torch.yaml"
    threads: MAX_THREADS
    resources:
        gpu=gpu_resource,
        mem_mb=32000,
        runtime=120,
    params:
        device=device_param,
        classes=CLASSES,
        predict=predict_options(True),
        splits=["val", "test"]
        + (["train"] if config["analysis"]["confusion_normals"] == "train" else []),
    script:
        "../scripts/score.py"
