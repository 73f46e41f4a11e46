# Backbone features: extracted once per image and feature set (backbone + weights), reused by
# every method and scope that reads that feature set.


rule extract_features:
    input:
        splits=f"{RESULTS}/splits/{{cls}}.json",
        data=class_images,
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
        gpu=GPU,
        mem_mb=8000,
        runtime=60,
    params:
        root=DATA_ROOT,
        spec=fset_spec,
        preprocess=config["preprocess"],
        features=config["features"],
        device=config["device"],
        seed=config["seed"],
    script:
        "../scripts/extract_features.py"
