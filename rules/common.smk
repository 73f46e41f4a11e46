# Validation, derived settings and input functions shared by all rules.
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from snakemake.utils import validate
from adloc.config import validate_config, feature_set_name, run_folder_name
from adloc.errors import ConfigError

try:
    # adloc's check first: its messages name the key and the allowed values.
    config.update(validate_config(config, "config"))
except ConfigError as exc:
    raise WorkflowError(f"adloc: invalid configuration: {exc}") from None
validate(config, Path(workflow.basedir) / "schemas" / "config.schema.yaml")

# Every output of a run lives under results/<run>/ (run_name, or <dataset>-<run_tag>), so runs
# with other presets or data sit side by side; the generated embedded data stays shared.
RUN = run_folder_name(config)
config["run_name"] = RUN
RESULTS = f"results/{RUN}"
CLASSES = list(config["classes"])
METHODS = list(config["methods"])
DATA_ROOT = config["dataset"]["root"]
GLOBAL = "global"
UNIFIED_ABS = "unified_abs"
for _reserved in (GLOBAL, UNIFIED_ABS):
    if _reserved in CLASSES:
        raise WorkflowError(
            f"adloc: a class may not be named {_reserved!r} (config key classes): "
            "that name is reserved for the model-unified and absolute-unified scopes"
        )
SCOPES = CLASSES + [GLOBAL]
IMAGE_SIZE = config["preprocess"]["crop"] or config["preprocess"]["resize"]
USE_GPU = config["device"] == "cuda"
# Threads of the torch rules: Snakemake caps them at --cores locally; on Slurm they become
# --cpus-per-task. A constant (not workflow.cores) keeps --report and --lint usable without --cores.
MAX_THREADS = 8
GPU = 1 if USE_GPU else 0

CLASS_RE = "|".join(CLASSES)
SCOPE_RE = "|".join(SCOPES)


wildcard_constraints:
    cls=CLASS_RE,
    scope=SCOPE_RE,
    method="patchcore|padim",
    split="train|val|test",


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


def fset_spec(wildcards):
    return FSETS[wildcards.fset]


def weights_file(wildcards):
    """A local weights file is an input, so replacing it reruns extraction."""
    w = FSETS[wildcards.fset]["weights"]
    return [os.path.expanduser(w)] if w not in ("imagenet", "random") else []


def class_images(wildcards):
    """Every file of a class folder (real data), so a changed image reruns that class only."""
    root = Path(DATA_ROOT) / wildcards.cls
    if config["dataset"]["generate"]:
        return [str(root)]
    if not root.is_dir():
        return []  # the splits script reports the missing folder clearly
    return sorted(str(p) for p in root.rglob("*") if p.is_file())


def model_params(method, cls=None):
    """Everything a fitted model reads: the method's settings plus class_overrides[cls]."""
    keys = {
        "patchcore": [
            "layers",
            "pretrain_embed_dim",
            "target_embed_dim",
            "coreset_ratio",
            "coreset_projection_dim",
            "coreset_dtype",
            "num_neighbors",
            "scoring",
            "blur_sigma",
            "blur_mode",
        ],
        "padim": ["layers", "n_features", "covariance_eps", "blur_sigma", "blur_mode"],
    }[method]
    params = {k: config[method][k] for k in keys}
    if cls is not None:
        params.update(config["class_overrides"].get(cls, {}).get(method, {}))
    return params


def final_targets():
    t = [
        f"{RESULTS}/tables/metrics.csv",
        f"{RESULTS}/tables/gap.csv",
        f"{RESULTS}/figures/gap.png",
        f"{RESULTS}/figures/tsne.png",
        f"{RESULTS}/summary.md",
    ]
    t += expand(f"{RESULTS}/tables/confusion_{{method}}.csv", method=METHODS)
    t += expand(f"{RESULTS}/figures/confusion_{{method}}.png", method=METHODS)
    t += expand(f"{RESULTS}/figures/examples_{{cls}}.png", cls=CLASSES)
    if "patchcore" in METHODS:
        t.append(f"{RESULTS}/tables/memory_bank_composition.csv")
    return t


def metric_files():
    return [
        f"{RESULTS}/metrics/{m}/{s}/{c}.json"
        for m in METHODS
        for c in CLASSES
        for s in (c, GLOBAL, UNIFIED_ABS)
    ]


def score_inputs(w):
    """A per-class model's inputs: its model, the class's val/test features and split file."""
    fs = f"{RESULTS}/features/{fset_of(w.method)}/{w.cls}"
    return {
        "model": f"{RESULTS}/models/{w.method}/{w.cls}.pt",
        "val": [f"{fs}/val.pt"],
        "test": [f"{fs}/test.pt"],
        "splits": [f"{RESULTS}/splits/{w.cls}.json"],
    }


def score_global_inputs(w):
    """The global model plus every class's val/test (and train, for the in-sample variant)."""
    fs = f"{RESULTS}/features/{fset_of(w.method)}"
    inputs = {
        "model": f"{RESULTS}/models/{w.method}/{GLOBAL}.pt",
        "val": [f"{fs}/{c}/val.pt" for c in CLASSES],
        "test": [f"{fs}/{c}/test.pt" for c in CLASSES],
        "splits": [f"{RESULTS}/splits/{c}.json" for c in CLASSES],
    }
    if config["analysis"]["confusion_normals"] == "train":
        inputs["train"] = [f"{fs}/{c}/train.pt" for c in CLASSES]
    return inputs


def scores_of(method, scope, cls):
    return f"{RESULTS}/scores/{method}/{scope}/{cls}.npz"


TSNE_FSET = fset_of("patchcore" if "patchcore" in METHODS else METHODS[0])
