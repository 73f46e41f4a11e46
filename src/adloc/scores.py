"""The scores file (rules score / score_global): one model's image scores on one class's splits.

Format: an uncompressed ``.npz`` (written atomically by :func:`adloc.io.save_npz`) holding, in
this order, ``provenance`` (a JSON string: the model's provenance plus ``score_device``), then
per split scored (``val``, ``test``, and ``train`` where the run asks for training normals)
``<split>_scores`` float32 (N,), ``<split>_paths`` str (N,) and ``<split>_labels`` int8 (N,),
and after the test split's arrays ``test_maps`` float32 (N, S, S). :func:`write_scores` is
the one writer, :func:`read_scores` the reader (a missing or corrupt file is one line naming it).

Torch-free: evaluation rules read scores without torch. A model's results on a class's
splits come from :func:`adloc.pipeline.score_splits`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .io import json_text, load_npz, save_npz

#: what a scores file is called in messages
WHAT = "scores file"


@dataclass
class SplitScores:
    """One split's results: image scores, relative paths, labels, and (test only) maps."""

    scores: np.ndarray  # float32 (N,)
    paths: np.ndarray  # str (N,)
    labels: np.ndarray  # int8 (N,)
    maps: np.ndarray | None = None  # float32 (N, S, S)


def score_arrays(provenance: Mapping[str, Any], results: Mapping[str, SplitScores]) -> dict[str, np.ndarray]:
    """The file's arrays, in the file's order (see the module docstring)."""
    arrays = {"provenance": np.array(json_text(dict(provenance), indent=None))}
    for split, r in results.items():
        arrays[f"{split}_scores"] = np.asarray(r.scores, dtype=np.float32)
        arrays[f"{split}_paths"] = np.asarray(r.paths, dtype=str)
        arrays[f"{split}_labels"] = np.asarray(r.labels)
        if split == "test":
            arrays["test_maps"] = np.asarray(r.maps, dtype=np.float32)
    return arrays


def write_scores(path, provenance: Mapping[str, Any], results: Mapping[str, SplitScores]) -> None:
    """Atomically write a scores file from per-split results (``{split: SplitScores}``)."""
    save_npz(path, **score_arrays(provenance, results))


def read_scores(path, what: str = WHAT) -> dict[str, np.ndarray]:
    """Every array of a scores file; a missing or corrupt file raises one line naming it
    (``what``: how the message calls it, e.g. "per-class scores")."""
    return load_npz(path, what=what)
