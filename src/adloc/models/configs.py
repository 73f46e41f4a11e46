"""The methods' config dataclasses (torch-free: the workflow reads their fields at DAG build).

Each dataclass is the one source of its method's parameters and defaults: ``rules/common.smk``
passes a fitted model exactly the dataclass's fields (``adloc.models.registry.model_params``) and
tests/test_registry.py checks that the schema's method sections and ``class_overrides`` name
the same fields.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from ..errors import ModelError

#: how PatchCore's greedy coreset starts (:func:`adloc.models.coreset.coreset_start_indices`)
CORESET_STARTS = ("mean_of_random", "random_point")

#: config keys that describe where a model runs, not what it is; never compared on load.
RUNTIME_KEYS = frozenset({"device"})


@dataclasses.dataclass
class ModelConfig:
    """Dataclass base with strict ``from_dict`` / plain-python ``to_dict``."""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None = None, **overrides: Any):
        """Build a config from a mapping; unknown keys raise :class:`ModelError` naming them."""
        data = dict(d or {})
        data.update(overrides)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ModelError(
                f"unknown {cls.__name__} key(s): {', '.join(map(repr, unknown))}; "
                f"allowed keys: {', '.join(sorted(names))}"
            )
        return cls(**data)

    def __post_init__(self) -> None:
        # lists from YAML/JSON become tuples so configs compare equal after a round trip
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, list):
                setattr(self, f.name, tuple(v))
        self.validate()

    def validate(self) -> None:  # overridden
        pass

    def to_dict(self) -> dict[str, Any]:
        """Plain-python dict (tuples become lists), safe for ``weights_only`` loading and JSON."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out


def check_choice(cls_name: str, key: str, value: Any, allowed) -> None:
    if value not in allowed:
        raise ModelError(f"{cls_name} key {key!r} has value {value!r}; allowed: {sorted(allowed)}")


def check_layers(cls_name: str, layers) -> None:
    if not layers:
        raise ModelError(f"{cls_name} key 'layers' must name at least one layer, got {layers!r}")
    for layer in layers:
        if not isinstance(layer, str):
            raise ModelError(f"{cls_name} key 'layers' must hold layer names, got {layer!r}")


def check_map_options(cfg) -> None:
    """The checks every method's config shares: layers, blur (sigma >= 0, border mode), and a
    positive image size."""
    name = type(cfg).__name__
    check_layers(name, cfg.layers)
    check_choice(name, "blur_mode", cfg.blur_mode, {"reflect", "mirror", "nearest"})
    if float(cfg.blur_sigma) < 0:
        raise ModelError(f"{name} key 'blur_sigma' must be >= 0, got {cfg.blur_sigma!r}")
    if int(cfg.image_size) < 1:
        raise ModelError(f"{name} key 'image_size' must be >= 1, got {cfg.image_size!r}")


@dataclasses.dataclass
class PatchCoreConfig(ModelConfig):
    layers: tuple[str, ...] = ("layer2", "layer3")
    pretrain_embed_dim: int | None = None
    target_embed_dim: int | None = None
    patch_size: int = 3
    coreset_ratio: float = 0.1
    coreset_projection_dim: int | None = 128
    coreset_starts: int = 10
    coreset_start: str = "mean_of_random"
    coreset_draws: str = "seeded"
    coreset_dtype: str = "float32"
    embedding_dtype: str = "float32"
    num_neighbors: int = 9
    knn_bf16: bool = False
    scoring: str = "paper"
    blur_sigma: float = 4.0
    blur_mode: str = "reflect"
    image_size: int = 224
    seed: int = 0
    device: str = "cpu"

    def validate(self) -> None:
        name = type(self).__name__
        check_map_options(self)
        check_choice(name, "scoring", self.scoring, {"paper", "study"})
        check_choice(name, "coreset_dtype", self.coreset_dtype, {"float32", "float16"})
        check_choice(name, "embedding_dtype", self.embedding_dtype, {"float32", "float16"})
        check_choice(name, "coreset_start", self.coreset_start, set(CORESET_STARTS))
        check_choice(name, "coreset_draws", self.coreset_draws, {"seeded", "study"})
        if self.coreset_draws == "study" and self.coreset_start != "random_point":
            raise ModelError(f"{name} key 'coreset_draws' is 'study', which draws the study's one "
                             "random start point: set coreset_start: random_point")
        if not (0 < float(self.coreset_ratio) <= 1):
            raise ModelError(f"{name} key 'coreset_ratio' must be in (0, 1], got {self.coreset_ratio!r}")
        if int(self.patch_size) < 1 or int(self.patch_size) % 2 == 0:
            raise ModelError(f"{name} key 'patch_size' must be a positive odd integer, got {self.patch_size!r}")
        for key in ("pretrain_embed_dim", "target_embed_dim", "coreset_projection_dim"):
            v = getattr(self, key)
            if v is not None and int(v) < 1:
                raise ModelError(f"{name} key {key!r} must be a positive integer or null, got {v!r}")
        if int(self.num_neighbors) < 1 or int(self.coreset_starts) < 1:
            raise ModelError(f"{name} keys num_neighbors and coreset_starts must be >= 1")


@dataclasses.dataclass
class PadimConfig(ModelConfig):
    layers: tuple[str, ...] = ("layer1", "layer2", "layer3")
    n_features: int | None = 100
    covariance_eps: float = 0.01
    blur_sigma: float = 4.0
    blur_mode: str = "reflect"
    image_size: int = 224
    seed: int = 0
    device: str = "cpu"

    def validate(self) -> None:
        name = type(self).__name__
        check_map_options(self)
        if self.n_features is not None and int(self.n_features) < 1:
            raise ModelError(f"{name} key 'n_features' must be a positive integer or null, got {self.n_features!r}")
        if float(self.covariance_eps) < 0:
            raise ModelError(f"{name} key 'covariance_eps' must be >= 0, got {self.covariance_eps!r}")


@dataclasses.dataclass
class SpadeConfig(ModelConfig):
    """SPADE (:mod:`adloc.models.spade`): ``layers[0]`` sets the pyramid's grid, ``layers[-1]``
    (global average pooled) the image feature; ``k`` nearest training images."""

    layers: tuple[str, ...] = ("layer1", "layer2", "layer3")
    k: int = 50
    blur_sigma: float = 4.0
    blur_mode: str = "reflect"
    image_size: int = 224
    seed: int = 0
    device: str = "cpu"

    def validate(self) -> None:
        name = type(self).__name__
        check_map_options(self)
        if int(self.k) < 1:
            raise ModelError(f"{name} key 'k' must be a positive integer, got {self.k!r}")
