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
    float`` (held-out loss on a fixed small subset), and ``run_chunks(lrs, chunk, on_chunk)``:
    the steps of ``run`` over all of ``lrs``, handing each chunk's losses to ``on_chunk`` (a
    list of Python floats, one per step) and stopping after the chunk for which it returns
    True. The range test uses it when present: the trainer keeps its loop between chunks,
    which spares a small model the per-chunk round trips through ``run`` (see
    :meth:`lrscope.adapters.torch.TorchTrainer.run_chunks`). A trainer that also sets
    ``holds_quiet_chunks = True`` is called ``run_chunks(lrs, chunk, on_chunk, quiet)`` when
    nothing is evaluated between chunks, and may hand several whole chunks over in one call
    while their losses stay inside the bound ``quiet`` gives
    (:class:`lrscope.core.rangetest.QuietBound`); the recorded curve is the same.
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


#: The end of the one-line error for ``eval_every`` on a trainer without ``evaluate()``: how
#: each adapter gets one (an adapter has it only when it was given held-out data).
NEEDS_EVALUATE = (
    "needs a trainer with an evaluate() method: lrscope.torch.trainer(..., val_loader=...), "
    "lrscope.keras.trainer(..., validation_data=...), lrscope.jax.trainer(..., "
    "eval_batch=...) or lrscope.FunctionTrainer(..., evaluate=...)"
)
