# summary.md: the run's results section (tables, protocol, provenance, study side by side).


rule summary:
    input:
        metrics=f"{RESULTS}/{FIRST}/tables/metrics.csv",
        metrics_across=f"{RESULTS}/tables/metrics_across_repeats.csv",
        gap=f"{RESULTS}/{FIRST}/tables/gap.csv",
        gap_across=f"{RESULTS}/tables/gap_across_repeats.csv",
        confusion=expand(
            f"{RESULTS}/{FIRST}/tables/confusion_{{method}}.csv", method=METHODS
        ),
        composition=(
            f"{RESULTS}/tables/memory_bank_composition.csv" if BANK_METHOD else []
        ),
        splits=expand(f"{RESULTS}/{FIRST}/splits/{{cls}}.json", cls=CLASSES),
        tsne_notes=f"{RESULTS}/tables/tsne_notes.json",
        routing=expand(
            f"{RESULTS}/{FIRST}/tables/routing_accuracy_{{fset}}.csv", fset=FSETS
        ),
        shift=f"{RESULTS}/tables/shift_summary.md" if SHIFT_ON else [],
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
        repeats=REPEATS,
        routing_fsets=list(FSETS),
    script:
        "../scripts/summary.py"


# The run's validated config, read by rule compare to tell which dataset each run is on (the
# published MVTec AD / VisA numbers apply only to runs on that dataset).
rule run_config:
    output:
        f"{RESULTS}/config.json",
    log:
        f"{RESULTS}/logs/run_config.log",
    conda:
        "../envs/analysis.yaml"
    params:
        config=config,
    script:
        "../scripts/run_config.py"
