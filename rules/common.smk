# Validation, derived settings and input functions shared by all rules.
import os
import re
import runpy
import sys
import time
from pathlib import Path

import yaml

# The workflow's own folder (this checkout, also when another project uses it as a module):
# src/ and the config.yaml defaults are read from here, never from the working directory,
# where every output goes. (workflow.basedir is the main Snakefile's folder: a module user's.)
WORKFLOW_DIR = Path(workflow.source_path("../Snakefile")).parent
# This checkout's src/ first on sys.path, by the one file that does it for every job's script
# too (scripts/_common.py); a copy without it (a remote module) imports the installed adloc.
if (WORKFLOW_DIR / "scripts" / "_common.py").exists():
    runpy.run_path(str(WORKFLOW_DIR / "scripts" / "_common.py"))

from adloc.config import (
    validate_config,
    feature_set_name,
    is_offline,
    parse_repeat,
    repeat_names,
    run_folder_name,
)
from adloc.data.fetch import (
    MARKER,
    LICENCE as DATA_LICENCE,
    archive_for,
    unfetched_copy,
)
from adloc.weights import missing_imagenet_weights, marker_path
from adloc.weights import downloadable as weights_downloadable
from adloc.errors import ConfigError, DatasetError
from adloc.data.mvtec import check_class_folders, class_files
from adloc.data.shift import check_shift_config, shift_folder_name
from adloc.data.shifted import check_seed_spacing, repeat_shift_seeds
from adloc.data.shifted import shifted_preprocess
from adloc.data.transforms import Preprocess
from adloc.data.content import content_param
from adloc.runtime import local_cuda_devices
from adloc.models.registry import MEMORY_BANK, methods_with
from adloc.models.registry import model_params as registry_model_params
from adloc.models.registry import predict_options as registry_predict_options
from adloc.models.registry import replays_draws
from adloc.workflow import done_message, run_configs, run_tables

RUN_STARTED = time.time()  # the onsuccess message names only what this run built

from adloc.config import deep_merge

# A module's configfile is skipped (module ... config: config): the workflow's config.yaml
# defaults go under the config it is given, so a user's config sets only what it changes.
# Standalone, the Snakefile has loaded the same file already (a no-op then).
with open(workflow.source_path("../config.yaml"), encoding="utf-8") as _f:
    config.update(deep_merge(yaml.safe_load(_f) or {}, config))

try:
    # adloc's check first: its messages name the key and the allowed values. The --config
    # values (nested ones arrive as strings) are typed by the schema first.
    config.update(
        validate_config(config, "config", cli_overrides=workflow.config_settings.config)
    )
except ConfigError as exc:
    raise WorkflowError(f"adloc: invalid configuration: {exc}") from None
# (validate_config checks against the schema with the registry's methods, plug-ins included,
# which Snakemake's validate() cannot take: it reads the schema file as it is)

# Every output of a run lives under results/<run>/ (run_name, or <dataset>-<run_tag>), so runs
# with other presets or data sit side by side; the generated embedded data stays shared.
RUN = run_folder_name(config)
if RUN == "compare":
    raise WorkflowError(
        "adloc: the run name 'compare' is reserved for results/compare/ (rule compare); "
        "set run_name (or dataset.name) to another name"
    )
config["run_name"] = RUN
RESULTS = f"results/{RUN}"
# One subfolder per repeat (split seed x model seed): splits, models, scores, thresholds,
# metrics and that repeat's tables. Images and features (keyed by image) sit above, shared.
REPEATS = repeat_names(config)
FIRST = REPEATS[0]  # the repeat whose confusion, t-SNE and example figures are drawn
REP = f"{RESULTS}/{{repeat}}"  # a path prefix with the repeat wildcard
REP_X = (
    f"{RESULTS}/{{{{repeat}}}}"  # the same inside expand() (keeps {repeat} a wildcard)
)
CLASSES = list(config["classes"])
METHODS = list(config["methods"])
DATA_ROOT = config["dataset"]["root"]  # ~ expanded by validate_config
OFFLINE = is_offline(config)
# dataset.source mvtec_ad / visa: rule fetch_dataset writes the data and this marker once.
FETCH_DATASET = config["dataset"]["source"] != "folder"
if FETCH_DATASET and unfetched_copy(DATA_ROOT, CLASSES):
    print(
        f"adloc: {DATA_ROOT} already holds every class but was not fetched by adloc (no "
        f"{MARKER}): read as it is (dataset.source: folder), its archive not verified.",
        file=sys.stderr,
    )
    FETCH_DATASET = False
DATA_MARKER = f"{DATA_ROOT}/{MARKER}" if FETCH_DATASET else None
try:  # MPDD (no published archive) without dataset.url / sha256: one line, before any job
    DATASET_ARCHIVE = (
        archive_for(
            config["dataset"]["source"],
            config["dataset"]["url"],
            config["dataset"]["sha256"],
            config["dataset"]["mirrors"],
        )
        if FETCH_DATASET
        else None
    )
except DatasetError as exc:
    raise WorkflowError(f"adloc: dataset error: {exc}") from None
if not config["dataset"]["generate"] and not FETCH_DATASET:
    try:  # a missing class stops the DAG build (and snakemake -n), not its first job
        check_class_folders(DATA_ROOT, CLASSES)
    except DatasetError as exc:
        raise WorkflowError(f"adloc: dataset error: {exc}") from None
GLOBAL = "global"
UNIFIED_ABS = "unified_abs"
ROUTED = "routed"
PER_CLASS = (
    "per_class"  # rules' params model: which model a calibrate / evaluate job is for
)
for _reserved in (GLOBAL, UNIFIED_ABS, ROUTED):
    if _reserved in CLASSES:
        raise WorkflowError(
            f"adloc: a class may not be named {_reserved!r} (config key classes): "
            "that name is reserved for the model-unified, absolute-unified and routed scopes"
        )
IMAGE_SIZE = config["preprocess"]["crop"] or config["preprocess"]["resize"]


# Domain shift (shift.enabled): the shifted copies, one per shift seed, and the path words of
# the shifted chain (SHIFT_ON, SHIFT_OF, SHIFT_SPECS, SHIFT_NAMES, DOMS, PH_DOM, PHS).
include: "shift_config.smk"


MASK_THRESHOLD = Preprocess.from_config(config["preprocess"]).mask_threshold
# device: cuda, or auto on a cluster (Slurm profile) or with CUDA visible here, makes the GPU
# rules ask for resources gpu=1 and run with device cuda (a job that then sees no GPU fails
# instead of running on the CPU unnoticed); auto without a visible GPU runs on the CPU, said so.
# Decided when the DAG is built (gpu_resource, device_param): only then is the executor known.
LOCAL_GPUS = (
    local_cuda_devices()
    if config["device"] != "cpu" and not workflow.remote_exec
    else 0
)
if LOCAL_GPUS and "gpu" not in workflow.global_resources:
    # bound concurrent GPU jobs by the visible devices (--resources gpu=N overrides)
    workflow.register_resource("gpu", LOCAL_GPUS)
_DEVICE_CHOICE = {}


def gpu_jobs():
    """True when the GPU rules run on CUDA (decided once, printed once for device auto)."""
    if "cuda" not in _DEVICE_CHOICE:
        cluster = workflow.non_local_exec or workflow.remote_exec
        dev = config["device"]
        on_cuda = dev == "cuda" or (dev == "auto" and (cluster or LOCAL_GPUS > 0))
        if dev == "auto" and not workflow.remote_exec:
            where = (
                "a cluster executor: GPU rules ask for a GPU and run on cuda"
                if cluster
                else f"{LOCAL_GPUS} CUDA device(s) visible: GPU rules run on "
                + ("cuda" if on_cuda else "the CPU")
            )
            print(f"adloc: device auto, {where}", file=sys.stderr)
        _DEVICE_CHOICE["cuda"] = on_cuda
    return _DEVICE_CHOICE["cuda"]


def gpu_resource(wildcards):
    return 1 if gpu_jobs() else 0


def device_param(wildcards):
    return "cuda" if gpu_jobs() else "cpu"


# Threads of the torch rules: Snakemake caps them at --cores locally; on Slurm they become
# --cpus-per-task. A constant (not workflow.cores) keeps --report and --lint usable without --cores.
MAX_THREADS = 8

CLASS_RE = "|".join(map(re.escape, CLASSES))


wildcard_constraints:
    cls=CLASS_RE,
    method="|".join(map(re.escape, METHODS)),
    repeat="|".join(REPEATS),
    dom="(?:" + "|".join(map(re.escape, DOMS)) + ")",  # "(?:)": empty (regex "" = none)
    ph="(?:" + "|".join(map(re.escape, PHS)) + ")",
    sname="|".join(map(re.escape, SHIFT_NAMES)) or "(?!)",  # (?!): none when shift is off


def fset_of(method):
    """Feature-set name (backbone + weights tag) that a method reads."""
    m = config[method]
    return feature_set_name(m["backbone"], m["weights"])


FSETS = {}
for _m in METHODS:
    _spec = FSETS.setdefault(
        fset_of(_m),
        {
            "backbone": config[_m]["backbone"],
            "weights": config[_m]["weights"],
            "layers": [],
        },
    )
    _spec["layers"] = sorted(set(_spec["layers"]) | set(config[_m]["layers"]))


FSET_RE = "|".join(map(re.escape, FSETS))


def fset_spec(wildcards):
    return FSETS[wildcards.fset]


# Every ImageNet weights file of the run, looked up once when the DAG is built (rules/fetch.smk
# says what is missing, or stops when it cannot be fetched; weights_file reads it).
IMAGENET_BACKBONES = sorted(
    {s["backbone"] for s in FSETS.values() if s["weights"] == "imagenet"}
)
WEIGHTS_MISSING = missing_imagenet_weights(IMAGENET_BACKBONES)


def weights_marker(backbone):
    return marker_path(RESULTS, backbone)


def weights_file(wildcards):
    """A local weights file is an input, so replacing it reruns extraction. ImageNet weights
    not cached when the run started come from the fetch_weights job (its marker is an ancient
    input, so fetching again never reruns extraction)."""
    spec = FSETS[wildcards.fset]
    w = spec["weights"]
    if w == "imagenet":
        marker = weights_marker(spec["backbone"])
        fetched = spec["backbone"] in WEIGHTS_MISSING or Path(marker).exists()
        return [ancient(marker)] if fetched else []
    return [os.path.expanduser(w)] if w != "random" else []


def class_images(wildcards):
    """Every file of a class folder (real data), links followed, so a changed image reruns
    that class only, also inside a linked folder."""
    root = Path(DATA_ROOT) / wildcards.cls
    if config["dataset"]["generate"]:
        return [str(root)]
    # fetched data is the verified archive's: its marker stands for it
    if FETCH_DATASET:
        return [DATA_MARKER]
    return class_files(root)


CONTENT = {}


def class_content(wildcards):
    """Rule index's content parameter (adloc.data.content): the value the index was made with
    unless a file's sha256 differs from the index's (only files whose size, mtime or ctime moved
    are hashed again), so an edit that keeps the time stamp (cp -p, rsync -a) reruns the class.
    Computed once per snakemake process: Snakemake evaluates params again after it removed the
    outputs of a job it is about to run, and the job must record the value the DAG saw.
    """
    if wildcards.cls not in CONTENT:
        CONTENT[wildcards.cls] = content_param(
            DATA_ROOT,
            f"{RESULTS}/index/{wildcards.cls}.json",
            f"{RESULTS}/index/stat/{wildcards.cls}.json",
        )
    return CONTENT[wildcards.cls]


def model_params(method, cls=None):
    """Everything a fitted model reads: its config dataclass's fields from the method's
    section, plus class_overrides[cls] (adloc.models.registry.model_params)."""
    return registry_model_params(config, method, cls)


def split_seed(wildcards):
    return parse_repeat(wildcards.repeat)[0]


def model_seed(wildcards):
    return parse_repeat(wildcards.repeat)[1]


def final_targets():
    t = [
        f"{RESULTS}/tables/metrics.csv",
        f"{RESULTS}/tables/metrics_across_repeats.csv",
        f"{RESULTS}/tables/gap.csv",
        f"{RESULTS}/tables/gap_across_repeats.csv",
        f"{RESULTS}/figures/gap.png",
        f"{RESULTS}/figures/tsne.png",
        f"{RESULTS}/summary.md",
        f"{RESULTS}/config.json",
    ]
    t += expand(
        f"{RESULTS}/{{repeat}}/tables/confusion_{{method}}.csv",
        repeat=REPEATS,
        method=METHODS,
    )
    t += expand(
        f"{RESULTS}/{{repeat}}/tables/routing_accuracy_{{fset}}.csv",
        repeat=REPEATS,
        fset=FSETS,
    )
    t += expand(f"{RESULTS}/figures/examples_{{cls}}.png", cls=CLASSES)
    if BANK_METHOD:
        t.append(f"{RESULTS}/tables/memory_bank_composition.csv")
    return t + shift_targets()


def features_of(method, cls, dom=""):
    """A class's features (every image once) for the feature set that ``method`` reads."""
    return f"{RESULTS}/{dom}features/{fset_of(method)}/{cls}.pt"


def splits_of(cls, repeat="{repeat}", dom=""):
    return f"{RESULTS}/{repeat}/{dom}splits/{cls}.json"


def metric_files(repeat="{repeat}", ph=""):
    return [
        f"{RESULTS}/{repeat}/{ph}metrics/{m}/{s}/{c}.json"
        for m in METHODS
        for c in CLASSES
        for s in (c, GLOBAL, UNIFIED_ABS, ROUTED)
    ]


def repeat_metric_files(wildcards):
    return metric_files(wildcards.repeat, wildcards.ph)


def score_inputs(w):
    """A per-class model's inputs: its model, the class's features and split file."""
    dom = dom_of(w.ph)
    return {
        "model": f"{RESULTS}/{w.repeat}/{model_ph(w.ph)}models/{w.method}/{w.cls}.pt",
        "features": [features_of(w.method, w.cls, dom)],
        "splits": [splits_of(w.cls, w.repeat, dom)],
    }


def score_global_inputs(w):
    """The global model plus every class's features and split file."""
    dom = dom_of(w.ph)
    return {
        "model": f"{RESULTS}/{w.repeat}/{model_ph(w.ph)}models/{w.method}/{GLOBAL}.pt",
        "features": [features_of(w.method, c, dom) for c in CLASSES],
        "splits": [splits_of(c, w.repeat, dom) for c in CLASSES],
    }


def draw_order_splits(wildcards):
    """Split files of the classes fitted before this one in the study's order (config order),
    for a method that replays the study's draws (coreset_draws: study); else none."""
    if not replays_draws(config, wildcards.method):
        return []
    before = CLASSES[: CLASSES.index(wildcards.cls)]
    return [f"{RESULTS}/{wildcards.repeat}/splits/{c}.json" for c in before]


def replay_param(wildcards):
    return replays_draws(config, wildcards.method)


def predict_options(unified):
    """A method's predict keywords (e.g. PatchCore's images per k-NN search) for rule score
    (per-class model) or score_global (unified=True)."""
    return lambda w: registry_predict_options(config, w.method, unified)


def scores_of(method, scope, cls, repeat="{repeat}", ph=""):
    return f"{RESULTS}/{repeat}/{ph}scores/{method}/{scope}/{cls}.npz"


# the first method with a memory bank: its global model's bank is drawn (rule tsne) and counted
BANK_METHOD = (methods_with(MEMORY_BANK, METHODS) or [None])[0]
TSNE_FSET = fset_of(BANK_METHOD or METHODS[0])
