# summary.md: the run's results section (tables, protocol, provenance, study side by side).


rule summary:
    input:
        metrics=f"{RESULTS}/tables/metrics.csv",
        gap=f"{RESULTS}/tables/gap.csv",
        confusion=expand(f"{RESULTS}/tables/confusion_{{method}}.csv", method=METHODS),
        composition=(
            f"{RESULTS}/tables/memory_bank_composition.csv"
            if "patchcore" in METHODS
            else []
        ),
        splits=expand(f"{RESULTS}/splits/{{cls}}.json", cls=CLASSES),
        metric_files=metric_files(),
    output:
        report(
            f"{RESULTS}/summary.md",
            caption="../report/summary.rst",
            category="Summary",
        ),
    log:
        f"{RESULTS}/logs/summary.log",
    conda:
        "../envs/analysis.yaml"
    params:
        config=config,
    script:
        "../scripts/summary.py"
