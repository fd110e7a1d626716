"""Keras 3 adapter: an LR range test on a compiled model, on the TensorFlow, JAX or torch backend.

``find_lr(model, x, y, ...)`` takes what ``model.fit`` takes and runs the test through the
:class:`~lrscope.Trainer` protocol with its own step loop around the model's ``train_step``
(so ``train_step`` overrides are honoured), never through ``fit``:

- the loss of each step is the loss of that batch (metrics are reset before every step), not
  the running mean of the epoch that ``logs["loss"]`` holds in a ``fit`` callback;
- a chunk of steps is one compiled call where the backend allows it: on JAX a jitted,
  state-donating ``lax.scan`` over the stateless ``train_step`` (the LR is written into the
  optimizer-variable slot of the state; a ``fit`` callback would force a full state sync
  every batch), on TensorFlow a ``tf.function`` graph loop that assigns the LR and resets the
  metrics per step; on torch the model's own (optionally ``torch.compile``d) train function
  runs per step. Losses are read back once per chunk;
- ``steps_per_execution`` does not matter: the loop always takes one batch per step.

The state (``model.variables`` — weights, BatchNorm statistics, dropout seed-generator state —
``optimizer.variables`` — iterations, learning rate, momenta — metric variables, the torch
RNG on the torch backend, and the data position) is snapshot on the host and restored bit for
bit, whatever ends the test. An optimizer built with a ``LearningRateSchedule`` gets a
temporary LR variable for the steps of the test; the same schedule object is put back after.

:class:`LRRangeTest` is a ``fit`` callback for users who want to drive ``fit`` themselves.
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from lrscope.core.ramp import lr_ramp
from lrscope.core.rangetest import auto_chunk, range_test
from lrscope.core.result import RangeTestResult
from lrscope.core.smoothing import smooth_loss
from lrscope.core.stopping import check_stop
from lrscope.errors import TrainerError, invalid, require

__all__ = ["KerasTrainer", "LRRangeTest", "find_lr", "trainer"]  # noqa: F822 (LRRangeTest: lazy)


def _keras() -> Any:
    return require("keras", "lrscope.keras", "keras")


def _backend() -> str:
    return str(_keras().backend.backend())


# ---------------------------------------------------------------------------------------------
# checks and small helpers


def _check_model(model: Any) -> None:
    keras = _keras()
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"Argument `model` must be a keras.Model. Received: model={type(model).__name__}"
        )
    if getattr(model, "optimizer", None) is None or not getattr(model, "compiled", False):
        raise invalid(
            "model",
            "must be compiled with an optimizer and a loss before a range test "
            "(model.compile(optimizer=..., loss=...))",
            model=getattr(model, "name", type(model).__name__),
        )


def _inner_optimizer(optimizer: Any) -> Any:
    """The optimizer that owns the learning rate (a LossScaleOptimizer wraps another)."""
    return getattr(optimizer, "inner_optimizer", optimizer)


def _attach_lr(optimizer: Any, variable: Any) -> None:
    """Put an LR variable in place of a schedule and track it exactly once: on JAX only a
    tracked variable is part of the state the compiled step reads (an untracked one would be
    frozen into the trace)."""
    optimizer._learning_rate = variable  # the optimizer's __setattr__ may track it already
    if not any(v is variable for v in optimizer.variables):
        optimizer._track_variable(variable)


def _detach_lr(optimizer: Any, schedule: Any) -> None:
    """Untrack the temporary LR variable and put the user's schedule object back."""
    variable = optimizer._learning_rate
    while any(v is variable for v in optimizer.variables):
        optimizer._untrack_variable(variable)
    optimizer._learning_rate = schedule


def _is_array_like(value: Any) -> bool:
    return (
        hasattr(value, "shape") and hasattr(value, "dtype") and not hasattr(value, "element_spec")
    )


def _all_arrays(*structures: Any) -> bool:
    keras = _keras()
    leaves = [leaf for s in structures if s is not None for leaf in keras.tree.flatten(s)]
    return bool(leaves) and all(_is_array_like(leaf) for leaf in leaves)


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # torch tensors (maybe on an accelerator)
        value = value.detach().cpu()
    return np.asarray(value)


def _host_copy(variable: Any) -> np.ndarray:
    return np.array(_keras().ops.convert_to_numpy(variable.value), copy=True)


class _ArrayBatches:
    """Deterministic batches of in-memory arrays: batch ``k`` is a pure function of ``k``.

    A seeded permutation per epoch (no global RNG touched), so a rewind is just a position.
    """

    def __init__(
        self,
        x: Any,
        y: Any,
        sample_weight: Any,
        batch_size: int,
        shuffle: bool,
        seed: int,
    ) -> None:
        keras = _keras()
        self._data = keras.tree.map_structure(
            lambda a: None if a is None else _to_numpy(a), (x, y, sample_weight)
        )
        sizes = {
            leaf.shape[0] if leaf.ndim else -1
            for leaf in keras.tree.flatten(self._data)
            if leaf is not None
        }
        if len(sizes) != 1:
            raise invalid(
                "x",
                "and y (and sample_weight) must have the same number of samples",
                sizes=sorted(sizes),
            )
        self.n = sizes.pop()
        if self.n <= 0:
            raise invalid("x", "must hold at least one sample", samples=self.n)
        self.batch_size = batch_size
        self.per_epoch = math.ceil(self.n / batch_size)
        self._shuffle = shuffle
        self._seed = seed
        self._epoch, self._order = -1, np.arange(self.n)

    def batch(self, position: int) -> tuple[Any, ...]:
        epoch, k = divmod(position, self.per_epoch)
        if epoch != self._epoch:
            self._epoch = epoch
            self._order = (
                np.random.default_rng([self._seed, epoch]).permutation(self.n)
                if self._shuffle
                else np.arange(self.n)
            )
        index = self._order[k * self.batch_size : (k + 1) * self.batch_size]
        keras = _keras()
        return keras.tree.map_structure(lambda a: a[index] if a is not None else None, self._data)


class _StreamBatches:
    """Batches of a dataset/generator/PyDataset/DataLoader through Keras's own data adapter.

    Batches are kept once drawn so that a restore can rewind the data position (replays and
    sweeps see the same batches); an epoch that ends starts the next one.
    """

    def __init__(self, x: Any, y: Any, sample_weight: Any, batch_size: int | None) -> None:
        from keras.src.trainers.data_adapters import get_data_adapter

        self._adapter = get_data_adapter(
            x, y, sample_weight=sample_weight, batch_size=batch_size, shuffle=False
        )
        self._cache: list[Any] = []
        self._iterator: Iterator[Any] | None = None
        self._empty_epochs = 0
        # A generator or iterator is used once: Keras's adapter would replay only the batches
        # it peeked at, so starting "another epoch" would silently repeat the first batch.
        self._one_shot = isinstance(x, Iterator)
        self._started = False

    def _new_iterator(self) -> Iterator[Any]:
        backend = _backend()
        if backend == "tensorflow":
            return iter(self._adapter.get_tf_dataset())
        if backend == "jax":
            return iter(self._adapter.get_jax_iterator())
        if backend == "torch":
            return iter(self._adapter.get_torch_dataloader())
        return iter(self._adapter.get_numpy_iterator())

    def batch(self, position: int) -> Any:
        while position >= len(self._cache):
            if self._iterator is None:
                if self._started and self._one_shot:
                    raise invalid(
                        "x",
                        f"ran out after {len(self._cache)} batch(es): a generator is used "
                        "once; pass fewer `steps`, or a repeatable dataset (tf.data, "
                        "PyDataset, DataLoader) or arrays",
                        x=type(self._adapter).__name__,
                    )
                self._iterator = self._new_iterator()
                self._started = True
            try:
                self._cache.append(next(self._iterator))
                self._empty_epochs = 0
            except StopIteration:
                self._iterator = None
                self._empty_epochs += 1
                if self._empty_epochs > 1 or not self._cache:
                    raise invalid(
                        "x",
                        f"must yield batches; it yielded {len(self._cache)} and then none "
                        "in a new epoch",
                        x=type(self._adapter).__name__,
                    ) from None
        return self._cache[position]


# ---------------------------------------------------------------------------------------------
# compiled steps (one per model, cached: tracing/compiling is most of a short test's cost)

_STEP_CACHE: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], Callable[..., Any]]] = (
    weakref.WeakKeyDictionary()
)
_SCHEDULE_LR: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _loss_of(logs: Any) -> Any:
    if not isinstance(logs, Mapping) or "loss" not in logs:
        raise TrainerError(
            "model.train_step must return a dict of logs with a 'loss' entry; got "
            f"{sorted(logs) if isinstance(logs, Mapping) else type(logs).__name__}"
        )
    return logs["loss"]


def _tensorflow_step(model: Any, lr_variable: Any) -> Callable[..., Any]:
    """``step(lrs, batches) -> losses`` for a whole chunk in one ``tf.function`` (XLA when the
    model was compiled with it): a graph loop that, per step, assigns the LR, resets the
    metrics and calls the model's own ``train_step`` on batch ``i`` of the stacked chunk. One
    call per chunk instead of one per step removes the per-call Python overhead that would
    otherwise make the test slower than ``fit``."""
    import tensorflow as tf

    def one(lr: Any, data: Any) -> Any:
        lr_variable.assign(tf.cast(lr, lr_variable.dtype))
        model.reset_metrics()
        return tf.cast(tf.reshape(_loss_of(model.train_step(data)), []), tf.float32)

    def chunk(lrs: Any, batches: Any) -> Any:
        count = tf.shape(lrs)[0]

        def body(i: Any, losses: Any) -> Any:
            data = tf.nest.map_structure(lambda a: None if a is None else a[i], batches)
            return i + 1, losses.write(i, one(lrs[i], data))

        _, losses = tf.while_loop(
            lambda i, _: i < count,
            body,
            (tf.constant(0), tf.TensorArray(tf.float32, size=count)),
            parallel_iterations=1,  # steps are sequential: each reads the last one's weights
        )
        return losses.stack()

    if model.run_eagerly:
        return lambda lrs, batches: tf.stack(
            [
                one(lr, tf.nest.map_structure(lambda a, i=i: None if a is None else a[i], batches))
                for i, lr in enumerate(tf.unstack(lrs))
            ]
        )
    return tf.function(
        chunk, reduce_retracing=True, jit_compile=bool(model.jit_compile), autograph=False
    )


def _stack_batches(batches: list[Any], stack: Callable[[list[Any]], Any]) -> Any:
    """The batches of a chunk as one structure with a leading step axis; None when they
    cannot be stacked (sparse/ragged leaves, or shapes that differ, e.g. a short last batch).
    ``stack`` stacks non-NumPy leaves (framework tensors)."""
    tree = _keras().tree
    structures = [tree.flatten(b) for b in batches]
    if any(len(leaves) != len(structures[0]) for leaves in structures):
        return None
    stacked = []
    for leaves in zip(*structures, strict=True):
        if leaves[0] is None:
            if any(leaf is not None for leaf in leaves):
                return None
            stacked.append(None)
            continue
        if not all(_is_dense(leaf) for leaf in leaves):
            return None
        if len({tuple(leaf.shape) for leaf in leaves}) != 1:
            return None
        if all(isinstance(leaf, np.ndarray) for leaf in leaves):
            stacked.append(np.stack(leaves))
        else:
            stacked.append(stack(list(leaves)))
    return tree.pack_sequence_as(batches[0], stacked)


def _is_dense(leaf: Any) -> bool:
    name = type(leaf).__name__
    return _is_array_like(leaf) and "Sparse" not in name and "Ragged" not in name


def _jax_step(model: Any, lr_variable: Any) -> _JaxSteps:
    """``step(state, lr, batch) -> (loss, state)`` around the model's stateless
    ``train_step``: the LR is written into the optimizer-variable slot of the state and the
    metrics are reset inside the jitted function, the state buffers are donated, and nothing
    is read back to the host until the chunk ends."""
    import jax

    lr_index = next(i for i, v in enumerate(model.optimizer.variables) if v is lr_variable)
    model.reset_metrics()
    reset_values = [np.asarray(v.value) for v in model.metrics_variables]

    def step(state: Any, lr: Any, data: Any) -> Any:
        trainable, non_trainable, optimizer_vars, _ = state
        optimizer_vars = list(optimizer_vars)
        optimizer_vars[lr_index] = lr.astype(optimizer_vars[lr_index].dtype)
        metrics = [jax.numpy.asarray(v) for v in reset_values]
        logs, state = model.train_step((trainable, non_trainable, optimizer_vars, metrics), data)
        return _loss_of(logs), state

    def chunk(state: Any, lrs: Any, batches: Any) -> Any:
        def body(state: Any, inputs: Any) -> Any:
            loss, state = step(state, *inputs)
            return state, loss

        state, losses = jax.lax.scan(body, state, (lrs, batches))
        return losses, state

    if model.run_eagerly or not model.jit_compile:
        return _JaxSteps(step, None)
    return _JaxSteps(jax.jit(step, donate_argnums=0), jax.jit(chunk, donate_argnums=0))


class _JaxSteps:
    """A jitted single step (for chunks whose batches differ in shape) and a jitted
    ``lax.scan`` over a whole chunk (one dispatch per chunk)."""

    def __init__(self, one: Callable[..., Any], chunk: Callable[..., Any] | None) -> None:
        self.one, self.chunk = one, chunk

    def _cache_size(self) -> int:
        return sum(f._cache_size() for f in (self.one, self.chunk) if hasattr(f, "_cache_size"))


# ---------------------------------------------------------------------------------------------
# evaluate(): validation_data prepared once, the model's own test_step without model.evaluate's
# per-call setup (a data adapter, a tf.data pipeline or loader, callbacks: most of its cost on
# a small validation set)


def _metric_values(model: Any) -> list[np.ndarray]:
    return [_host_copy(v) for v in model.metrics_variables]


def _put_metric_values(model: Any, values: list[np.ndarray]) -> None:
    for variable, value in zip(model.metrics_variables, values, strict=True):
        variable.assign(value)


def _batch_signature(batch: Any) -> tuple[Any, ...]:
    return tuple(
        None if leaf is None else (tuple(leaf.shape), str(leaf.dtype))
        for leaf in _keras().tree.flatten(batch)
    )


def _runs_of_equal_batches(batches: list[Any]) -> list[list[Any]]:
    """Consecutive batches of equal shapes, grouped (all full batches, then the short one)."""
    runs: list[list[Any]] = []
    for batch in batches:
        if runs and _batch_signature(runs[-1][-1]) == _batch_signature(batch):
            runs[-1].append(batch)
        else:
            runs.append([batch])
    return runs


def _tensorflow_eval(model: Any) -> Callable[..., Any]:
    """``loss(runs, reset_values) -> float64 scalar`` in one graph call: the metric variables
    are saved and set to their reset values, the model's ``test_step`` runs over each run of
    stacked equal-shape batches in a graph loop, and the metric variables are put back; the
    loss of the last step is the running weighted mean that ``model.evaluate`` reports."""
    import tensorflow as tf

    def test_loop(batches: Any, loss: Any) -> Any:
        count = tf.shape(next(a for a in tf.nest.flatten(batches) if a is not None))[0]

        def body(i: Any, _: Any) -> Any:
            data = tf.nest.map_structure(lambda a: None if a is None else a[i], batches)
            step_loss = _loss_of(model.test_step(data))
            return i + 1, tf.cast(tf.reshape(step_loss, []), tf.float64)

        _, loss = tf.while_loop(
            lambda i, _: i < count,
            body,
            (tf.constant(0), loss),
            parallel_iterations=1,  # the metric variables accumulate in batch order
        )
        return loss

    def evaluate(runs: Any, reset_values: Any) -> Any:
        variables = model.metrics_variables
        saved = [tf.identity(v.value) for v in variables]  # automatic control dependencies
        for variable, value in zip(variables, reset_values, strict=True):  # keep this order
            variable.assign(value)
        loss = tf.constant(math.nan, tf.float64)
        for batches in runs:  # unrolled at trace time: one or two runs in the usual case
            loss = test_loop(batches, loss)
        with tf.control_dependencies([loss]):
            for variable, value in zip(variables, saved, strict=True):
                variable.assign(value)
            return tf.identity(loss)

    return tf.function(
        evaluate, reduce_retracing=True, jit_compile=bool(model.jit_compile), autograph=False
    )


def _jax_eval(model: Any) -> Callable[..., Any]:
    """``loss(trainable, non_trainable, metrics, runs) -> scalar``: the stateless ``test_step``
    scanned over each run of stacked equal-shape batches, in one jitted call; the metric state
    starts from the values it would have after ``reset_metrics`` and is dropped afterwards, so
    the model's variables are only read."""
    import jax

    def evaluate(trainable: Any, non_trainable: Any, metrics: Any, runs: Any) -> Any:
        state, loss = (trainable, non_trainable, metrics), None
        for stacked in runs:  # unrolled at trace time: one or two runs in the usual case

            def body(state: Any, data: Any) -> Any:
                logs, state = model.test_step(state, data)
                return state, _loss_of(logs)

            state, losses = jax.lax.scan(body, state, stacked)
            loss = losses[-1]
        return loss

    return jax.jit(evaluate)


class _Validation:
    """``validation_data`` converted once to the batches ``model.evaluate`` would feed (Keras's
    own data adapter, default batch size, no shuffling), evaluated with the model's own
    ``test_step`` and metric reduction (the loss tracker's mean weighted by batch size), so
    the value is the one ``model.evaluate(...)["loss"]`` returns: compiled loss, sample
    weights, ``add_loss``/regularization losses, ``test_step``/``compute_loss`` overrides."""

    def __init__(self, model: Any, backend: str, x: Any, y: Any, sample_weight: Any = None) -> None:
        try:  # Keras's own batching (private API): without it, only model.evaluate is exact
            from keras.src.trainers.data_adapters import get_data_adapter
        except ImportError as exc:
            raise _NotFast("this Keras has no keras.src.trainers.data_adapters") from exc

        self.model, self.backend = model, backend
        adapter = get_data_adapter(x, y, sample_weight=sample_weight, shuffle=False)
        if backend == "tensorflow":
            batches = list(adapter.get_tf_dataset())
        elif backend == "jax":
            batches = list(adapter.get_jax_iterator())
        else:  # on the model's device once, not per call
            convert = _keras().ops.convert_to_tensor
            batches = [
                _keras().tree.map_structure(lambda a: None if a is None else convert(a), b)
                for b in adapter.get_torch_dataloader()
            ]
        if not batches:
            raise invalid("validation_data", "must hold at least one sample", samples=0)
        self.batches: list[Any] = batches  # torch: kept per batch; else stacked, below
        self.runs: list[Any] = []
        if backend == "torch":
            return
        if backend == "tensorflow":
            import tensorflow as tf

            stack = tf.stack
        else:
            import jax.numpy as jnp

            stack = jnp.stack
        runs = [_stack_batches(run, stack) for run in _runs_of_equal_batches(batches)]
        if any(run is None for run in runs):
            raise _NotFast("batches that cannot be stacked")
        self.runs, self.batches = runs, []  # one copy of the validation set, not two

    def _unstacked(self) -> Iterator[Any]:
        """The batches one by one (the eager paths), sliced back out of the stacked runs."""
        tree = _keras().tree
        for stacked in self.runs:
            first = next(leaf for leaf in tree.flatten(stacked) if leaf is not None)
            for i in range(int(first.shape[0])):
                yield tree.map_structure(lambda a, i=i: None if a is None else a[i], stacked)

    def loss(self) -> float:
        model = self.model
        if self.backend == "jax" and not model.run_eagerly and model.jit_compile:
            return self._loss_jax()
        if self.backend == "tensorflow" and not model.run_eagerly:
            fn = _cached(model, "eval", _tensorflow_eval)
            return float(fn(self.runs, _reset_values(model)))
        saved = _metric_values(model)
        try:
            model.reset_metrics()
            if self.backend == "torch":
                return self._loss_torch()
            logs = None  # eager TensorFlow, JAX without jit: step by step, as evaluate does
            for batch in self._unstacked():
                logs = self._eager_step(batch)
            return float(np.asarray(_loss_of(logs)))
        finally:
            _put_metric_values(model, saved)

    def _eager_step(self, batch: Any) -> Any:
        model = self.model
        if self.backend != "jax":
            return model.test_step(batch)
        state = tuple(
            [v.value for v in group]
            for group in (
                model.trainable_variables,
                model.non_trainable_variables,
                model.metrics_variables,
            )
        )
        logs, (_, _, metrics) = model.test_step(state, batch)
        for variable, value in zip(model.metrics_variables, metrics, strict=True):
            variable.assign(value)
        return logs

    def _loss_torch(self) -> float:
        import torch
        from keras.src.backend.torch.trainer import TorchTrainer

        model = self.model
        model.make_test_function()
        was_training = model.training
        model.eval()  # as evaluate does (it leaves it so; here the mode is put back)
        try:
            if (
                type(model).test_step is not TorchTrainer.test_step
                or type(model).compute_metrics is not TorchTrainer.compute_metrics
                or model._should_torch_compile()
            ):  # an override (or torch.compile): the model's own test function, per batch
                logs = None
                for batch in self.batches:
                    logs = model.test_function([batch])
                return float(_to_numpy(_loss_of(logs)))
            # Keras's test_step minus compute_metrics (the other metrics cost a third of an
            # eager step and are not reported): the same forward pass, loss and loss-tracker
            # update (mean weighted by batch size), hence the same value.
            from keras.src.trainers.data_adapters import data_adapter_utils

            tree = _keras().tree
            with torch.no_grad():
                for batch in self.batches:
                    x, y, weight = data_adapter_utils.unpack_x_y_sample_weight(batch)
                    kwargs = {"training": False} if model._call_has_training_arg else {}
                    y_pred = model(x, **kwargs)
                    loss = model._compute_loss(
                        x=x, y=y, y_pred=y_pred, sample_weight=weight, training=False
                    )
                    rows = next(leaf for leaf in tree.flatten(x) if leaf is not None).shape[0]
                    model._loss_tracker.update_state(loss, sample_weight=rows)
                return float(_to_numpy(model._loss_tracker.result()))
        finally:
            model.train(was_training)

    def _loss_jax(self) -> float:
        model = self.model
        fn = _cached(model, "eval", _jax_eval)
        loss = fn(
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            _reset_values(model),
            self.runs,
        )
        return float(np.asarray(loss))


class _NotFast(Exception):
    """validation_data that only ``model.evaluate`` itself handles exactly."""


_EVAL_CACHE: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], Callable[..., Any]]] = (
    weakref.WeakKeyDictionary()
)
_EVAL_RESET: weakref.WeakKeyDictionary[Any, tuple[tuple[int, ...], list[np.ndarray]]] = (
    weakref.WeakKeyDictionary()
)


def _reset_values(model: Any) -> list[np.ndarray]:
    """The values ``reset_metrics`` gives the metric variables, found once per model (reset,
    read, put back) so that an evaluation can start from them without touching the model."""
    key = tuple(id(v) for v in model.metrics_variables)
    entry = _EVAL_RESET.get(model)
    if entry is None or entry[0] != key:
        saved = _metric_values(model)
        model.reset_metrics()
        _EVAL_RESET[model] = entry = (key, _metric_values(model))
        _put_metric_values(model, saved)
    return entry[1]


def _cached(model: Any, name: str, make: Callable[[Any], Callable[..., Any]]) -> Any:
    """One compiled evaluation function per model (and compile settings): a new trainer on
    the same model, as each ``find_lr`` call makes, does not trace or compile again."""
    key = (  # a recompile (new loss, metrics or settings) gets a fresh trace
        name,
        _backend(),
        id(getattr(model, "_compile_loss", None)),
        id(getattr(model, "_compile_metrics", None)),
        tuple(id(v) for v in model.metrics_variables),
        bool(model.jit_compile),
        bool(model.run_eagerly),
    )
    cache = _EVAL_CACHE.setdefault(model, {})
    if key not in cache:
        cache.clear()
        cache[key] = make(model)
    return cache[key]


# ---------------------------------------------------------------------------------------------
# the trainer


class KerasTrainer:
    """A :class:`~lrscope.Trainer` for a compiled Keras 3 model (any backend).

    ``x``, ``y``, ``batch_size``, ``sample_weight``, ``class_weight``, ``shuffle`` mean what
    they mean in ``model.fit``. In-memory arrays are batched here with a permutation seeded by
    ``seed`` (the global RNGs are never touched); datasets, generators, ``PyDataset`` and torch
    ``DataLoader`` go through Keras's own data adapter in their own order. Drawn batches are
    kept for rewinding, so a stream costs memory for the batches of one test.
    ``validation_data`` (as in ``fit``) gives :meth:`evaluate`.
    """

    def __init__(
        self,
        model: Any,
        x: Any = None,
        y: Any = None,
        *,
        batch_size: int | None = None,
        sample_weight: Any = None,
        class_weight: Mapping[int, float] | None = None,
        shuffle: bool = True,
        seed: int = 0,
        validation_data: Any = None,
    ) -> None:
        _check_model(model)
        if x is None:
            raise invalid("x", "must be the training data (as for model.fit)", x=None)
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise invalid("batch_size", "must be None or an integer >= 1", batch_size=batch_size)
        keras = _keras()
        self.model = model
        self.backend = _backend()
        if class_weight is not None:
            if sample_weight is not None:
                raise invalid(
                    "class_weight",
                    "cannot be combined with sample_weight",
                    class_weight=class_weight,
                )
            from keras.src.trainers.data_adapters import data_adapter_utils

            sample_weight = data_adapter_utils.class_weight_to_sample_weights(
                _to_numpy(y), class_weight
            )
        if _all_arrays(x, y, sample_weight):
            self._batches: _ArrayBatches | _StreamBatches = _ArrayBatches(
                x, y, sample_weight, batch_size or 32, shuffle, seed
            )
        else:
            if y is not None:
                raise invalid(
                    "y",
                    "must be None when `x` is a dataset, generator or PyDataset (they yield "
                    "(x, y) themselves)",
                    y=type(y).__name__,
                )
            self._batches = _StreamBatches(x, None, None, batch_size)
        self._validation = validation_data
        self._evaluator: _Validation | None = None  # prepared on the first evaluate()
        self._evaluator_ready = False
        self._position = 0
        first = self._batches.batch(0)
        # Build every variable now (model, compiled loss/metrics, optimizer slots), so the
        # snapshot holds all the state the first step would otherwise create.
        model._symbolic_build(data_batch=self._tensor_batch(first))  # no-op when built
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        if not model.trainable_variables:
            raise invalid(
                "model",
                "must have trainable weights (a range test changes them)",
                model=model.name,
            )
        self._optimizer = _inner_optimizer(model.optimizer)
        schedule = self._optimizer._learning_rate
        self._schedule = None
        if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule) or (
            callable(schedule) and not isinstance(schedule, keras.Variable)
        ):
            self._schedule = schedule
            if self._optimizer not in _SCHEDULE_LR:  # reused, so the compiled step is too
                _SCHEDULE_LR[self._optimizer] = keras.Variable(
                    0.0, dtype=keras.config.floatx(), trainable=False, name="lrscope_lr"
                )
            self._lr_variable = _SCHEDULE_LR[self._optimizer]
        elif isinstance(schedule, keras.Variable):
            self._lr_variable = schedule
        else:
            raise invalid(
                "model",
                "must have an optimizer whose learning rate is a float, a variable or a "
                "LearningRateSchedule",
                learning_rate=type(schedule).__name__,
            )

    # -- data ------------------------------------------------------------------------------
    def _tensor_batch(self, batch: Any) -> Any:
        # torch's train_step needs torch tensors; TF and JAX take NumPy (stacked per chunk).
        if self.backend == "torch" and isinstance(self._batches, _ArrayBatches):
            ops = _keras().ops
            return _keras().tree.map_structure(
                lambda a: ops.convert_to_tensor(a) if a is not None else None, batch
            )
        return batch

    def _next_batch(self) -> Any:
        batch = self._tensor_batch(self._batches.batch(self._position))
        self._position += 1
        return batch

    # -- the learning rate ----------------------------------------------------------------
    def _swap_in(self) -> None:
        """Make the LR a tracked variable for the duration of a run (schedules only)."""
        if self._schedule is not None:
            _attach_lr(self._optimizer, self._lr_variable)

    def _swap_out(self) -> None:
        if self._schedule is not None:
            _detach_lr(self._optimizer, self._schedule)

    # -- the protocol ----------------------------------------------------------------------
    def run(self, lrs: np.ndarray) -> np.ndarray:
        lrs = np.asarray(lrs, dtype=np.float64)
        if lrs.size == 0:
            return np.zeros(0)
        self._swap_in()
        try:
            if self.backend == "jax":
                losses = self._run_jax(lrs)
            elif self.backend == "tensorflow":
                losses = self._run_tensorflow(lrs)
            else:
                losses = self._run_torch(lrs)
        finally:
            self._swap_out()
        return np.asarray(losses, dtype=np.float64)

    def _run_tensorflow(self, lrs: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        step = self._compiled_step()
        batches = [self._next_batch() for _ in range(lrs.size)]
        stack = lambda leaves: tf.stack([tf.convert_to_tensor(v) for v in leaves])  # noqa: E731
        stacked = _stack_batches(batches, stack)
        if stacked is not None:
            return step(tf.constant(lrs, tf.float32), stacked).numpy()
        # Shapes differ inside the chunk (a short last batch): one call per step.
        losses = []
        for lr, batch in zip(lrs.tolist(), batches, strict=True):
            one = _stack_batches([batch], stack)
            if one is None:
                raise TrainerError(
                    "lrscope.keras supports batches of dense arrays/tensors on TensorFlow; "
                    f"got {[type(leaf).__name__ for leaf in tf.nest.flatten(batch)]}"
                )
            losses.append(step(tf.constant([lr], tf.float32), one)[0])
        return tf.stack(losses).numpy()

    def _run_torch(self, lrs: np.ndarray) -> np.ndarray:
        import torch

        model = self.model
        model.make_train_function()
        was_training = model.training
        model.train()
        try:
            losses = []
            for lr in lrs.tolist():
                self._lr_variable.assign(lr)
                model.reset_metrics()
                losses.append(_loss_of(model.train_function([self._next_batch()])))
        finally:
            model.train(was_training)
        return torch.stack([torch.as_tensor(v) for v in losses]).detach().cpu().numpy()

    def _compiled_step(self) -> Any:
        """The backend's step function, built once per model/optimizer/LR variable: a second
        test on the same model does not trace or compile again."""
        model = self.model
        key = (
            self.backend,
            id(model.optimizer),
            id(self._lr_variable),
            len(model.optimizer.variables),
            len(model.metrics_variables),
            bool(model.jit_compile),
            bool(model.run_eagerly),
        )
        cache = _STEP_CACHE.setdefault(model, {})
        if key not in cache:
            make = _tensorflow_step if self.backend == "tensorflow" else _jax_step
            cache.clear()  # one live step per model: an old one may hold stale closures
            cache[key] = make(model, self._lr_variable)
        return cache[key]

    def _run_jax(self, lrs: np.ndarray) -> np.ndarray:
        import jax.numpy as jnp

        model = self.model
        step = self._compiled_step()
        groups = (
            model.trainable_variables,
            model.non_trainable_variables,
            model.optimizer.variables,
            model.metrics_variables,
        )
        state = tuple([v.value for v in group] for group in groups)
        batches = [self._next_batch() for _ in range(lrs.size)]
        stacked = _stack_batches(batches, jnp.stack) if step.chunk is not None else None
        try:
            if stacked is not None:
                losses, state = step.chunk(state, jnp.asarray(lrs, jnp.float32), stacked)
            else:  # shapes differ inside the chunk (a short last batch), or no jit
                losses = []
                for lr, batch in zip(lrs.tolist(), batches, strict=True):
                    loss, state = step.one(state, jnp.float32(lr), batch)
                    losses.append(loss)
                losses = jnp.stack(losses)
        finally:
            # The step donates its input buffers: put the latest state back into the model.
            # After an interrupt inside the call the inputs may be gone and no outputs made;
            # then the engine's restore() puts the snapshot back.
            for group, values in zip(groups, state, strict=True):
                for variable, value in zip(group, values, strict=True):
                    if not (hasattr(value, "is_deleted") and value.is_deleted()):
                        variable.assign(value)
        return np.asarray(losses)

    def _variables(self) -> list[Any]:
        model = self.model
        return [*model.variables, *model.optimizer.variables, *model.metrics_variables]

    def snapshot(self) -> dict[str, Any]:
        """Host copies of model, optimizer and metric variables, the data position and (torch
        backend) the torch RNG."""
        state: dict[str, Any] = {
            "variables": [_host_copy(v) for v in self._variables()],
            "position": self._position,
        }
        if self.backend == "torch":
            import torch

            state["torch_rng"] = torch.get_rng_state()
        return state

    def restore(self, state: dict[str, Any]) -> None:
        variables = self._variables()
        if len(variables) != len(state["variables"]):
            raise TrainerError(
                f"snapshot holds {len(state['variables'])} variables, the model now has "
                f"{len(variables)}: it was changed between snapshot and restore"
            )
        for variable, value in zip(variables, state["variables"], strict=True):
            variable.assign(value)
        self._position = int(state["position"])
        if "torch_rng" in state:
            import torch

            torch.set_rng_state(state["torch_rng"])

    @property
    def evaluate(self) -> Callable[[], float]:
        """``evaluate() -> float``, the loss on ``validation_data`` (see :meth:`_evaluate`);
        like ``TorchTrainer.evaluate``, present only when there is held-out data to evaluate."""
        if self._validation is None:
            raise AttributeError(
                "KerasTrainer.evaluate needs validation_data (pass validation_data=... to "
                "lrscope.keras.trainer)"
            )
        return self._evaluate

    def _evaluate(self) -> float:
        """Loss on ``validation_data``: the value ``model.evaluate(...)["loss"]`` returns.

        Arrays (``(x, y)`` or ``(x, y, sample_weight)``) are converted and batched once, on the
        first call, exactly as ``model.evaluate`` batches them (32 rows, in order); each call
        then runs the model's own ``test_step`` over them in one compiled call (TensorFlow,
        JAX) or, on torch, its forward pass, loss and loss-tracker update per batch (the test
        function itself when ``test_step``/``compute_metrics`` is overridden), skipping the
        data pipeline and callbacks ``model.evaluate`` sets up per call. Datasets, generators
        and other inputs go through ``model.evaluate`` itself. Either way the metric variables
        (and on torch the module's train/eval mode and the torch RNG) are left as they were,
        so the trainer's state is unchanged.
        """
        if not self._evaluator_ready:
            self._evaluator, self._evaluator_ready = self._prepare_validation(), True
        if self._evaluator is not None:
            return self._evaluator.loss()
        return self._evaluate_with_keras()

    def _prepare_validation(self) -> _Validation | None:
        """The prepared validation set, or None where only ``model.evaluate`` is exact:
        streams (a dataset may reshuffle or augment per pass, a generator is used up), a
        distribution strategy or a ``max_steps_per_epoch`` cap."""
        data = self._validation
        if not (isinstance(data, tuple) and len(data) in (2, 3) and _all_arrays(*data)):
            return None
        keras = _keras()
        if keras.config.max_steps_per_epoch():
            return None
        if self.backend == "tensorflow":
            import tensorflow as tf

            if tf.distribute.has_strategy() or self.model.distribute_strategy is not (
                tf.distribute.get_strategy()
            ):
                return None
        elif self.backend == "jax":
            if keras.distribution.distribution() is not None:
                return None
        elif self.backend != "torch":
            return None
        rng = self._torch_rng()
        try:
            return _Validation(self.model, self.backend, *data)
        except _NotFast:
            return None
        finally:
            self._put_torch_rng(rng)  # a DataLoader draws a seed from it per pass

    def _torch_rng(self) -> Any:
        if self.backend != "torch":
            return None
        import torch

        return torch.get_rng_state()

    def _put_torch_rng(self, state: Any) -> None:
        if state is not None:
            import torch

            torch.set_rng_state(state)

    def _evaluate_with_keras(self) -> float:
        model, data = self.model, self._validation
        saved, rng = _metric_values(model), self._torch_rng()
        was_training = getattr(model, "training", None) if self.backend == "torch" else None
        try:
            if isinstance(data, tuple) and len(data) in (2, 3):
                x, y, *weights = data
                logs = model.evaluate(
                    x,
                    y,
                    sample_weight=weights[0] if weights else None,
                    verbose=0,
                    return_dict=True,
                )
            else:
                logs = model.evaluate(data, verbose=0, return_dict=True)
        finally:
            _put_metric_values(model, saved)
            self._put_torch_rng(rng)
            if was_training is not None:
                model.train(was_training)
        return float(logs["loss"])


#: Build the :class:`KerasTrainer` (for ``lrscope.range_test``, sweeps and the CLI); the same
#: arguments as the class (an alias, so the two signatures cannot drift apart).
trainer = KerasTrainer


def find_lr(
    model: Any,
    x: Any = None,
    y: Any = None,
    *,
    batch_size: int | None = None,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 100,
    mode: str = "exp",
    validation_data: Any = None,
    eval_every: int | None = None,
    sample_weight: Any = None,
    class_weight: Mapping[int, float] | None = None,
    shuffle: bool = True,
    seed: int = 0,
    progress: bool = False,
    **options: Any,
) -> RangeTestResult:
    """LR range test of a compiled Keras model on what ``model.fit`` would take.

    The model's compiled optimizer (momenta, weight decay, schedule) is used, with its LR
    ramped from ``start_lr`` to ``end_lr`` over ``steps`` batches; the loss of each batch is
    recorded. Afterwards the model, optimizer, metrics and RNG are exactly as before. With
    ``validation_data`` the held-out loss is measured every ``eval_every`` steps (default:
    about 10 times per test). Other ``options`` go to :func:`lrscope.range_test`
    (``beta``, ``diverge_factor``, ``chunk_size``, ...).

    >>> result = find_lr(model, x_train, y_train, batch_size=64)  # doctest: +SKIP
    >>> result.suggest().lr                                        # doctest: +SKIP
    """
    keras_trainer = KerasTrainer(
        model,
        x,
        y,
        batch_size=batch_size,
        sample_weight=sample_weight,
        class_weight=class_weight,
        shuffle=shuffle,
        seed=seed,
        validation_data=validation_data,
    )
    if validation_data is not None and eval_every is None:
        eval_every = max(1, steps // 10) if isinstance(steps, int) else None
    metadata = {
        "framework": "keras",
        "backend": keras_trainer.backend,
        "model": str(model.name),
        "optimizer": type(model.optimizer).__name__,
        **dict(options.pop("metadata", None) or {}),
    }
    return range_test(
        keras_trainer,
        start_lr=start_lr,
        end_lr=end_lr,
        steps=steps,
        mode=mode,
        eval_every=eval_every,
        metadata=metadata,
        progress=progress,
        **options,
    )


# ---------------------------------------------------------------------------------------------
# the fit callback


def _callback_base() -> type:
    return _keras().callbacks.Callback  # type: ignore[no-any-return]


_CALLBACK_DOC = """A ``fit`` callback that ramps the LR per batch and records each batch's loss.

    For users who drive ``fit`` themselves (``fit(x, y, epochs=1, callbacks=[test])``); the
    result is ``test.result`` after ``fit``. It resets the metrics before each batch so the
    recorded loss is the batch's own, sets the LR through ``self.model`` (on JAX a cached
    optimizer reference is silently ignored), stops ``fit`` on divergence, and with
    ``restore=True`` (default) puts back the weights, optimizer and metric variables at the
    end of training. It restores only when ``fit`` returns (use :func:`find_lr` for restores
    after exceptions too), and refuses ``steps_per_execution > 1`` (callbacks would see only
    one batch in N). Keras's own per-batch callback costs a full state sync per batch on JAX;
    :func:`find_lr` avoids it.
    """


def __getattr__(name: str) -> Any:
    # LRRangeTest subclasses keras.callbacks.Callback, so it is built on first access: this
    # module (and lrscope) import without Keras.
    if name == "LRRangeTest":
        return _real_callback_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_CALLBACK_CLASS: type | None = None


def _real_callback_class() -> type:
    global _CALLBACK_CLASS
    if _CALLBACK_CLASS is None:
        _CALLBACK_CLASS = _make_callback_class(_callback_base())
    return _CALLBACK_CLASS


def _make_callback_class(base: type) -> type:
    class _LRRangeTest(base):  # type: ignore[misc, valid-type]
        __doc__ = _CALLBACK_DOC

        def __init__(
            self,
            start_lr: float = 1e-7,
            end_lr: float = 10.0,
            steps: int = 100,
            mode: str = "exp",
            beta: float = 0.98,
            diverge_factor: float = 3.0,
            stop_on_divergence: bool = True,
            restore: bool = True,
        ) -> None:
            super().__init__()
            self.lrs = lr_ramp(start_lr, end_lr, steps, mode)
            self.settings = {
                "start_lr": float(start_lr),
                "end_lr": float(end_lr),
                "steps": int(steps),
                "mode": mode,
                "beta": float(beta),
                "diverge_factor": float(diverge_factor),
            }
            self.stop_on_divergence = stop_on_divergence
            self.restore = restore
            self.result: RangeTestResult | None = None
            self._losses: list[float] = []
            self._saved: list[np.ndarray] | None = None
            self._schedule: Any = None
            self._stop = ("completed", None)
            self._chunk = auto_chunk(int(steps))

        def _state(self) -> list[Any]:
            model = self.model
            return [*model.variables, *model.optimizer.variables, *model.metrics_variables]

        def on_train_begin(self, logs: Any = None) -> None:
            model = self.model
            if getattr(model, "steps_per_execution", 1) > 1:
                raise invalid(
                    "model",
                    "must be compiled with steps_per_execution=1 for LRRangeTest (batch "
                    "callbacks fire once per execution); lrscope.keras.find_lr handles any "
                    "value",
                    steps_per_execution=model.steps_per_execution,
                )
            keras = _keras()
            if not model.optimizer.built:  # slots at zero, as the first step would make them
                model.optimizer.build(model.trainable_variables)
            optimizer = _inner_optimizer(model.optimizer)
            if not isinstance(optimizer._learning_rate, keras.Variable):
                self._schedule = optimizer._learning_rate
                variable = keras.Variable(
                    float(self.lrs[0]), dtype=keras.config.floatx(), trainable=False
                )
                _attach_lr(optimizer, variable)
            self._losses, self._stop = [], ("completed", None)
            self._began = time.perf_counter()
            self._saved = [_host_copy(v) for v in self._state()] if self.restore else None

        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            model = self.model  # on JAX this syncs the state into the variables
            step = len(self._losses)
            if step >= len(self.lrs):
                model.stop_training = True
                return
            _inner_optimizer(model.optimizer)._learning_rate.assign(float(self.lrs[step]))
            model.reset_metrics()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if len(self._losses) >= len(self.lrs) or logs is None or "loss" not in logs:
                return
            self._losses.append(float(np.asarray(logs["loss"])))
            done = len(self._losses)
            if done == len(self.lrs):
                self.model.stop_training = True
            elif done % self._chunk == 0 or not math.isfinite(self._losses[-1]):
                raw = np.asarray(self._losses)
                reason, index = check_stop(
                    smooth_loss(raw, self.settings["beta"]), raw, self.settings["diverge_factor"]
                )
                if reason == "non_finite" or (reason == "diverged" and self.stop_on_divergence):
                    self._stop = (reason, index)
                    self.model.stop_training = True

        def on_train_end(self, logs: Any = None) -> None:
            model = self.model
            optimizer = _inner_optimizer(model.optimizer)
            if self._saved is not None:  # before the schedule swap changes the variable list
                for variable, value in zip(self._state(), self._saved, strict=True):
                    variable.assign(value)
            if self._schedule is not None:
                _detach_lr(optimizer, self._schedule)
                self._schedule = None
            raw = np.asarray(self._losses, dtype=np.float64)
            self.result = RangeTestResult(
                lr=self.lrs[: raw.size].copy(),
                loss=raw,
                smooth_loss=smooth_loss(raw, self.settings["beta"]),
                stop_reason=self._stop[0],
                stop_step=self._stop[1],
                start_lr=self.settings["start_lr"],
                end_lr=self.settings["end_lr"],
                steps=self.settings["steps"],
                mode=self.settings["mode"],
                beta=self.settings["beta"],
                diverge_factor=self.settings["diverge_factor"],
                lr_diverge=None,
                val_step=np.zeros(0, dtype=np.int64),
                val_loss=np.zeros(0),
                elapsed_s=time.perf_counter() - self._began,
                metadata={"framework": "keras", "backend": _backend(), "driver": "fit"},
            )

    _LRRangeTest.__name__ = _LRRangeTest.__qualname__ = "LRRangeTest"
    return _LRRangeTest
