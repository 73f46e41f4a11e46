# Domain shift (shift.enabled, presets/shift.yaml): a seeded shifted copy of every image of a
# class, made from the decoded originals the class index lists, in MVTec layout beside the table
# of every parameter drawn per image (adloc.data.shift). Off in the default run.
if SHIFT_ON:

    rule shift_images:
        input:
            index=f"{RESULTS}/index/{{cls}}.json",
            data=class_images,
        output:
            images=directory(f"{SHIFT}/{{cls}}"),
            params=f"{SHIFT}/{{cls}}_params.csv",
        log:
            f"{RESULTS}/logs/shift_images/{SHIFT_NAME}/{{cls}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/shift_images/{SHIFT_NAME}/{{cls}}.tsv"
        conda:
            "../envs/torch.yaml"
        threads: MAX_THREADS
        resources:
            mem_mb=4000,
            runtime=60,
        params:
            root=DATA_ROOT,
            shift=SHIFT_SPEC,
            mask_threshold=MASK_THRESHOLD,
        script:
            "../scripts/shift_images.py"

    # The shifted copy as a data domain (dom = shift/<name>/, rules/common.smk): its image
    # cache, then each repeat's split files mapped onto it; rule extract_features and the
    # model, score, calibrate and evaluate rules read them under their phase words.
    rule shift_cache:
        input:
            images=f"{SHIFT}/{{cls}}",
            params=f"{SHIFT}/{{cls}}_params.csv",
        output:
            f"{SHIFT}/images/{{cls}}.pt",
        log:
            f"{SHIFT}/logs/shift_cache/{{cls}}.log",
        benchmark:
            f"{SHIFT}/benchmarks/shift_cache/{{cls}}.tsv"
        conda:
            "../envs/torch.yaml"
        threads: MAX_THREADS
        resources:
            mem_mb=4000,
            runtime=60,
        params:
            root=lambda w, input: str(Path(input.images).parent),
            preprocess=shifted_preprocess(config["preprocess"]),
        script:
            "../scripts/shift_cache.py"

    rule shift_splits:
        input:
            splits=f"{REP}/splits/{{cls}}.json",
            images=f"{SHIFT}/{{cls}}",
            params=f"{SHIFT}/{{cls}}_params.csv",
        output:
            f"{REP}/{SHIFT_DOM}splits/{{cls}}.json",
        log:
            f"{REP}/{SHIFT_DOM}logs/shift_splits/{{cls}}.log",
        conda:
            "../envs/analysis.yaml"  # pandas reads the parameter table
        params:
            root=lambda w, input: str(Path(input.images).parent),
        script:
            "../scripts/shift_splits.py"

    # Across phases and repeats: metrics per phase x method x scope x class, the shift cost
    # (clean minus shifted, paired bootstrap and across-repeat intervals), the per-class minus
    # global gap per phase, one figure per method and the summary's lines.
    rule shift_tables:
        input:
            unpack(shift_table_inputs),
        output:
            metrics=f"{RESULTS}/tables/shift_metrics.csv",
            metrics_across=f"{RESULTS}/tables/shift_metrics_across_repeats.csv",
            cost=f"{RESULTS}/tables/shift_cost.csv",
            cost_across=f"{RESULTS}/tables/shift_cost_across_repeats.csv",
            gap=f"{RESULTS}/tables/shift_gap.csv",
            gap_across=f"{RESULTS}/tables/shift_gap_across_repeats.csv",
            figures=report(
                expand(f"{RESULTS}/figures/shift_{{method}}.png", method=METHODS),
                caption="../report/shift.rst",
                category="Figures",
            ),
            summary=f"{RESULTS}/tables/shift_summary.md",
            study=f"{RESULTS}/tables/shift_side_by_side.csv",
        log:
            f"{RESULTS}/logs/shift_tables.log",
        benchmark:
            f"{RESULTS}/benchmarks/shift_tables.tsv"
        conda:
            "../envs/analysis.yaml"
        params:
            layout=shift_layout(),
            methods=METHODS,
            bootstrap=config["evaluation"]["bootstrap"],
            study_reference=config["study_reference"],
        script:
            "../scripts/shift_tables.py"
