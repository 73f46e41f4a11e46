# Input functions of the shifted chain (shift.enabled; rules/shift.smk): the path words dom and
# ph (rules/common.smk) mapped to the files each phase reads, the shift targets of rule all and
# the inputs of rule shift_tables. Clean paths (dom = ph = "") are those of the clean chain.


def ph_re(*phases):
    """The ``ph`` words of the clean chain and of these shift phases (a rule's constraint)."""
    return (
        "(?:"
        + "|".join(re.escape(k) for k, v in PHS.items() if v in ("", *phases))
        + ")"
    )


def dom_of(ph):
    """The data domain of a phase word: the shifted copy for every shift phase."""
    return "" if ph == "" else SHIFT_DOM


def model_ph(ph):
    """Where a phase's models are: phases none and threshold use the clean models."""
    return ph if PHS[ph] in ("", "full") else ""


def score_ph(ph):
    """Where a phase's scores are: threshold reuses phase none's (the same clean models)."""
    return f"{SHIFT_DOM}none/" if PHS[ph] == "threshold" else ph


def threshold_ph(ph):
    """Where a phase's thresholds are: phase none keeps the clean thresholds."""
    return "" if PHS[ph] == "none" else ph


def data_root(w):
    """The images (and masks) a phase reads: the dataset, or the shifted copy."""
    return DATA_ROOT if w.get("ph", w.get("dom", "")) == "" else SHIFT


def preprocess_of(w):
    """How a phase's images and masks become the model input (the shifted copy is one already)."""
    if w.get("ph", w.get("dom", "")) == "":
        return config["preprocess"]
    return shifted_preprocess(config["preprocess"])


def shift_targets():
    """The shifted copy of every class, its parameter table and the shift tables, figures and
    summary lines (none when shift is off)."""
    if not SHIFT_ON:
        return []
    return (
        expand(f"{SHIFT}/{{cls}}", cls=CLASSES)
        + expand(f"{SHIFT}/{{cls}}_params.csv", cls=CLASSES)
        + [f"{RESULTS}/tables/shift_metrics.csv", f"{RESULTS}/tables/shift_summary.md"]
    )


def shift_layout():
    """Where shift_tables (the rule) finds each repeat's tables and score pairs. Per repeat, the clean
    and each phase's metrics and gap tables, and (phase, method, model, class, clean scores,
    shifted scores) for the shift cost's paired bootstrap; the classes' parameter tables.
    """
    out = {"repeats": {}, "params": {c: f"{SHIFT}/{c}_params.csv" for c in CLASSES}}
    for r in REPEATS:
        tables = {
            p
            or "clean": {
                t: f"{RESULTS}/{r}/{ph}tables/{t}.csv" for t in ("metrics", "gap")
            }
            for ph, p in PHS.items()
        }
        pairs = [
            [p, m, model, c, scores_of(m, s, c, r), scores_of(m, s, c, r, score_ph(ph))]
            for ph, p in PHS.items()
            if p
            for m in METHODS
            for c in CLASSES
            for model, s in (("per_class", c), ("global", GLOBAL))
        ]
        out["repeats"][r] = {"tables": tables, "pairs": pairs}
    return out


def shift_table_inputs(w):
    """Every file of :func:`shift_layout` (rule shift_tables)."""
    lay = shift_layout()
    files = {"params": list(lay["params"].values()), "tables": [], "scores": []}
    for rep in lay["repeats"].values():
        files["tables"] += [f for t in rep["tables"].values() for f in t.values()]
        files["scores"] += sorted({f for pair in rep["pairs"] for f in pair[4:]})
    return files


def evaluate_inputs(w):
    """A per-class model's scores, threshold and split file in phase ``w.ph``."""
    thr = f"{RESULTS}/{w.repeat}/{threshold_ph(w.ph)}thresholds/{w.method}"
    return {
        "scores": scores_of(w.method, w.cls, w.cls, w.repeat, score_ph(w.ph)),
        "threshold": f"{thr}/{w.cls}/{w.cls}.json",
        "splits": splits_of(w.cls, w.repeat, dom_of(w.ph)),
    }


def evaluate_global_inputs(w):
    """The global model's scores of a class, its threshold and the pooled one in phase ``w.ph``."""
    thr = f"{RESULTS}/{w.repeat}/{threshold_ph(w.ph)}thresholds/{w.method}"
    return {
        "scores": scores_of(w.method, GLOBAL, w.cls, w.repeat, score_ph(w.ph)),
        "threshold": f"{thr}/{GLOBAL}/{w.cls}.json",
        "pooled": f"{thr}/pooled.json",
        "splits": splits_of(w.cls, w.repeat, dom_of(w.ph)),
    }
