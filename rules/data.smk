# Dataset (generated embedded one, or a real MVTec-format folder) -> study splits per class.

if config["dataset"]["generate"]:

    rule generate_class:
        output:
            directory(f"{DATA_ROOT}/{{cls}}"),
        log:
            f"{RESULTS}/logs/generate_class/{{cls}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/generate_class/{{cls}}.tsv"
        conda:
            "../envs/data.yaml"
        params:
            synthetic=config["dataset"]["synthetic"],
        script:
            "../scripts/generate_class.py"


rule splits:
    input:
        class_images,
    output:
        f"{RESULTS}/splits/{{cls}}.json",
    log:
        f"{RESULTS}/logs/splits/{{cls}}.log",
    conda:
        "../envs/data.yaml"
    params:
        root=DATA_ROOT,
        splits=config["splits"],
        bit_depth=config["dataset"]["bit_depth"],
    script:
        "../scripts/splits.py"
