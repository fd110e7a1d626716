"""The generic adapter: any training loop, given as plain callables.

Use it for custom loops (a TF ``GradientTape`` step, a hand-written NumPy update, a model
lrscope has no adapter for): ``step(lr) -> loss`` takes one optimizer step at ``lr`` and
returns the loss of that step; ``snapshot()`` returns a copy of everything a step changes;
``restore(state)`` puts it back exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from lrscope.core.rangetest import range_test
from lrscope.core.result import RangeTestResult
from lrscope.errors import TrainerError, wrong_call


class FunctionTrainer:
    """A :class:`~lrscope.Trainer` built from ``step``, ``snapshot`` and ``restore`` callables.

    >>> state = {"w": 0.0}
    >>> def step(lr):
    ...     loss = (state["w"] - 3.0) ** 2
    ...     state["w"] -= lr * 2 * (state["w"] - 3.0)
    ...     return loss
    >>> trainer = FunctionTrainer(step, lambda: dict(state), lambda s: state.update(s))
    >>> trainer.run(np.array([0.1, 0.1]))
    array([9.  , 5.76])
    """

    def __init__(
        self,
        step: Callable[[float], Any],
        snapshot: Callable[[], Any],
        restore: Callable[[Any], None],
        evaluate: Callable[[], float] | None = None,
    ) -> None:
        for name, fn in (("step", step), ("snapshot", snapshot), ("restore", restore)):
            if not callable(fn):
                raise TypeError(f"Argument `{name}` must be callable. Received: {name}={fn!r}")
        if evaluate is not None and not callable(evaluate):
            raise TypeError(
                f"Argument `evaluate` must be callable or None. Received: evaluate={evaluate!r}"
            )
        # A step that takes no LR (or a restore without the state) would fail only inside the
        # test, with Python's own "takes 0 positional arguments" error.
        for name, fn, count, form in (
            ("step", step, 1, "step(lr) -> loss"),
            ("snapshot", snapshot, 0, "snapshot() -> state"),
            ("restore", restore, 1, "restore(state)"),
        ):
            error = wrong_call(name, fn, count, f"must be callable as {form}")
            if error is not None:
                raise error
        self._step = step
        self.snapshot = snapshot
        self.restore = restore
        if evaluate is not None:
            self.evaluate = evaluate

    def run(self, lrs: np.ndarray) -> np.ndarray:
        out = np.empty(len(lrs), dtype=np.float64)
        for i, lr in enumerate(lrs):
            out[i] = _scalar(self._step(float(lr)))
        return out


def _scalar(loss: Any) -> float:
    """Accept Python/NumPy scalars and 0-d or 1-element tensors (anything ``float()`` takes)."""
    shape = getattr(loss, "shape", ())
    if shape not in ((), (1,)) and int(np.prod(shape)) != 1:
        raise TrainerError(f"step(lr) must return a scalar loss; got shape {tuple(shape)}")
    try:
        return float(loss.item() if hasattr(loss, "item") else loss)
    except (TypeError, ValueError) as exc:
        raise TrainerError(
            f"step(lr) must return a scalar loss; got {type(loss).__name__}"
        ) from exc


def find_lr(
    step: Callable[[float], Any],
    *,
    snapshot: Callable[[], Any],
    restore: Callable[[Any], None],
    evaluate: Callable[[], float] | None = None,
    **options: Any,
) -> RangeTestResult:
    """Range-test any training loop given as callables; state is restored after.

    ``options`` are those of :func:`lrscope.range_test` (``start_lr``, ``end_lr``,
    ``steps``, ``mode``, ...).
    """
    return range_test(FunctionTrainer(step, snapshot, restore, evaluate), **options)
