"""A class whose images are all black gives identical features: scikit-learn's TSNE (PCA start)
turns them into NaN and segfaults. adloc checks first: an N/A panel that says why and a warning
naming the class, repeated in the summary, never a segfault (issue 24 §2). The checks run in a
subprocess so that a segfault fails the test instead of killing pytest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

PROBE = textwrap.dedent("""
    import json, sys
    import numpy as np
    from adloc.analysis.figures import savefig
    from adloc.analysis.tsne import BACKBONE_TITLE, plot_tsne, safe_view, tsne_embed
    from adloc.errors import AdlocError

    out = {}
    try:
        tsne_embed(np.zeros((30, 16)), perplexity=5, max_iter=250)
        out["embed"] = "no error"
    except AdlocError as exc:
        out["embed"] = str(exc)
    rng = np.random.default_rng(0)
    black = np.full((30, 16), 0.25)  # every all-black image: the same pooled features
    view, warn = safe_view(BACKBONE_TITLE, black, ["dark"] * 30, perplexity=5, max_iter=250)
    out["na"] = {"drawn": view[1] is not None, "reason": view[3] if view[1] is None else None,
                 "warnings": warn}
    mixed = np.concatenate([black, rng.normal(size=(30, 16))])
    view2, warn2 = safe_view(BACKBONE_TITLE, mixed, ["dark"] * 30 + ["nut"] * 30, perplexity=5,
                             max_iter=250)
    out["mixed"] = {"drawn": view2[1] is not None, "finite": bool(np.isfinite(view2[1]).all()),
                    "warnings": warn2}
    savefig(plot_tsne([view2, view]), sys.argv[1])
    print(json.dumps(out))
""")


def _probe(tmp_path):
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "MPLBACKEND": "Agg"}
    fig = tmp_path / "tsne.png"
    proc = subprocess.run([sys.executable, "-c", PROBE, str(fig)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, f"rc {proc.returncode} (-11 is SIGSEGV)\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1]), fig


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    return _probe(tmp_path_factory.mktemp("tsne"))


def test_identical_features_are_an_adloc_error_not_a_segfault(probe):
    out, _ = probe
    assert out["embed"] == "tsne_embed: all 30 points have identical features"


def test_all_black_class_is_an_na_panel_with_a_warning_naming_it(probe):
    out, fig = probe
    na = out["na"]
    assert na["drawn"] is False
    assert na["reason"] == "all 30 points have identical features (classes dark)"
    (w,) = na["warnings"]
    assert w.startswith("t-SNE view 'Frozen backbone features, mean-pooled per image' not drawn "
                        "(N/A in figures/tsne.png): all 30 points have identical features "
                        "(classes dark); check the class's images")
    assert fig.stat().st_size > 10_000  # the figure is still written, the N/A panel beside


def test_black_class_beside_others_is_drawn_with_a_warning(probe):
    out, _ = probe
    mixed = out["mixed"]
    assert mixed["drawn"] and mixed["finite"]
    (w,) = mixed["warnings"]
    assert w.startswith("class dark: its 30 points of the t-SNE view 'Frozen backbone features, "
                        "mean-pooled per image' have identical features")


def test_summary_repeats_the_tsne_warning():
    """scripts/summary.py adds tables/tsne_notes.json's warnings to the Warnings section."""
    from adloc.analysis.summary import render_summary

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from test_analysis_summary import _ctx

    w = "t-SNE view 'Frozen backbone features' not drawn (N/A in figures/tsne.png): all 30 ..."
    text = render_summary(dict(_ctx(), warnings=[w]))
    section = text.split("## Warnings", 1)[1].split("## Results", 1)[0]
    assert f"- {w}" in section
