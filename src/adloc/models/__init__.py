"""Anomaly models on pre-extracted stage maps: PatchCore and PaDiM.

Both share one API::

    model = PatchCore(PatchCoreConfig(...))      # or Padim(PadimConfig(...))
    model.fit(features, sources=None)            # {layer: (N, C, h, w)} or a FeatureSet
    scores, maps = model.predict(features)       # float32 (N,), float32 (N, H, W)
    model.save(path); PatchCore.load(path, expect_config=...)
"""

from .coreset import covering_radius, greedy_coreset
from .knn import KnnIndex, knn
from .padim import Padim, PadimConfig
from .patchcore import PatchCore, PatchCoreConfig

MODELS = {"patchcore": (PatchCore, PatchCoreConfig), "padim": (Padim, PadimConfig)}


def build_model(method: str, config=None):
    """``build_model("patchcore", {...})`` -> an unfitted model (unknown keys raise ModelError)."""
    from ..errors import ModelError

    if method not in MODELS:
        raise ModelError(f"unknown method {method!r}; available: {sorted(MODELS)}")
    cls, cfg_cls = MODELS[method]
    return cls(cfg_cls.from_dict(config) if not isinstance(config, cfg_cls) else config)


def load_model(method: str, path, expect_config=None, device=None):
    """Load a fitted model of ``method`` from ``path`` (see ``PatchCore.load``)."""
    from ..errors import ModelError

    if method not in MODELS:
        raise ModelError(f"unknown method {method!r}; available: {sorted(MODELS)}")
    return MODELS[method][0].load(path, expect_config=expect_config, device=device)


__all__ = [
    "PatchCore",
    "PatchCoreConfig",
    "Padim",
    "PadimConfig",
    "KnnIndex",
    "knn",
    "greedy_coreset",
    "covering_radius",
    "build_model",
    "load_model",
    "MODELS",
]
