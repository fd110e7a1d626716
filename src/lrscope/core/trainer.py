"""The one seam between lrscope and a training framework: the Trainer protocol."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Trainer(Protocol):
    """What the engine needs from a model + optimizer + data.

    ``run`` takes a chunk of steps so that a fast adapter syncs device->host once per chunk.
    ``snapshot`` returns a host-side copy of everything a step changes (weights, optimizer
    slots and step counter, BatchNorm statistics, RNG state, loss scaler, data position);
    ``restore`` is its exact (bitwise) inverse. An adapter may also offer ``evaluate() ->
    float`` (held-out loss on a fixed small subset).
    """

    def run(self, lrs: np.ndarray) -> np.ndarray:
        """Take ``len(lrs)`` optimizer steps, step ``i`` at ``lrs[i]``; return the per-step
        training losses, float64, shape ``(len(lrs),)``. NaN/inf are allowed."""
        ...

    def snapshot(self) -> object:
        """A host-side copy of all the state a step changes."""
        ...

    def restore(self, state: object) -> None:
        """Put back exactly the state of a :meth:`snapshot`."""
        ...
