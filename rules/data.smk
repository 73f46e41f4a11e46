# Dataset (generated embedded one, or a real MVTec-format folder) -> the class's index (its
# files, layout checked and hashed once) -> study splits per class and split seed (one per repeat).

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


rule index:
    input:
        class_images,
    output:
        index=f"{RESULTS}/index/{{cls}}.json",
        stat=f"{RESULTS}/index/stat/{{cls}}.json",
    log:
        f"{RESULTS}/logs/index/{{cls}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/index/{{cls}}.tsv"
    conda:
        "../envs/data.yaml"
    params:
        root=DATA_ROOT,
        bit_depth=config["dataset"]["bit_depth"],
        content=class_content,
    script:
        "../scripts/index.py"


rule splits:
    input:
        index=f"{RESULTS}/index/{{cls}}.json",
    output:
        f"{REP}/splits/{{cls}}.json",
    log:
        f"{REP}/logs/splits/{{cls}}.log",
    conda:
        "../envs/data.yaml"
    params:
        root=DATA_ROOT,
        splits=config["splits"],
        seed=split_seed,
    script:
        "../scripts/splits.py"
