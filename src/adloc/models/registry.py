"""The method registry: one entry per anomaly-detection method, read by the rules, the scripts
and the analysis (names, labels, order, parameters, capabilities).

Torch-free: the workflow imports it when the DAG is built and the evaluation rules import it for
labels; the model class is named by ``"module:Class"`` and imported only when a model is built
or loaded. See ARCHITECTURE.md, "Adding a method".

An entry (:class:`Method`):

* ``name``: the config key (``methods: [...]`` and the method's own section) and the path word.
* ``label``: how tables and figures name it.
* ``config``: its config dataclass (:class:`adloc.models.configs.ModelConfig`): the one source
  of its parameters and defaults. A fitted model receives exactly the dataclass's fields that
  the method's config section holds, plus ``class_overrides`` (:func:`model_params`).
* ``model``: ``"module:Class"`` of the model; the class implements the model interface:
  ``Class(config)``, ``.fit(features, sources=None, release_features=False)``,
  ``.predict(features, **predict options) -> (scores (N,), maps (N, H, W))``,
  ``.save(path)``, ``Class.load(path, expect_config=None, device=None)``, ``.provenance``.
* ``predict_options``: predict keyword -> (config key for per-class models, config key for the
  global model), e.g. PatchCore's ``query_images``; these keys are read at scoring time only,
  so changing them rescoring without refitting.
* ``capabilities``: e.g. ``"memory_bank"`` (the model has ``bank``, ``bank_origin`` and
  ``source_names``: the t-SNE bank view and the bank-composition table are drawn from it);
  ``"retrieves_images"`` (a test image is first matched to its nearest whole training images,
  so a global model may route it to its own class: the summary sets the method's per-class vs
  global gap beside the other methods', with :data:`CAPABILITY_NOTES`' sentence).
* ``workflow_keys``: keys of the method's section that the workflow reads, not the model
  (``backbone``, ``weights``: which feature set it reads).
* ``setup``, ``protocol``, ``protocol_notes``: what summary.md says about it
  (:mod:`.describe`); each optional.

The feature layers a method needs are its config's ``layers``.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Mapping

from ..errors import ConfigError
from .describe import padim_setup, patchcore_notes, patchcore_protocol, patchcore_setup, spade_setup
from .configs import RUNTIME_KEYS, PadimConfig, PatchCoreConfig, SpadeConfig

#: config fields the workflow sets per job (not from the method's section)
JOB_KEYS = frozenset({"image_size", "seed"}) | RUNTIME_KEYS

MEMORY_BANK = "memory_bank"
RETRIEVES_IMAGES = "retrieves_images"
#: what the summary says a capability means for the per-class vs global gap (after the label)
CAPABILITY_NOTES = {
    RETRIEVES_IMAGES: ("retrieves each test image's nearest whole training images before it "
                       "compares patches, so its global model may route an image to its own class "
                       "and close the per-class vs global gap"),
}


@dataclasses.dataclass(frozen=True)
class Method:
    name: str
    label: str
    config: type
    model: str
    predict_options: Mapping[str, tuple[str, str]] = dataclasses.field(default_factory=dict)
    capabilities: frozenset = frozenset()
    workflow_keys: tuple[str, ...] = ("backbone", "weights")
    setup: Callable[[Mapping], str] | None = None
    protocol: Callable[[Mapping], str | None] | None = None
    protocol_notes: Callable[[Mapping], list[str]] | None = None
    #: True when a fit needs the study's fitting order (``fit(..., draw_order=...)``), from the
    #: method's config section
    replays_draws: Callable[[Mapping], bool] | None = None

    def model_class(self):
        module, _, attr = self.model.partition(":")
        return getattr(importlib.import_module(module), attr)

    def param_fields(self) -> list[str]:
        """The dataclass fields a method's config section sets (all but the per-job ones)."""
        return [f.name for f in dataclasses.fields(self.config) if f.name not in JOB_KEYS]

    def has(self, capability: str) -> bool:
        return capability in self.capabilities


REGISTRY: dict[str, Method] = {}


def register_method(entry: Method, replace: bool = False) -> Method:
    """Add a method; an external one registers from a module named in the config's ``plugins``."""
    if entry.name in REGISTRY and not replace:
        raise ConfigError(f"method {entry.name!r} is already registered ({REGISTRY[entry.name].model})")
    if not dataclasses.is_dataclass(entry.config):
        raise ConfigError(f"method {entry.name!r}: config must be a dataclass, got {entry.config!r}")
    REGISTRY[entry.name] = entry
    return entry


def method(name: str) -> Method:
    if name not in REGISTRY:
        raise ConfigError(
            f"unknown method {name!r}; registered: {', '.join(REGISTRY)}. An external method "
            "registers itself from a module listed in the config key plugins."
        )
    return REGISTRY[name]


def method_names() -> list[str]:
    """Registered methods in registration order (the order of tables and figures)."""
    return list(REGISTRY)


def method_label(name: str) -> str:
    """``"patchcore"`` -> its label; names not registered are returned unchanged."""
    entry = REGISTRY.get(str(name))
    return entry.label if entry else str(name)


def methods_with(capability: str, names) -> list[str]:
    """Those of ``names`` (in their order) whose entry has ``capability``."""
    return [m for m in names if m in REGISTRY and REGISTRY[m].has(capability)]


def bank_method(names) -> str | None:
    """The first of ``names`` with a memory bank (its global model's bank is drawn and counted)."""
    return (methods_with(MEMORY_BANK, names) or [None])[0]


def load_plugins(modules) -> None:
    """Import each module (it calls :func:`register_method`); a failing import names the module."""
    for mod in modules or ():
        try:
            importlib.import_module(mod)
        except ImportError as exc:
            raise ConfigError(
                f"config key plugins: module {mod!r} cannot be imported ({exc}); put it on "
                "PYTHONPATH or install it"
            ) from None


def model_params(cfg: Mapping[str, Any], name: str, cls: str | None = None) -> dict:
    """What a fitted model reads: the dataclass's fields from the method's config section,
    updated by ``class_overrides[cls][name]``."""
    section = cfg[name]
    params = {k: section[k] for k in method(name).param_fields() if k in section}
    if cls is not None:
        params.update(cfg.get("class_overrides", {}).get(cls, {}).get(name, {}))
    return params


def replays_draws(cfg: Mapping[str, Any], name: str) -> bool:
    """Whether method ``name``'s fits replay the study's draws (they then get ``draw_order``)."""
    entry = method(name)
    return bool(entry.replays_draws and entry.replays_draws(cfg[name]))


def predict_options(cfg: Mapping[str, Any], name: str, unified: bool) -> dict:
    """The predict keywords of a method for a per-class (``unified=False``) or global model."""
    section = cfg[name]
    return {kw: section[keys[1] if unified else keys[0]] for kw, keys in method(name).predict_options.items()}


register_method(Method(
    name="patchcore",
    label="PatchCore",
    config=PatchCoreConfig,
    model="adloc.models.patchcore:PatchCore",
    predict_options={"query_images": ("query_images", "query_images_global")},
    capabilities=frozenset({MEMORY_BANK}),
    setup=patchcore_setup,
    protocol=patchcore_protocol,
    protocol_notes=patchcore_notes,
    replays_draws=lambda section: section.get("coreset_draws") == "study",
))
register_method(Method(
    name="padim",
    label="PaDiM",
    config=PadimConfig,
    model="adloc.models.padim:Padim",
    setup=padim_setup,
))
register_method(Method(
    name="spade",
    label="SPADE",
    config=SpadeConfig,
    model="adloc.models.spade:Spade",
    predict_options={"query_images": ("query_images", "query_images_global")},
    capabilities=frozenset({RETRIEVES_IMAGES}),
    setup=spade_setup,
))
