"""adloc used as a Snakemake module from another folder (issue 22 §4), running a method
registered from outside adloc (issue 20 §1): one run proves both (CI time, issue 23 §2).

A project folder holds only its own Snakefile (``module adloc: snakefile: <checkout>/Snakefile,
config: config``, ``use rule * from adloc as adloc_*`` and a ``rule all`` on
``rules.adloc_all.input``, the README's form), a config that sets only what it changes, its data
(two classes) and a plug-in module. Snakemake runs there; the outputs land under that folder, the
workflow's scripts, envs, report captions, src/ and config.yaml defaults are read from the
checkout, and nothing is written into the checkout.

The plug-in below is written by this test into a temporary folder, put on PYTHONPATH and named
in the config's ``plugins``; nothing in rules/, scripts/ or adloc.analysis knows it. It is a
k-NN on mean-pooled features (image score: distance to the nearest training image's pooled
feature; map: per-position distance to the training mean feature map), built on the public
parts of adloc.models.common, as ARCHITECTURE.md ("Adding a method") describes. It runs the
whole DAG: rows in every table, every figure, its own summary line and no built-in method's.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

import pandas as pd
import pytest
import yaml

from workflow_utils import ROOT, SNAKEMAKE, TINY, make_dataset

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

USER_SNAKEFILE = """\
configfile: "config.yaml"


module adloc:
    snakefile:
        "{snakefile}"
    config:
        config


use rule * from adloc as adloc_*


rule all:
    default_target: True
    input:
        rules.adloc_all.input,
"""
PLUGIN = textwrap.dedent('''
    """Toy method for adloc's plug-in test: k-NN on mean-pooled features."""
    import dataclasses

    import numpy as np
    import torch

    from adloc.models import Method, register_method
    from adloc.models.common import (count_sources, load_model_file, save_model_file, score_maps,
                                     unpack_features)
    from adloc.models.configs import ModelConfig


    @dataclasses.dataclass
    class PooledKnnConfig(ModelConfig):
        layers: tuple[str, ...] = ("layer2",)
        num_neighbors: int = 1
        blur_sigma: float = 1.0
        image_size: int = 224
        seed: int = 0
        device: str = "cpu"


    class PooledKnn:
        def __init__(self, config):
            self.config = config if isinstance(config, PooledKnnConfig) else PooledKnnConfig.from_dict(config)
            self.provenance, self.bank, self.mean_map, self.train_sources = {}, None, None, None

        def _layer(self, features):
            feats, prov, _ = unpack_features(features, None, self.config.layers)
            return feats[self.config.layers[0]].float(), prov

        def fit(self, features, sources=None, release_features=False):
            x, prov = self._layer(features)
            srcs = count_sources(sources, x.shape[0])
            self.bank = x.mean((2, 3))
            self.mean_map = x.mean(0)
            self.provenance = {**prov, "layers": list(self.config.layers)}
            if srcs is not None:
                self.train_sources = {s: srcs.count(s) for s in sorted(set(srcs))}
            return self

        def predict(self, features):
            x, _ = self._layer(features)
            d = torch.cdist(x.mean((2, 3)), self.bank)
            k = min(int(self.config.num_neighbors), self.bank.shape[0])
            scores = d.topk(k, largest=False).values.mean(1)
            grid = (x - self.mean_map).pow(2).sum(1).sqrt()
            maps = score_maps(grid, int(self.config.image_size), float(self.config.blur_sigma), "reflect")
            return scores.numpy().astype(np.float32), maps.numpy().astype(np.float32)

        def save(self, path):
            save_model_file(path, "pooled_knn", self.config.to_dict(), self.provenance,
                            {"bank": self.bank, "mean_map": self.mean_map},
                            train_sources=self.train_sources)

        @classmethod
        def load(cls, path, expect_config=None, device=None):
            obj, cfg = load_model_file(path, "pooled_knn", PooledKnnConfig, expect_config, device)
            model = cls(cfg)
            model.bank, model.mean_map = obj["state"]["bank"], obj["state"]["mean_map"]
            model.provenance = dict(obj["provenance"])
            model.train_sources = obj.get("train_sources")
            return model


    register_method(Method(name="pooled_knn", label="Pooled k-NN", config=PooledKnnConfig,
                           model=__name__ + ":PooledKnn",
                           setup=lambda cfg: f"Pooled k-NN: k = {cfg['pooled_knn']['num_neighbors']}"))
''')

SKIP = {".git", ".venv", "__pycache__", ".pytest_cache"}


def _snapshot(root):
    """Every file under the checkout (bytecode caches, .git and a venv aside): path -> (size,
    mtime), so a new, removed or rewritten file shows."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIP]
        for f in filenames:
            p = os.path.join(dirpath, f)
            st = os.stat(p)
            out[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns)
    return out


def test_adloc_as_a_module_from_another_folder_with_a_plugin_method(tmp_path):
    proj = tmp_path / "project"
    proj.mkdir()
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "adloc_toy_plugin.py").write_text(PLUGIN)
    classes = TINY["classes"]
    make_dataset(proj / "data", classes)
    # only what this project changes: everything else comes from the module's config.yaml
    cfg = {**TINY, "plugins": ["adloc_toy_plugin"], "methods": ["pooled_knn"],
           "pooled_knn": {"num_neighbors": 2}}
    (proj / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (proj / "Snakefile").write_text(USER_SNAKEFILE.format(snakefile=ROOT / "Snakefile"))
    before = _snapshot(ROOT)
    pythonpath = os.pathsep.join(filter(None, [str(plugins), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": pythonpath}
    # the user's own Snakefile, found in the working directory: no --snakefile, no --directory
    proc = subprocess.run([SNAKEMAKE, "--cores", "2"], cwd=proj, capture_output=True, text=True,
                          timeout=2400, env=env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-6000:]
    assert "adloc_metrics_table" in proc.stdout + proc.stderr  # the module's rules, prefixed
    run = proj / "results" / "tiny"
    assert (run / "s42-m0" / "models" / "pooled_knn" / f"{classes[0]}.pt").is_file()
    assert (proj / ".snakemake").is_dir() and (run / "logs").is_dir()
    _check_plugin_outputs(run, classes)
    # the report reads its captions from the module's report/ folder
    rep = subprocess.run([SNAKEMAKE, "--report", "report.html"], cwd=proj, capture_output=True,
                         text=True, timeout=600, env=env)
    assert rep.returncode == 0, rep.stderr[-4000:]
    assert "the per-class model is better" in (proj / "report.html").read_text()  # report/gap.rst
    # defaults the project did not set came from the module's config.yaml
    used = json.loads((run / "config.json").read_text())
    defaults = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert used["splits"] == defaults["splits"] and used["classes"] == classes
    assert used["dataset"]["root"] == "data"  # the user's data, relative to the user's folder
    # nothing was written into the checkout (outputs, logs, .snakemake, script copies)
    after = _snapshot(ROOT)
    added = sorted(set(after) - set(before))
    changed = sorted(k for k in before if k in after and before[k] != after[k])
    assert not added and not changed, f"written into the checkout: {added[:10]} {changed[:10]}"
    # a second run has nothing to do
    again = subprocess.run([SNAKEMAKE, "--cores", "1", "-n"], cwd=proj, capture_output=True,
                           text=True, timeout=600, env=env)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def _check_plugin_outputs(r, classes):
    """The plug-in's rows in every table, its figures, and a summary that names only it."""
    mt = pd.read_csv(r / "tables" / "metrics.csv")
    rows = mt[mt["class"] != "macro"]
    assert set(rows["method"]) == {"pooled_knn"}
    assert set(rows["scope"]) == {"per_class", "global", "unified_abs", "routed"}
    assert len(rows) == 4 * len(classes) and rows["auroc"].between(0, 1).all()
    for table in sorted((r / "tables").glob("*.csv")):  # every table that has methods has it
        df = pd.read_csv(table)
        if "method" in df.columns:
            assert set(df["method"].dropna()) == {"pooled_knn"}, table.name
    for fig in ["figures/gap.png", "figures/tsne.png", "s42-m0/figures/confusion_pooled_knn.png",
                *(f"figures/examples_{c}.png" for c in classes)]:
        assert (r / fig).stat().st_size > 10_000, fig
    summary = (r / "summary.md").read_text()
    assert "Pooled k-NN" in summary and "k = 2" in summary
    assert "PatchCore" not in summary and "PaDiM" not in summary and "memory bank" not in summary
    m = json.loads((r / "s42-m0" / "metrics" / "pooled_knn" / "global" / f"{classes[0]}.json").read_text())
    assert m["method"] == "pooled_knn" and m["scope"] == "global"
