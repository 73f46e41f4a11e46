# adloc: PatchCore and PaDiM, per-class versus one model-unified model, from an MVTec-format
# folder to every table and figure. Run: snakemake --cores all (see README.md).


# The defaults beside this Snakefile (also when run from another folder; as a module, the
# config the module is given, with these defaults under it: rules/common.smk).
configfile: f"{workflow.basedir}/config.yaml"


include: "rules/common.smk"
include: "rules/shift_paths.smk"
include: "rules/fetch.smk"
include: "rules/data.smk"
include: "rules/shift.smk"
include: "rules/features.smk"
include: "rules/models.smk"
include: "rules/evaluate.smk"
include: "rules/analysis.smk"
include: "rules/report.smk"
include: "rules/compare.smk"


rule all:
    default_target: True
    input:
        final_targets(),


onsuccess:
    print(done_message(RESULTS, workflow.dag_settings.targets, RUN_STARTED))
