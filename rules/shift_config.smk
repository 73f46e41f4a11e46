# Domain shift settings (included by rules/common.smk, after the config is validated and the
# repeats are known; rules/shift.smk has the rules, rules/shift_paths.smk the input functions).

# Domain shift (shift.enabled): one shifted copy per shift seed, results/<run>/shift/<variant>-
# s<seed>/ (adloc.data.shift), its geometry resolved against the clean model input here. Each
# repeat has its own shift seed (shift.seeds, or shift.seed + 100000 x repeat index: one repeat
# uses shift.seed), so the across-repeat intervals include the shift draw; a copy, its cache and
# features are made once per seed, whichever repeats share it.
SHIFT_ON = bool(config["shift"]["enabled"])
try:
    SHIFT_SPEC = check_shift_config(config).as_dict() if SHIFT_ON else None
    SHIFT_SEEDS = repeat_shift_seeds(config["shift"], len(REPEATS)) if SHIFT_ON else []
except ConfigError as exc:
    raise WorkflowError(f"adloc: invalid configuration: {exc}") from None
# repeat -> its shifted copy's name; name -> that copy's recipe (seed included)
SHIFT_OF = {
    r: shift_folder_name({**config["shift"], "seed": s})
    for r, s in zip(REPEATS, SHIFT_SEEDS)
}
SHIFT_SPECS = {
    SHIFT_OF[r]: {**SHIFT_SPEC, "seed": s} for r, s in zip(REPEATS, SHIFT_SEEDS)
}
SHIFT_NAMES = list(SHIFT_SPECS)
SHIFT_X = (
    f"{RESULTS}/shift/{{sname}}"  # a shifted copy's folder, with the name wildcard
)


def shift_dom(name):
    """The data-domain word of a shifted copy (``dom``): ``shift/<name>/``."""
    return f"shift/{name}/"


# The shifted chain reuses the clean rules through two path words, both empty in the clean
# chain (so its paths are unchanged): ``dom``, the data domain of images, features and split
# files ("" or "shift/<variant>-s<seed>/"), and ``ph``, the adaptation phase of models,
# scores, thresholds, metrics and tables inside a repeat ("" or "shift/<name>/<phase>/", the
# repeat's own shifted copy). Phase none: clean models and thresholds on the shifted test split;
# threshold: clean models, thresholds from the shifted val split; full: models fitted on the
# shifted train split too.
SHIFT_PHASES = ("none", "threshold", "full")
DOMS = [""] + [shift_dom(n) for n in SHIFT_NAMES]
PH_DOM = {"": ""} | {
    f"{shift_dom(n)}{p}/": shift_dom(n) for n in SHIFT_NAMES for p in SHIFT_PHASES
}  # path word -> its data domain
PHS = {"": ""} | {
    f"{shift_dom(n)}{p}/": p for n in SHIFT_NAMES for p in SHIFT_PHASES
}  # path word -> phase
if SHIFT_ON:
    for _reserved in ("images", "features"):
        if _reserved in CLASSES:
            raise WorkflowError(
                f"adloc: with shift.enabled a class may not be named {_reserved!r} (config key "
                f"classes): {RESULTS}/shift/<name>/{_reserved}/ holds the shifted copy's {_reserved}"
            )
