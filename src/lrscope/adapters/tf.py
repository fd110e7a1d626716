"""TensorFlow custom training loops: a range test on a ``tf.function`` step that reads its
learning rate from a ``tf.Variable``.

The course writes its loop by hand (``tf.Variable`` w and b, a ``GradientTape``, and
``w.assign_sub(lr * dw)``). Passing the LR as a Python float would bake it into the traced
graph (one retrace per LR value: 100 traces for a 100-step test); passing a ``tf.Variable``
traces once and the test only assigns it. :func:`trainer` builds the
:class:`~lrscope.adapters.stepfn.FunctionTrainer` for such a step: it owns (or is given) the
LR variable, snapshots the given ``tf.Variable`` objects (and an optimizer's variables) on
the host, restores them bit for bit, and reads the losses of a chunk with one device->host
copy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lrscope.adapters.stepfn import FunctionTrainer
from lrscope.core.rangetest import range_test
from lrscope.core.result import RangeTestResult
from lrscope.errors import invalid, require, wrong_call

__all__ = ["TFStepTrainer", "find_lr", "trainer"]


def _tf() -> Any:
    return require("tensorflow", "lrscope.tensorflow", "tensorflow")


class TFStepTrainer(FunctionTrainer):
    """A FunctionTrainer whose ``step(lr_variable)`` is called with the LR already assigned.

    ``run`` keeps the per-step loss tensors and converts them once per chunk, so a chunk costs
    one host sync, not one per step.
    """

    def __init__(
        self,
        step: Callable[[Any], Any],
        variables: Sequence[Any],
        learning_rate: Any,
        evaluate: Callable[[], float] | None = None,
    ) -> None:
        self.variables = list(variables)
        self.learning_rate = learning_rate
        super().__init__(step, self._snapshot, self._restore, evaluate)

    def _snapshot(self) -> list[np.ndarray]:
        return [np.array(v.numpy(), copy=True) for v in self.variables]

    def _restore(self, state: list[np.ndarray]) -> None:
        if len(state) != len(self.variables):
            raise invalid(
                "state",
                f"must hold {len(self.variables)} values (one per variable)",
                values=len(state),
            )
        for variable, value in zip(self.variables, state, strict=True):
            variable.assign(value)

    def run(self, lrs: np.ndarray) -> np.ndarray:
        tf = _tf()
        losses = []
        for lr in np.asarray(lrs, dtype=np.float64).tolist():
            self.learning_rate.assign(lr)
            loss = tf.convert_to_tensor(self._step(self.learning_rate))
            if loss.shape.num_elements() != 1:
                raise invalid(
                    "step", "must return a scalar loss", shape=tuple(loss.shape.as_list())
                )
            losses.append(tf.reshape(tf.cast(loss, tf.float64), []))
        if not losses:
            return np.zeros(0)
        return np.asarray(tf.stack(losses).numpy(), dtype=np.float64)


def trainer(
    step: Callable[[Any], Any],
    variables: Sequence[Any],
    *,
    learning_rate: Any = None,
    optimizer: Any = None,
    evaluate: Callable[[], float] | None = None,
) -> TFStepTrainer:
    """A Trainer for a custom TF step ``step(lr) -> loss``, ``lr`` being a ``tf.Variable``.

    ``variables``: every ``tf.Variable`` a step changes (weights, and any state of your own);
    one variable may be given alone.
    ``learning_rate``: your LR ``tf.Variable`` (default: a new float32 one, or the
    ``learning_rate`` variable of ``optimizer``). ``optimizer``: a Keras optimizer whose
    variables (iterations, momenta) are snapshot and restored too; build it before the test
    (``optimizer.build(variables)``) so its slots exist. The LR variable's own value is
    restored as well.
    """
    tf = _tf()
    if not callable(step):
        raise TypeError(f"Argument `step` must be callable. Received: step={step!r}")
    # The course's own step reads a Python float LR and takes no argument; called with the LR
    # variable it would fail inside the first step with tf.function's binding error.
    error = wrong_call(
        "step",
        step,
        1,
        "must take the learning rate as its one argument, step(lr) -> loss, and use it "
        "(e.g. w.assign_sub(lr * dw)): lr is a tf.Variable the test assigns before each "
        "step, so the step is traced once",
    )
    if error is not None:
        raise error
    if hasattr(variables, "assign"):  # one tf.Variable (iterating it would give its rows)
        variables = [variables]
    variables = list(variables)
    if not variables:
        raise invalid("variables", "must list the tf.Variable objects a step changes", variables=[])
    for v in variables:
        if not hasattr(v, "assign") or not hasattr(v, "numpy"):
            raise invalid("variables", "must contain tf.Variable objects", item=type(v).__name__)
    tracked = list(variables)
    if optimizer is not None:
        if not getattr(optimizer, "built", True):
            raise invalid(
                "optimizer",
                "must be built before the test (optimizer.build(variables)) so that its "
                "slots are in the snapshot",
                optimizer=type(optimizer).__name__,
            )
        tracked += [getattr(v, "value", v) for v in optimizer.variables]
        if learning_rate is None:
            learning_rate = getattr(optimizer, "_learning_rate", None)
            learning_rate = getattr(learning_rate, "value", learning_rate)
            if not hasattr(learning_rate, "assign"):
                raise invalid(
                    "optimizer",
                    "must have a float learning rate (a variable), not a schedule, or pass "
                    "`learning_rate`",
                    learning_rate=type(learning_rate).__name__,
                )
    if learning_rate is None:
        learning_rate = tf.Variable(0.0, dtype=tf.float32, trainable=False, name="lrscope_lr")
    elif not hasattr(learning_rate, "assign"):
        raise invalid(
            "learning_rate",
            "must be a tf.Variable (a Python float would retrace the step per LR)",
            learning_rate=learning_rate,
        )
    if not any(v is learning_rate for v in tracked):
        tracked.append(learning_rate)
    return TFStepTrainer(step, tracked, learning_rate, evaluate)


def find_lr(
    step: Callable[[Any], Any],
    variables: Sequence[Any],
    *,
    learning_rate: Any = None,
    optimizer: Any = None,
    evaluate: Callable[[], float] | None = None,
    **options: Any,
) -> RangeTestResult:
    """Range-test a custom TF step ``step(lr) -> loss`` (``lr`` a ``tf.Variable``); the
    ``variables`` (and ``optimizer`` state) are restored exactly after.

    ``options`` are those of :func:`lrscope.range_test`.
    """
    metadata = {"framework": "tensorflow", "loop": "custom", **dict(options.pop("metadata", {}))}
    return range_test(
        trainer(
            step, variables, learning_rate=learning_rate, optimizer=optimizer, evaluate=evaluate
        ),
        metadata=metadata,
        **options,
    )
