"""The study's coreset draws, replayed in the study's order (``patchcore.coreset_draws: study``).

The study drew each PatchCore model's projection matrix and coreset start point from the
global random streams after one ``set_seed(42)`` (python, numpy, torch), so a model's draws
depend on everything drawn before it (../shared/study_reference.md, "The study's random
draws"). For each model it fitted, in order:

1. ``torchvision.models.resnet50()``: the random initialisation (before the weights load);
2. the dummy forward's input ``torch.randn(1, 3, 224, 224)``;
3. the train DataLoader's base seed: one int64 ``random_()`` draw from the torch stream;
4. the projection ``torch.randn(D, 128) / sqrt(128)`` (D = 1536 for ResNet-50 layer2+3);
5. the start point ``np.random.randint(N)`` from numpy's global stream (N training patches).

Notebook 04 seeds once and fits hazelnut, carpet and zipper in that order (per-class models);
notebook 10 seeds once and fits the global model. :func:`study_draws` replays that sequence for
any ``[(model, N), ...]`` order without touching the caller's random state (the global streams
are saved and restored), so each per-class fit job can recompute its own draws from the training
set sizes of the models fitted before it.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..errors import ModelError


@dataclass(frozen=True)
class StudyDraw:
    """One model's draws: projection ``(D, proj_dim)`` float32 and the start point's index."""

    projection: torch.Tensor
    start: int
    position: int  # 0-based place of the model in the replayed order

    def record(self) -> dict:
        """What the model file records (provenance): start, position, projection's sha256."""
        digest = hashlib.sha256(self.projection.contiguous().numpy().tobytes()).hexdigest()
        return {"start": int(self.start), "position": int(self.position),
                "projection_sha256": digest, "projection_shape": list(self.projection.shape)}


def _model_preamble() -> None:
    """Steps 1-3: what each of the study's fits drew before its coreset."""
    import torchvision

    torchvision.models.resnet50()  # random initialisation
    torch.randn(1, 3, 224, 224)  # the dummy forward's input
    torch.empty((), dtype=torch.int64).random_()  # the DataLoader's base seed


def study_draws(order: Sequence[tuple[str, int]], dim: int, proj_dim: int = 128,
                seed: int = 42) -> dict[str, StudyDraw]:
    """The draws of every model in ``order`` (``[(name, N training patches), ...]``), replayed
    from ``set_seed(seed)`` as the study ran them; the caller's random state is unchanged."""
    if not order:
        raise ModelError("study draws: no model to replay")
    if dim < 1 or proj_dim < 1:
        raise ModelError(f"study draws: projection {dim} x {proj_dim} is empty")
    py_state, np_state = random.getstate(), np.random.get_state()
    out: dict[str, StudyDraw] = {}
    try:
        with torch.random.fork_rng(devices=[]):
            random.seed(seed)
            np.random.seed(seed)
            torch.manual_seed(seed)
            for i, (name, n) in enumerate(order):
                if int(n) < 1:
                    raise ModelError(f"study draws: model {name!r} has {n} training patches")
                _model_preamble()
                proj = torch.randn(int(dim), int(proj_dim)) / math.sqrt(int(proj_dim))
                start = int(np.random.randint(int(n)))
                out[str(name)] = StudyDraw(proj, start, i)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return out
