# Domain shift (shift.enabled, presets/shift.yaml): a seeded shifted copy of every image of a
# class, made from the decoded originals the class index lists, in MVTec layout beside the table
# of every parameter drawn per image (adloc.data.shift), one copy per shift seed (sname =
# <variant>-s<seed>; each repeat reads its own seed's copy, rules/common.smk). Off by default.
if SHIFT_ON:
    check_shift_seeds()

    rule shift_images:
        input:
            index=f"{RESULTS}/index/{{cls}}.json",
            data=class_images,
        output:
            images=directory(f"{SHIFT_X}/{{cls}}"),
            params=f"{SHIFT_X}/{{cls}}_params.csv",
        log:
            f"{RESULTS}/logs/shift_images/{{sname}}/{{cls}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/shift_images/{{sname}}/{{cls}}.tsv"
        conda:
            "../envs/torch.yaml"
        threads: MAX_THREADS
        resources:
            mem_mb=4000,
            runtime=60,
        params:
            root=DATA_ROOT,
            shift=lambda w: SHIFT_SPECS[w.sname],  # the recipe with this copy's seed
            mask_threshold=MASK_THRESHOLD,
        script:
            "../scripts/shift_images.py"

    # The shifted copy as a data domain (dom = shift/<name>/, rules/common.smk): its image
    # cache, then each repeat's split files mapped onto it; rule extract_features and the
    # model, score, calibrate and evaluate rules read them under their phase words.
    rule shift_cache:
        input:
            images=f"{SHIFT_X}/{{cls}}",
            params=f"{SHIFT_X}/{{cls}}_params.csv",
        output:
            f"{SHIFT_X}/images/{{cls}}.pt",
        log:
            f"{SHIFT_X}/logs/shift_cache/{{cls}}.log",
        benchmark:
            f"{SHIFT_X}/benchmarks/shift_cache/{{cls}}.tsv"
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
            images=f"{SHIFT_X}/{{cls}}",
            params=f"{SHIFT_X}/{{cls}}_params.csv",
        output:
            f"{REP}/shift/{{sname}}/splits/{{cls}}.json",
        log:
            f"{REP}/shift/{{sname}}/logs/shift_splits/{{cls}}.log",
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

    # A few test images of a class (the first repeat's, those of rule examples): clean,
    # shifted, the shifted ground truth, and each method's per-class and global anomaly maps
    # clean and in every phase, each as score / that phase's threshold.
    rule shift_examples:
        input:
            unpack(shift_examples_inputs),
        output:
            report(
                f"{RESULTS}/figures/shift_examples_{{cls}}.png",
                caption="../report/shift_examples.rst",
                category="Figures",
                subcategory="{cls}",
            ),
        log:
            f"{RESULTS}/logs/shift_examples/{{cls}}.log",
        conda:
            "../envs/torch.yaml"
        params:
            layout=lambda w: shift_examples_layout(w.cls),
            root=DATA_ROOT,
            shift_root=lambda w: f"{RESULTS}/{shift_dom(SHIFT_OF[FIRST])}".rstrip("/"),
            preprocess=config["preprocess"],
            n=config["analysis"]["examples_per_class"],
        script:
            "../scripts/shift_examples.py"
