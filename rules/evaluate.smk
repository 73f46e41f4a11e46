# Per-class threshold (F1-max on that class's val split) and test metrics, for every method,
# scope (the class's own model, or the global one) and class.


rule evaluate:
    input:
        scores=f"{RESULTS}/scores/{{method}}/{{scope}}/{{cls}}.npz",
        splits=f"{RESULTS}/splits/{{cls}}.json",
    output:
        f"{RESULTS}/metrics/{{method}}/{{scope}}/{{cls}}.json",
    log:
        f"{RESULTS}/logs/evaluate/{{method}}/{{scope}}/{{cls}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{{method}}/{{scope}}/{{cls}}.tsv"
    conda:
        "../envs/torch.yaml"
    params:
        root=DATA_ROOT,
        preprocess=config["preprocess"],
        threshold=config["threshold"],
        evaluation=config["evaluation"],
    script:
        "../scripts/evaluate.py"
