"""Runs side by side: the table's columns and values, the study column, the figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from adloc.analysis.compare import STUDY_COLUMN, compare_figure, compare_runs
from adloc.analysis.tables import COLUMNS
from adloc.errors import AdlocError, ConfigError
from adloc.workflow import run_tables


def _table(classes, auroc, pixel=np.nan):
    rows = []
    for method in ("patchcore", "padim"):
        for scope in ("per_class", "global"):
            for c in list(classes) + ["macro"]:
                r = {k: np.nan for k in COLUMNS}
                r.update(method=method, scope=scope, **{"class": c}, auroc=auroc, f1=0.5, auprc=0.7,
                         pixel_auroc=pixel, au_pro=np.nan)
                rows.append(r)
    return pd.DataFrame(rows, columns=COLUMNS)


def test_two_runs_side_by_side_with_the_study_column(tmp_path):
    t = compare_runs({"mvtec-paper": _table(["hazelnut", "carpet"], 0.9, 0.95),
                      "mvtec-study": _table(["hazelnut", "carpet"], 0.8)})
    assert list(t.columns) == ["method", "scope", "class", "metric", "mvtec-paper", "mvtec-study", STUDY_COLUMN]
    r = t[(t.method == "patchcore") & (t.scope == "per_class") & (t["class"] == "hazelnut") & (t.metric == "auroc")]
    assert r["mvtec-paper"].item() == 0.9 and r["mvtec-study"].item() == 0.8
    assert r[STUDY_COLUMN].item() == pytest.approx(1.0)  # the study's published PatchCore hazelnut AUROC
    px = t[(t.metric == "pixel_auroc") & (t["class"] == "carpet")]
    assert px["mvtec-study"].isna().all() and (px["mvtec-paper"] == 0.95).all()
    assert t[t["class"] == "macro"][STUDY_COLUMN].isna().all()
    assert list(dict.fromkeys(t.method)) == ["patchcore", "padim"]
    path = tmp_path / "cmp.png"
    compare_figure(t, ["mvtec-paper", "mvtec-study"], path)
    w, h = Image.open(path).size
    assert w > 800 and h > 800


def test_no_study_column_for_other_classes_and_one_run_is_refused():
    t = compare_runs({"a": _table(["synth_nut"], 0.9), "b": _table(["synth_nut"], 0.7)})
    assert STUDY_COLUMN not in t.columns
    with pytest.raises(AdlocError, match="two or more runs"):
        compare_runs({"a": _table(["synth_nut"], 0.9)})


def test_run_tables_names_unfinished_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results" / "a" / "tables").mkdir(parents=True)
    (tmp_path / "results" / "a" / "tables" / "metrics.csv").write_text("x\n")
    assert run_tables(["a", "cur"], "cur") == ["results/a/tables/metrics.csv", "results/cur/tables/metrics.csv"]
    with pytest.raises(ConfigError, match="results/b/tables/metrics.csv"):
        run_tables(["a", "b"], "cur")
    with pytest.raises(ConfigError, match="two or more different runs"):
        run_tables(["a", "a"], "cur")
