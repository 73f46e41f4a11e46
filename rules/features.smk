# Images decoded and preprocessed once per class (a CPU job), then backbone features extracted
# once per image and feature set (backbone + weights), reused by every method and scope that
# reads that feature set.


rule preprocess_images:
    input:
        splits=f"{RESULTS}/splits/{{cls}}.json",
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
        images=f"{RESULTS}/images/{{cls}}.pt",
        splits=f"{RESULTS}/splits/{{cls}}.json",
        weights=weights_file,
    output:
        train=f"{RESULTS}/features/{{fset}}/{{cls}}/train.pt",
        val=f"{RESULTS}/features/{{fset}}/{{cls}}/val.pt",
        test=f"{RESULTS}/features/{{fset}}/{{cls}}/test.pt",
    log:
        f"{RESULTS}/logs/extract_features/{{fset}}/{{cls}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/extract_features/{{fset}}/{{cls}}.tsv"
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
