# Public datasets fetched once (dataset.source: mvtec_ad | visa | mvtec_ad2 | btad | mpdd | real_iad): one job per archive; ImageNet
# weights checked when the DAG is built and fetched once per backbone before any extraction.
# Both run on the submitting machine (login nodes are online; compute nodes often are not).

if FETCH_DATASET:
    if not Path(DATA_MARKER).exists():  # said once: until the dataset is fetched
        print(
            f"adloc: {DATASET_ARCHIVE.name} will be "
            + (
                "fetched"
                if DATASET_ARCHIVE.url
                else "converted from its manual download"
            )
            + f" to {DATA_ROOT} (once; progress in "
            f"{RESULTS}/logs/fetch_dataset.log). Licence: {DATASET_ARCHIVE.licence}.",
            file=sys.stderr,
        )

    localrules:
        fetch_dataset,

    rule fetch_dataset:
        output:
            DATA_MARKER,
        log:
            f"{RESULTS}/logs/fetch_dataset.log",
        benchmark:
            f"{RESULTS}/benchmarks/fetch_dataset.tsv"
        conda:
            "../envs/data.yaml"
        params:
            root=DATA_ROOT,
            source=config["dataset"]["source"],
            url=config["dataset"]["url"],
            sha256=config["dataset"]["sha256"],
            mirrors=config["dataset"]["mirrors"],
            downloads=config["dataset"]["downloads"],
            classes=CLASSES,
            offline=OFFLINE,
        script:
            "../scripts/fetch_dataset.py"


# Every ImageNet weights file of the run (WEIGHTS_MISSING: rules/common.smk), checked before any
# job starts: offline, all missing files are listed in one error; online, fetch_weights
# downloads each once (no racing jobs).
_cannot_fetch = {
    b: m for b, m in WEIGHTS_MISSING.items() if OFFLINE or not weights_downloadable(b)
}
if _cannot_fetch:
    raise WorkflowError(
        f"adloc: {len(_cannot_fetch)} ImageNet weights file(s) missing"
        + (" (offline: nothing is downloaded)" if OFFLINE else "")
        + ", before any job started:\n"
        + "\n".join(f"  - {m}" for m in _cannot_fetch.values())
    )
if WEIGHTS_MISSING:
    print(
        "adloc: ImageNet weights to download once, before any extraction: "
        + ", ".join(WEIGHTS_MISSING)
        + " (offline: true never downloads)",
        file=sys.stderr,
    )


localrules:
    fetch_weights,


rule fetch_weights:
    output:
        weights_marker("{backbone}"),
    log:
        f"{RESULTS}/logs/fetch_weights/{{backbone}}.log",
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/fetch_weights.py"
