# Images decoded and preprocessed once per class (a CPU job), then backbone features extracted
# once per image and feature set (backbone + weights), reused by every method, scope, split and
# repeat that reads that feature set: repeats never multiply extraction.


rule preprocess_images:
    input:
        index=f"{RESULTS}/index/{{cls}}.json",
        data=class_images,
    output:
        f"{RESULTS}/images/{{cls}}.pt",
    log:
        f"{RESULTS}/logs/preprocess_images/{{cls}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/preprocess_images/{{cls}}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: MAX_THREADS
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        root=DATA_ROOT,
        preprocess=config["preprocess"],
    script:
        "../scripts/preprocess_images.py"


rule extract_features:
    input:
        images=f"{RESULTS}/{{dom}}images/{{cls}}.pt",
        # extraction batches follow the first repeat's splits (the study's batching, bit for
        # bit); the file holds every image once and serves every split and repeat. Domain
        # (dom) "" is the clean data, shift/<name>/ a shifted copy (rules/shift.smk), whose
        # batches follow the first repeat that reads it (order_splits).
        order=order_splits,
        weights=weights_file,
    output:
        f"{RESULTS}/{{dom}}features/{{fset}}/{{cls}}.pt",
    log:
        f"{RESULTS}/{{dom}}logs/extract_features/{{fset}}/{{cls}}.log",
    benchmark:
        f"{RESULTS}/{{dom}}benchmarks/extract_features/{{fset}}/{{cls}}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: MAX_THREADS
    resources:
        gpu=gpu_resource,
        mem_mb=8000,
        runtime=60,
    params:
        spec=fset_spec,
        features=config["features"],
        device=device_param,
        seed=config["seed"],
    script:
        "../scripts/extract_features.py"
