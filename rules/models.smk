# Fit one model per class and one model-unified ("global") model on every class's train split,
# then score the val and test splits of each class with both.


rule fit_class:
    input:
        train=lambda w: f"{RESULTS}/features/{fset_of(w.method)}/{w.cls}/train.pt",
    output:
        f"{RESULTS}/models/{{method}}/{{cls}}.pt",
    log:
        f"{RESULTS}/logs/fit/{{method}}/{{cls}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/fit/{{method}}/{{cls}}.tsv"
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
        seed=config["seed"],
    script:
        "../scripts/fit.py"


rule fit_global:
    input:
        train=lambda w: expand(
            f"{RESULTS}/features/{fset_of(w.method)}/{{cls}}/train.pt", cls=CLASSES
        ),
    output:
        f"{RESULTS}/models/{{method}}/{GLOBAL}.pt",
    log:
        f"{RESULTS}/logs/fit/{{method}}/{GLOBAL}.log",
    benchmark:
        f"{RESULTS}/benchmarks/fit/{{method}}/{GLOBAL}.tsv"
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
        seed=config["seed"],
        classes=CLASSES,
    script:
        "../scripts/fit.py"


rule score:
    input:
        unpack(score_inputs),
    output:
        f"{RESULTS}/scores/{{method}}/{{cls}}/{{cls}}.npz",
    log:
        f"{RESULTS}/logs/score/{{method}}/{{cls}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/score/{{method}}/{{cls}}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: MAX_THREADS
    resources:
        gpu=gpu_resource,
        mem_mb=16000,
        runtime=60,
    params:
        device=device_param,
        query_images=query_images("query_images"),
    script:
        "../scripts/score.py"


# The global model scores every class in one job: it is loaded once, and any change to one
# class refits it (and so rescoring every class) anyway.
rule score_global:
    input:
        unpack(score_global_inputs),
    output:
        expand(f"{RESULTS}/scores/{{{{method}}}}/{GLOBAL}/{{cls}}.npz", cls=CLASSES),
    log:
        f"{RESULTS}/logs/score/{{method}}/{GLOBAL}.log",
    benchmark:
        f"{RESULTS}/benchmarks/score/{{method}}/{GLOBAL}.tsv"
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
        query_images=query_images("query_images_global"),
    script:
        "../scripts/score.py"
