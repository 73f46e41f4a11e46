# Two or more finished runs side by side (one table, one figure):
#   snakemake --cores 1 results/compare/mvtec-paper_vs_mvtec-study/metrics.csv
# Runs other than the configured one must be finished; the configured one is made if needed.


rule compare:
    input:
        tables=lambda w: run_tables(w.runs.split("_vs_"), RUN),
        configs=lambda w: [
            p for p in run_configs(w.runs.split("_vs_"), RUN) if p is not None
        ],
    output:
        table="results/compare/{runs}/metrics.csv",
        published="results/compare/{runs}/published.csv",
        figure=report(
            "results/compare/{runs}/metrics.png",
            caption="../report/compare.rst",
            category="Comparison",
        ),
    log:
        "results/compare/{runs}/compare.log",
    wildcard_constraints:
        runs="[A-Za-z0-9.-]+(_vs_[A-Za-z0-9.-]+)+",
    conda:
        "../envs/analysis.yaml"
    params:
        runs=lambda w: w.runs.split("_vs_"),
        configs=lambda w: run_configs(w.runs.split("_vs_"), RUN),
    script:
        "../scripts/compare.py"
