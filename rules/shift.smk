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
