# Input functions of the shifted chain (shift.enabled; rules/shift.smk): the path words dom and
# ph (rules/common.smk) mapped to the files each phase reads, the shift targets of rule all and
# the inputs of rule shift_tables. Clean paths (dom = ph = "") are those of the clean chain.


def check_shift_seeds():
    """shift.seeds given by hand: two seeds closer than a class's image count would share draws
    (checked on the class folders that exist when the DAG is built, and by rule shift_tables on
    the parameter tables)."""
    if config["shift"].get("seeds") is None:
        return
    for cls in CLASSES:
        folder = Path(DATA_ROOT) / cls
        if folder.is_dir():
            n = sum(
                1
                for f in class_files(folder)
                if Path(f).relative_to(folder).parts[0] in ("train", "test")
            )
            try:
                check_seed_spacing(SHIFT_SEEDS, n, f"class {cls}")
            except ConfigError as exc:
                raise WorkflowError(f"adloc: invalid configuration: {exc}") from None


def ph_re(*phases):
    """The ``ph`` words of the clean chain and of these shift phases (a rule's constraint)."""
    return (
        "(?:"
        + "|".join(re.escape(k) for k, v in PHS.items() if v in ("", *phases))
        + ")"
    )


def dom_of(ph):
    """The data domain of a phase word: its shifted copy for every shift phase."""
    return PH_DOM[ph]


def model_ph(ph):
    """Where a phase's models are: phases none and threshold use the clean models."""
    return ph if PHS[ph] in ("", "full") else ""


def score_ph(ph):
    """Where a phase's scores are: threshold reuses phase none's (the same clean models)."""
    return f"{PH_DOM[ph]}none/" if PHS[ph] == "threshold" else ph


def threshold_ph(ph):
    """Where a phase's thresholds are: phase none keeps the clean thresholds."""
    return "" if PHS[ph] == "none" else ph


def data_root(w):
    """The images (and masks) a phase reads: the dataset, or its shifted copy."""
    ph = w.get("ph")
    dom = dom_of(ph) if ph is not None else w.get("dom", "")
    return DATA_ROOT if dom == "" else f"{RESULTS}/{dom}".rstrip("/")


def phase_words(repeat):
    """A repeat's phase words (path word -> phase), the clean chain's "" first: the phases of
    the repeat's own shifted copy."""
    dom = shift_dom(SHIFT_OF[repeat])
    return {"": ""} | {f"{dom}{p}/": p for p in SHIFT_PHASES}


def order_splits(w):
    """The split file whose order a domain's extraction batches follow (extract_features, the rule);
    the first repeat's, or for a shifted copy the first repeat that reads it."""
    rep = FIRST
    if w.dom:
        rep = next(r for r in REPEATS if shift_dom(SHIFT_OF[r]) == w.dom)
    return f"{RESULTS}/{rep}/{w.dom}splits/{w.cls}.json"


def preprocess_of(w):
    """How a phase's images and masks become the model input (the shifted copy is one already)."""
    if w.get("ph", w.get("dom", "")) == "":
        return config["preprocess"]
    return shifted_preprocess(config["preprocess"])


def shift_targets():
    """Every shifted copy of every class, its parameter table, the shift tables, figures and
    summary lines, the shifted examples figures (none when shift is off)."""
    if not SHIFT_ON:
        return []
    return (
        expand(f"{SHIFT_X}/{{cls}}", sname=SHIFT_NAMES, cls=CLASSES)
        + expand(f"{SHIFT_X}/{{cls}}_params.csv", sname=SHIFT_NAMES, cls=CLASSES)
        + [f"{RESULTS}/tables/shift_metrics.csv", f"{RESULTS}/tables/shift_summary.md"]
        + expand(f"{RESULTS}/figures/shift_examples_{{cls}}.png", cls=CLASSES)
    )


def shift_layout():
    """Where shift_tables (the rule) finds each repeat's tables and score pairs. Per repeat, its
    shift seed, the clean and each phase's metrics and gap tables, (phase, method, model, class,
    clean scores, shifted scores) for the shift cost's paired bootstrap, and its shifted copy's
    parameter tables.
    """
    out = {"repeats": {}}
    for r in REPEATS:
        name, words = SHIFT_OF[r], phase_words(r)
        tables = {
            p
            or "clean": {
                t: f"{RESULTS}/{r}/{ph}tables/{t}.csv" for t in ("metrics", "gap")
            }
            for ph, p in words.items()
        }
        pairs = [
            [p, m, model, c, scores_of(m, s, c, r), scores_of(m, s, c, r, score_ph(ph))]
            for ph, p in words.items()
            if p
            for m in METHODS
            for c in CLASSES
            for model, s in (("per_class", c), ("global", GLOBAL))
        ]
        params = {c: f"{RESULTS}/shift/{name}/{c}_params.csv" for c in CLASSES}
        out["repeats"][r] = {
            "seed": SHIFT_SPECS[name]["seed"],
            "tables": tables,
            "pairs": pairs,
            "params": params,
        }
    return out


def shift_table_inputs(w):
    """Every file of :func:`shift_layout` (rule shift_tables)."""
    lay = shift_layout()
    files = {"params": [], "tables": [], "scores": []}
    for rep in lay["repeats"].values():
        files["params"] += [
            f for f in rep["params"].values() if f not in files["params"]
        ]
        files["tables"] += [f for t in rep["tables"].values() for f in t.values()]
        files["scores"] += sorted({f for pair in rep["pairs"] for f in pair[4:]})
    return files


def shift_examples_layout(cls):
    """What shift_examples (the rule) draws for class ``cls`` (the first repeat, as examples does);
    method -> model (per_class, global) -> phase (clean, none, threshold, full) -> its scores
    and metrics files (the metrics file holds the phase's threshold)."""
    words = phase_words(FIRST)
    return {
        m: {
            model: {
                p
                or "clean": {
                    "scores": scores_of(m, s, cls, FIRST, score_ph(ph)),
                    "metrics": f"{RESULTS}/{FIRST}/{ph}metrics/{m}/{s}/{cls}.json",
                }
                for ph, p in words.items()
            }
            for model, s in (("per_class", cls), ("global", GLOBAL))
        }
        for m in METHODS
    }


def shift_examples_inputs(w):
    """Rule shift_examples' inputs: the first repeat's clean and shifted split files, the
    class's original and shifted images, and every file of :func:`shift_examples_layout`.
    """
    dom = shift_dom(SHIFT_OF[FIRST])
    lay = shift_examples_layout(w.cls)
    files = [
        f
        for mm in lay.values()
        for ph in mm.values()
        for d in ph.values()
        for f in d.values()
    ]
    return {
        "splits": splits_of(w.cls, FIRST),
        "shifted_splits": splits_of(w.cls, FIRST, dom),
        "data": class_images(w),
        "shifted": f"{RESULTS}/{dom}{w.cls}",
        "files": list(dict.fromkeys(files)),
    }


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
        # the routed scope: the routing of the test images, every class's threshold
        "routing": f"{RESULTS}/{w.repeat}/{score_ph(w.ph)}routing/{fset_of(w.method)}.json",
        "class_thresholds": [f"{thr}/{GLOBAL}/{c}.json" for c in CLASSES],
    }


def route_inputs(w):
    """Rule route's features and split files in phase ``w.ph``: the training images of the
    phase's models (clean, or the shifted copy in phase full) and the phase's test images.
    """
    train_dom = dom_of(model_ph(w.ph))
    test_dom = dom_of(w.ph)
    feats = lambda dom: [f"{RESULTS}/{dom}features/{w.fset}/{c}.pt" for c in CLASSES]
    return {
        "train": feats(train_dom),
        "train_splits": [splits_of(c, w.repeat, train_dom) for c in CLASSES],
        "test": feats(test_dom),
        "test_splits": [splits_of(c, w.repeat, test_dom) for c in CLASSES],
    }
