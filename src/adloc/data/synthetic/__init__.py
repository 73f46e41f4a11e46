"""Embedded dataset: a deterministic generator that writes a real MVTec-layout folder.

Built from photographs shipped inside scikit-image's wheel (no download; see ``SOURCES``)
plus procedural variation, so the workflow runs offline on a laptop with realistic-looking
images. Three classes mirror the study's three MVTec classes (``STUDY_CLASSES``, the default):

========================  ==========  =========  ================================================
class                     kind        analogue   look
========================  ==========  =========  ================================================
``synth_nut``             object      hazelnut   a brown, streaked nut with a rough cap on a dark
                                                 background; random position and rotation
``synth_carpet``          texture     carpet     a warm woven-looking pile (crops of the
                                                 ``gravel`` photo), rotated, flipped, re-lit
``synth_zipper``          structure   zipper     grayscale (single-channel PNG, as MVTec's
                                                 zipper): a vertical band of interlocking teeth
                                                 between two fabric tapes
========================  ==========  =========  ================================================

Twelve more (``CLASS_TABLE``) mirror the other MVTec AD classes, so that a 15-class run needs no
download: ``synth_<name>`` for bottle, cable, capsule, metal_nut, pill, screw, toothbrush and
transistor (objects: the nut's renderer with another ``OBJECT_STYLES`` entry: size, elongation,
colours, surface photo, a second colour at one end, background) and grid, leather, tile and wood
(textures: the carpet's renderer with another ``TEXTURE_STYLES`` entry: photos, scale, weave,
tint). They look only loosely like their analogues; their counts with ``counts: mvtec`` are
the analogue's. A style adds no random draws, so the three original classes are byte-identical
to before the styles existed.

Defect types (4 per class; anomalies are assigned round-robin over them):

* object: ``crack`` (thin dark curve), ``cut`` (pale exposed kernel), ``hole`` (dark pit with
  a rim), ``print`` (ink stamp of text from the ``page`` photo).
* texture: ``color`` (dyed blob), ``hole`` (dark gap in the pile), ``metal_contamination``
  (a piece of the ``coins`` photo), ``thread`` (a stray coloured thread).
* structure: ``broken_teeth`` (teeth missing), ``fabric_border`` (frayed tape next to the
  teeth), ``rough`` (pitted tooth surface), ``squeezed_teeth`` (teeth pushed sideways).

Masks are exact: the written defective image differs from its (unwritten) good twin on
exactly the mask's pixels, each of them by at least ``MIN_DELTA`` grey levels in some channel,
and on no pixel outside the mask (:func:`render_pair` returns the twin for tests). Defects
cover roughly 0.3-5 % of the image.

Determinism: every image has its own ``numpy.random.Generator`` seeded by
``(class_seed, group, index)`` with ``class_seed`` derived from ``(seed, class name)``, so the
same seed, counts and size give byte-identical PNGs, generating one class never changes another,
and raising a count keeps the earlier images unchanged. Geometry is expressed in units of the
image side, so ``image_size`` changes resolution, not content.

CLI: ``python -m adloc.data.synthetic --root DIR [--classes ...] [--image-size 256] [--seed 0]
[--mvtec-counts] [--workers N]``.

Modules: :mod:`.counts` (classes, kinds, defect types, counts, seeds), :mod:`.primitives`
(source photos, shapes, lighting, exact masks), the renderers :mod:`.objects`, :mod:`.textures`,
:mod:`.structures` and :mod:`.render` (:func:`render_pair`), :mod:`.writer` (MVTec-layout
folders) and :mod:`.cli`.
"""

from importlib import import_module

from .counts import (
    CLASS_TABLE,
    DEFAULT_COUNTS,
    DEFAULT_STYLE,
    DEFECTS,
    EMBEDDED_CLASSES,
    KIND_ANALOGUE,
    KINDS,
    MVTEC_COUNTS,
    STUDY_CLASSES,
    analogue_of,
    class_seed,
    kind_of,
    mvtec_counts,
    resolve_counts,
    style_of,
)

# the renderers import scipy and PIL: loaded on first use, so that the class table (read by
# adloc.config) stays cheap to import
_LAZY = {
    "MIN_DELTA": "primitives",
    "SOURCES": "primitives",
    "render_pair": "render",
    "GENERATOR_VERSION": "writer",
    "generate_class": "writer",
    "generate_dataset": "writer",
    "main": "cli",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CLASS_TABLE",
    "DEFAULT_COUNTS",
    "DEFAULT_STYLE",
    "DEFECTS",
    "EMBEDDED_CLASSES",
    "GENERATOR_VERSION",
    "KIND_ANALOGUE",
    "KINDS",
    "MIN_DELTA",
    "MVTEC_COUNTS",
    "SOURCES",
    "STUDY_CLASSES",
    "analogue_of",
    "class_seed",
    "generate_class",
    "generate_dataset",
    "kind_of",
    "main",
    "mvtec_counts",
    "render_pair",
    "resolve_counts",
    "style_of",
]
