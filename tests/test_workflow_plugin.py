"""A method registered from outside adloc runs the whole tiny DAG (issue 20 §1).

The plug-in below is written by this test into a temporary folder, put on PYTHONPATH and named
in the config's ``plugins``; nothing in rules/, scripts/ or adloc.analysis knows it. It is a
k-NN on mean-pooled features (image score: distance to the nearest training image's pooled
feature; map: per-position distance to the training mean feature map), built on the public
parts of adloc.models.common, as ARCHITECTURE.md ("Adding a method") describes.
"""

from __future__ import annotations

import json
import os
import textwrap

import pandas as pd
import pytest

from workflow_utils import TINY, make_dataset, snakemake, write_config

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


@pytest.mark.workflow
@pytest.mark.slow
def test_a_plugin_method_runs_the_whole_dag(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "adloc_toy_plugin.py").write_text(PLUGIN)
    wd = tmp_path / "wd"
    wd.mkdir()
    make_dataset(wd / "data", TINY["classes"])
    write_config(wd, plugins=["adloc_toy_plugin"], methods=["pooled_knn"],
                 pooled_knn={"num_neighbors": 2})
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(plugins), os.environ.get("PYTHONPATH")]))}
    snakemake(wd, "--cores", "2", env=env)
    r = wd / "results" / "tiny"
    mt = pd.read_csv(r / "tables" / "metrics.csv")
    rows = mt[mt["class"] != "macro"]
    assert set(rows["method"]) == {"pooled_knn"}
    assert set(rows["scope"]) == {"per_class", "global", "unified_abs"}
    assert len(rows) == 3 * len(TINY["classes"]) and rows["auroc"].between(0, 1).all()
    for table in sorted((r / "tables").glob("*.csv")):  # every table that has methods has it
        df = pd.read_csv(table)
        if "method" in df.columns:
            assert set(df["method"].dropna()) == {"pooled_knn"}, table.name
    for fig in ["figures/gap.png", "figures/tsne.png", "s42-m0/figures/confusion_pooled_knn.png",
                *(f"figures/examples_{c}.png" for c in TINY["classes"])]:
        assert (r / fig).stat().st_size > 10_000, fig
    summary = (r / "summary.md").read_text()
    assert "Pooled k-NN" in summary and "k = 2" in summary
    assert "PatchCore" not in summary and "PaDiM" not in summary and "memory bank" not in summary
    m = json.loads((r / "s42-m0" / "metrics" / "pooled_knn" / "global" / f"{TINY['classes'][0]}.json").read_text())
    assert m["method"] == "pooled_knn" and m["scope"] == "global"
