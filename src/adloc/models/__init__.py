"""Anomaly models on pre-extracted stage maps, one entry per method in :mod:`.registry`.

Every model shares one interface::

    model = build_model("patchcore", {...})       # the method's config dataclass, from a dict
    model.fit(features, sources=None)            # {layer: (N, C, h, w)} or a FeatureSet
    scores, maps = model.predict(features)       # float32 (N,), float32 (N, H, W)
    model.save(path); load_model("patchcore", path, expect_config=...)

Importing this package (and :mod:`.registry`, :mod:`.configs`) does not import torch; the model
classes are imported when first used.
"""

from .configs import PadimConfig, PatchCoreConfig, SpadeConfig
from .registry import REGISTRY, Method, method, method_label, method_names, register_method

_LAZY = {
    "PatchCore": "patchcore", "Padim": "padim", "Spade": "spade", "KnnIndex": "knn", "knn": "knn",
    "greedy_coreset": "coreset", "covering_radius": "coreset",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_model(name: str, config=None):
    """``build_model("patchcore", {...})`` -> an unfitted model (unknown keys raise ModelError)."""
    entry = method(name)
    cfg = config if isinstance(config, entry.config) else entry.config.from_dict(config)
    return entry.model_class()(cfg)


def load_model(name: str, path, expect_config=None, device=None):
    """Load a fitted model of method ``name`` from ``path`` (see ``PatchCore.load``)."""
    return method(name).model_class().load(path, expect_config=expect_config, device=device)


__all__ = [
    "PatchCore", "PatchCoreConfig", "Padim", "PadimConfig", "Spade", "SpadeConfig", "KnnIndex", "knn", "greedy_coreset",
    "covering_radius", "build_model", "load_model", "REGISTRY", "Method", "method",
    "method_label", "method_names", "register_method",
]
