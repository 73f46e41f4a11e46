"""Where extracted maps go, and how they travel on CUDA: pinned, double-buffered host staging.

:class:`ResultBuffer` collects per-batch maps into the result tensors (preallocated when the
image count is known). :class:`PinnedStaging` is the CUDA transport of
:class:`adloc.features.FeatureExtractor`: reusable pinned host buffers, allocated once per batch
shape and double-buffered. Batch i's uint8 images are copied into an input slot and sent with a
non-blocking copy; its maps come back with non-blocking copies into an output slot, followed by a
CUDA event; only then does the host wait for batch i-1's event and copy its slot into the
(pageable, preallocated) result tensors, so the device computes batch i while the host copies
batch i-1. Nothing big is ever pinned per call (pinning costs about as much as copying). The
forward itself and its values do not depend on the transport.
"""

from __future__ import annotations

from typing import Callable, Iterator, Mapping, Sequence

import torch

from .errors import AdlocError


class ResultBuffer:
    """Where extracted maps go: preallocated ``(n, ...)`` tensors when n is known, else a list of
    per-batch tensors concatenated at the end."""

    def __init__(self, layers: Sequence[str], n: int | None, dtype: torch.dtype) -> None:
        self.n, self.dtype, self.pos = n, dtype, 0
        self.out: dict[str, torch.Tensor] | None = None
        self.parts: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}

    def take(self, shapes: Mapping[str, torch.Size], b: int) -> dict[str, torch.Tensor]:
        """Destination views for the next ``b`` images (``shapes``: per-image map shapes)."""
        if self.n is None:
            dest = {k: torch.empty((b, *s), dtype=self.dtype) for k, s in shapes.items()}
            for k, v in dest.items():
                self.parts[k].append(v)
        else:
            if self.out is None:
                self.out = {k: torch.empty((self.n, *s), dtype=self.dtype) for k, s in shapes.items()}
            dest = {k: v[self.pos : self.pos + b] for k, v in self.out.items()}
        self.pos += b
        return dest

    def result(self) -> dict[str, torch.Tensor]:
        if self.pos == 0:
            raise AdlocError("no images to extract features from")
        if self.out is not None:
            return self.out
        return {k: torch.cat(v) for k, v in self.parts.items()}


def pinned_empty(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised page-locked host tensor."""
    return torch.empty(shape, dtype=dtype, pin_memory=True)


class PinnedSlots:
    """Two reusable pinned host buffers of ``capacity`` rows each, plus one CUDA event per slot."""

    def __init__(self, shapes: Mapping[str, tuple[int, ...]], dtype: torch.dtype, capacity: int) -> None:
        self.key = (tuple((k, tuple(s)) for k, s in shapes.items()), dtype)
        self.capacity = capacity
        self.bufs = [{k: pinned_empty((capacity, *s), dtype) for k, s in shapes.items()} for _ in range(2)]
        self.events = [torch.cuda.Event(), torch.cuda.Event()]

    def fits(self, shapes: Mapping[str, tuple[int, ...]], dtype: torch.dtype, b: int) -> bool:
        return self.key == (tuple((k, tuple(s)) for k, s in shapes.items()), dtype) and b <= self.capacity


class PinnedStaging:
    """The double-buffered CUDA loop (module docstring) with its input and output slots, kept
    between calls and reallocated only when a batch no longer fits."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.in_slots: PinnedSlots | None = None
        self.out_slots: PinnedSlots | None = None

    def stage_input(self, batch: torch.Tensor, slot: int) -> torch.Tensor:
        """``batch`` on the device; a pageable CPU batch goes through pinned input slot ``slot``."""
        if batch.device.type != "cpu" or batch.is_pinned():
            return batch.to(self.device, non_blocking=True)
        b, shape = batch.shape[0], {"x": tuple(batch.shape[1:])}
        if self.in_slots is None or not self.in_slots.fits(shape, batch.dtype, b):
            self.in_slots = PinnedSlots(shape, batch.dtype, b)
        slots = self.in_slots
        slots.events[slot].synchronize()  # the slot's previous host->device copy is done
        buf = slots.bufs[slot]["x"][:b]
        buf.copy_(batch)
        x = buf.to(self.device, non_blocking=True)
        slots.events[slot].record(torch.cuda.current_stream(self.device))
        return x

    def run(
        self,
        forward: Callable[[torch.Tensor], Mapping[str, torch.Tensor]],
        batches: Iterator[torch.Tensor],
        result: ResultBuffer,
        dt: torch.dtype,
    ) -> None:
        """``forward`` (device batch -> maps of dtype ``dt`` on the device) over ``batches`` into
        ``result``: batch i computed while batch i-1 is copied out."""
        pending = None  # (event, staged views, destination views) of the previous batch
        for i, batch in enumerate(batches):
            slot = i % 2
            feats = forward(self.stage_input(batch, slot))
            b = batch.shape[0]
            shapes = {k: tuple(v.shape[1:]) for k, v in feats.items()}
            if self.out_slots is None or not self.out_slots.fits(shapes, dt, b):
                if pending is not None:  # the previous batch still sits in the old buffers
                    self._finish(*pending)
                    pending = None
                self.out_slots = PinnedSlots(shapes, dt, b)
            slots = self.out_slots
            staged = {k: slots.bufs[slot][k][:b] for k in feats}
            for k, v in feats.items():
                staged[k].copy_(v, non_blocking=True)
            slots.events[slot].record(torch.cuda.current_stream(self.device))
            dest = result.take(shapes, b)
            if pending is not None:
                self._finish(*pending)
            pending = (slots.events[slot], staged, dest)
        if pending is not None:
            self._finish(*pending)

    @staticmethod
    def _finish(event: torch.cuda.Event, staged: Mapping[str, torch.Tensor], dest: Mapping[str, torch.Tensor]) -> None:
        event.synchronize()
        for k, v in staged.items():
            dest[k].copy_(v)
