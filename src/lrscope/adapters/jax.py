"""The JAX / optax adapter: an LR range test as compiled chunks of a ``lax.scan``.

JAX's functional state makes this the cheapest backend lrscope has: parameters and optimizer
state are immutable arrays, so a snapshot is a handful of references (nothing is copied, and
nothing is donated, so no buffer the user or a snapshot holds is ever reused), and a chunk of
steps runs as one jitted ``lax.scan`` over ``(lrs, batches)``: one host sync per chunk.

The LR is a traced input of the compiled step (``optax.inject_hyperparams`` keeps it in the
optimizer state), so the whole test compiles once. The engine passes chunks of constant size
except possibly the last; a shorter chunk is padded to the compiled length with masked steps
that leave the state unchanged, so it does not recompile either.

JAX and optax are imported when this module is imported, never by ``import lrscope``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Literal, overload

import numpy as np

from lrscope.core.rangetest import auto_chunk, range_test
from lrscope.core.result import RangeTestResult
from lrscope.errors import TrainerError, invalid, require

require("jax", "lrscope.jax", "jax")
require("optax", "lrscope.jax", "jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

__all__ = ["JaxTrainer", "find_lr", "trainer"]

LossFn = Callable[..., Any]

# A placeholder LR for optimizers built from a factory; every step overwrites it.
_PLACEHOLDER_LR = 1e-3
# A value no real optimizer state holds; used once to check that the LR we write is the one
# the optimizer reads (a schedule inside inject_hyperparams would overwrite it).
_SENTINEL_LR = 0.123456789


# --------------------------------------------------------------------------- pytrees


def _leaf_paths(tree: Any) -> list[tuple[str, Any]]:
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [(jax.tree_util.keystr(path) or "<root>", leaf) for path, leaf in flat]


def _as_float_params(params: Any) -> Any:
    """Check that every leaf of ``params`` is a floating array and return them as jax arrays.

    Python floats and NumPy arrays become jax arrays (the user's objects are not touched);
    jax arrays are used as they are (immutable, and never donated).
    """
    leaves = _leaf_paths(params)
    if not leaves:
        raise invalid("params", "must be a pytree with at least one array leaf", params=params)
    for path, leaf in leaves:
        if isinstance(leaf, (str, bytes)) or leaf is None:
            raise invalid(
                "params",
                f"must have only floating-point array leaves; leaf {path} is not one",
                leaf=leaf,
            )
        try:
            dtype = np.result_type(leaf) if not isinstance(leaf, jax.Array) else leaf.dtype
        except TypeError:
            raise invalid(
                "params",
                f"must have only floating-point array leaves; leaf {path} is not one",
                leaf=type(leaf).__name__,
            ) from None
        if not jnp.issubdtype(dtype, jnp.inexact):
            raise invalid(
                "params",
                f"must have only floating-point array leaves (gradients need them); leaf "
                f"{path} has dtype {dtype}",
                dtype=str(dtype),
            )
    return jax.tree_util.tree_map(jnp.asarray, params)


def _array_leaf(leaf: Any, argument: str, path: str) -> Any:
    if isinstance(leaf, jax.Array):
        return leaf  # immutable, kept on its device
    try:
        array = np.array(leaf)  # a copy: a batch buffer the caller reuses cannot change ours
    except (TypeError, ValueError):
        array = None
    if array is None or array.dtype == object or array.dtype.kind in "USV":
        raise invalid(
            argument,
            f"must have only numeric array leaves; leaf {path} is not one",
            leaf=type(leaf).__name__,
        )
    return array


def _signature(tree: Any) -> tuple[Any, list[tuple[tuple[int, ...], str]]]:
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return treedef, [(tuple(np.shape(x)), str(x.dtype)) for x in leaves]


# --------------------------------------------------------------------------- optimizer


def _has_lr(node: Any) -> bool:
    hyperparams = getattr(node, "hyperparams", None)
    return (
        isinstance(hyperparams, dict)
        and "learning_rate" in hyperparams
        and hasattr(node, "_replace")
    )


def _lr_nodes(opt_state: Any) -> list[Any]:
    return [n for n in jax.tree_util.tree_leaves(opt_state, is_leaf=_has_lr) if _has_lr(n)]


def _set_lr(opt_state: Any, lr: Any) -> Any:
    """Write ``lr`` into the ``hyperparams["learning_rate"]`` of an inject_hyperparams state."""

    def put(node: Any) -> Any:
        if not _has_lr(node):
            return node
        old = node.hyperparams["learning_rate"]
        return node._replace(
            hyperparams={**node.hyperparams, "learning_rate": jnp.asarray(lr, old.dtype)}
        )

    return jax.tree_util.tree_map(put, opt_state, is_leaf=_has_lr)


_HOW_TO = (
    "build it with optax.inject_hyperparams, e.g. "
    "optax.inject_hyperparams(optax.adam)(learning_rate=1e-3), or pass a factory "
    "`lambda lr: optax.adam(lr)`"
)


def _make_optimizer(optimizer: Any) -> optax.GradientTransformation:
    """Accept an inject_hyperparams transformation as is; wrap a factory ``lr -> transform``."""
    if isinstance(optimizer, optax.GradientTransformation):
        return optimizer
    if not callable(optimizer):
        raise invalid(
            "optimizer",
            f"must be an optax GradientTransformation with an injectable learning rate, or a "
            f"factory lr -> GradientTransformation; {_HOW_TO}",
            optimizer=optimizer,
        )
    try:
        probe = optimizer(_PLACEHOLDER_LR)
    except Exception as exc:
        raise invalid(
            "optimizer",
            "must be a GradientTransformation or a factory callable as factory(lr) "
            f"(calling it with lr={_PLACEHOLDER_LR} raised {exc!r})",
            optimizer=optimizer,
        ) from exc
    if not isinstance(probe, optax.GradientTransformation):
        raise invalid(
            "optimizer",
            "as a factory must return an optax GradientTransformation for a learning rate",
            returned=type(probe).__name__,
        )

    def inner(learning_rate: Any) -> optax.GradientTransformation:
        return optimizer(learning_rate)

    return optax.inject_hyperparams(inner)(learning_rate=_PLACEHOLDER_LR)


def _lr_passes_through(optimizer: Any, opt_state: Any, params: Any) -> bool:
    """Whether ``update`` keeps the LR written into the state (and so uses it).

    First by tracing only (no compilation, no computation): optax's inject_hyperparams hands a
    strongly typed LR on unchanged, so the traced output is the very tracer written in. If
    that does not hold (another implementation), one jitted update on zero gradients with a
    sentinel LR decides by value.
    """
    same: list[bool] = []

    def update(params: Any, opt_state: Any, lr: Any) -> Any:
        state = _set_lr(opt_state, lr)
        written = _lr_nodes(state)[0].hyperparams["learning_rate"]
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        _, after = optimizer.update(zeros, state, params)
        kept = _lr_nodes(after)
        same.append(len(kept) == 1 and kept[0].hyperparams["learning_rate"] is written)
        return [node.hyperparams["learning_rate"] for node in kept]

    lr_dtype = _lr_nodes(opt_state)[0].hyperparams["learning_rate"].dtype
    jax.eval_shape(update, params, opt_state, jax.ShapeDtypeStruct((), lr_dtype))
    if same[0]:
        return True
    kept = jax.jit(update)(params, opt_state, jnp.asarray(_SENTINEL_LR, lr_dtype))
    return len(kept) == 1 and math.isclose(float(kept[0]), _SENTINEL_LR, rel_tol=1e-6)


def _check_lr_is_settable(optimizer: Any, opt_state: Any, params: Any) -> None:
    """Refuse an optimizer whose learning rate the test cannot set, with the fix in the error.

    An update on zero gradients shows whether the LR written into the state is the one the
    optimizer keeps (a schedule passed to inject_hyperparams recomputes it every step).
    """
    nodes = _lr_nodes(opt_state)
    if not nodes:
        raise invalid(
            "optimizer",
            f"must expose its learning rate as opt_state.hyperparams['learning_rate']; {_HOW_TO}",
            optimizer=type(optimizer).__name__,
        )
    if len(nodes) > 1:
        raise invalid(
            "optimizer",
            "must have exactly one injectable learning rate (found "
            f"{len(nodes)} inject_hyperparams states); pass a factory lr -> transformation "
            "that sets them all",
            optimizer=type(optimizer).__name__,
        )
    if np.shape(nodes[0].hyperparams["learning_rate"]) != ():
        raise invalid(
            "optimizer",
            "must hold a scalar learning rate",
            shape=np.shape(nodes[0].hyperparams["learning_rate"]),
        )
    lr_dtype = jnp.asarray(nodes[0].hyperparams["learning_rate"]).dtype
    if not jnp.issubdtype(lr_dtype, jnp.floating):
        # an integer LR (inject_hyperparams(optax.sgd)(learning_rate=1)) would truncate
        raise invalid(
            "optimizer",
            "must hold a floating-point learning rate; write it as a float (1.0, not 1)",
            learning_rate_dtype=str(lr_dtype),
        )
    if not _lr_passes_through(optimizer, opt_state, params):
        raise invalid(
            "optimizer",
            "must take its learning rate from the optimizer state, but it recomputes it every "
            f"step (a schedule given to inject_hyperparams?); {_HOW_TO} with a number",
            optimizer=type(optimizer).__name__,
        )


# --------------------------------------------------------------------------- data


class _ArrayData:
    """An array pytree cut into batches of ``batch_size`` rows along axis 0, cycled.

    Batch ``k`` is rows ``k*batch_size ... k*batch_size + batch_size - 1`` modulo the number
    of rows: every row is used, every batch has the same shape (one compilation), and the
    data stays on the device (the batch is gathered inside the compiled step).
    """

    def __init__(self, data: Any, batch_size: int) -> None:
        leaves = _leaf_paths(data)
        if not leaves:
            raise invalid("batches", "must be a pytree with at least one array leaf", batches=data)
        arrays = [(path, _array_leaf(leaf, "batches", path)) for path, leaf in leaves]
        rows = {path: (np.shape(a)[0] if np.ndim(a) else None) for path, a in arrays}
        if any(n is None for n in rows.values()):
            scalar = next(path for path, n in rows.items() if n is None)
            raise invalid(
                "batches",
                f"with batch_size must have arrays with a leading batch axis; leaf {scalar} "
                "is a scalar",
                batch_size=batch_size,
            )
        if len(set(rows.values())) != 1:
            raise invalid(
                "batches",
                "with batch_size must have the same number of rows (axis 0) in every leaf",
                rows=rows,
            )
        self.n_rows = next(iter(rows.values()))
        if self.n_rows == 0:
            raise invalid("batches", "is empty (0 rows); the test needs data", rows=0)
        if batch_size > self.n_rows:
            raise invalid(
                "batch_size",
                "must be at most the number of rows in `batches`",
                batch_size=batch_size,
                rows=self.n_rows,
            )
        self.batch_size = batch_size
        self.data = jax.tree_util.tree_map(jnp.asarray, data)
        # shapes only: enough to trace loss_fn once for early errors, nothing computed
        self.first = jax.tree_util.tree_map(
            lambda x: jax.ShapeDtypeStruct((batch_size, *x.shape[1:]), x.dtype), self.data
        )

    def gather(self, data: Any, position: Any) -> Any:
        rows = (position * self.batch_size + jnp.arange(self.batch_size)) % self.n_rows
        return jax.tree_util.tree_map(lambda x: jnp.take(x, rows, axis=0), data)


class _IteratedData:
    """Batches from an iterable, kept (as references) so that ``restore`` can rewind.

    An iterator cannot be rewound, so every batch drawn is remembered; when the iterable runs
    out, the remembered batches are cycled (the next "epoch", unshuffled). Every batch must
    have the structure, shapes and dtypes of the first one.
    """

    def __init__(self, batches: Iterable[Any]) -> None:
        try:
            self._iterator: Iterator[Any] | None = iter(batches)
        except TypeError:
            raise invalid(
                "batches",
                "must be an iterable of batch pytrees, or an array pytree with batch_size=N",
                batches=type(batches).__name__,
            ) from None
        self._seen: list[Any] = []
        self.first = self.batch(0)
        self.signature = _signature(self.first)

    def _pull(self) -> bool:
        if self._iterator is None:
            return False
        try:
            raw = next(self._iterator)
        except StopIteration:
            self._iterator = None
            return False
        index = len(self._seen)
        leaves = _leaf_paths(raw)
        if not leaves:
            raise invalid(
                "batches",
                f"must yield pytrees with array leaves; batch {index} has none",
                batch=raw,
            )
        treedef = jax.tree_util.tree_structure(raw)
        batch = jax.tree_util.tree_unflatten(
            treedef,
            [_array_leaf(leaf, "batches", f"{path} of batch {index}") for path, leaf in leaves],
        )
        if self._seen and _signature(batch) != self.signature:
            raise invalid(
                "batches",
                "must yield batches of one structure, shape and dtype (so the test compiles "
                f"once); batch {index} differs from batch 0",
                batch_0=self.signature[1],
                **{f"batch_{index}": _signature(batch)[1]},
            )
        self._seen.append(batch)
        return True

    def batch(self, index: int) -> Any:
        while index >= len(self._seen) and self._pull():
            pass
        if not self._seen:
            raise invalid(
                "batches", "is empty (it yielded no batch); the test needs data", yielded=0
            )
        return self._seen[index % len(self._seen)]

    def stacked(self, position: int, count: int, length: int) -> Any:
        """Batches ``position .. position+count-1`` stacked on a new axis 0, padded to
        ``length`` by repeating the last one (the padding steps are masked)."""
        chosen = [self.batch(position + i) for i in range(count)]
        chosen += [chosen[-1]] * (length - count)

        def stack(*leaves: Any) -> Any:
            if isinstance(leaves[0], jax.Array):
                return jnp.stack(leaves)
            return np.stack(leaves)

        return jax.tree_util.tree_map(stack, *chosen)


# --------------------------------------------------------------------------- trainer


class JaxTrainer:
    """A :class:`~lrscope.Trainer` for a JAX loss function and an optax optimizer.

    ``loss_fn(params, batch) -> loss`` (or ``-> (loss, aux)`` with ``has_aux=True``; ``aux``
    is ignored), or ``loss_fn(params, batch, key)`` when a PRNG ``key`` is given: the trainer
    splits it once per step, so dropout and other randomness replay exactly after a restore.
    ``optimizer`` is an optax transformation built with ``optax.inject_hyperparams`` or a
    factory ``lr -> GradientTransformation``. ``batches`` is an iterable of batch pytrees, or
    (with ``batch_size=N``) an array pytree cut into batches of N rows along axis 0, cycled.

    ``chunk_size`` is the number of steps compiled into one ``lax.scan``; by default the
    length of the first ``run``. Longer runs are split into chunks, shorter ones padded with
    masked steps, so the trainer compiles once (``compilations`` counts it).

    The state (params, optimizer state, data position, key) is held as immutable jax arrays
    and never donated: ``snapshot()`` keeps references (free) and ``restore`` is exact. The
    caller's ``params`` and ``opt_state`` are never changed. ``final_params`` holds the
    params after the last ``run`` (what a range test ended on, before its restore).
    """

    def __init__(
        self,
        loss_fn: LossFn,
        params: Any,
        optimizer: Any,
        batches: Any,
        *,
        batch_size: int | None = None,
        has_aux: bool = False,
        key: Any = None,
        opt_state: Any = None,
        chunk_size: int | None = None,
        eval_batch: Any = None,
    ) -> None:
        if not callable(loss_fn):
            raise invalid("loss_fn", "must be callable as loss_fn(params, batch)", loss_fn=loss_fn)
        if not isinstance(has_aux, bool):
            raise invalid("has_aux", "must be True or False", has_aux=has_aux)
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise invalid("batch_size", "must be None or an integer >= 1", batch_size=batch_size)
        if chunk_size is not None and (
            isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
        ):
            raise invalid("chunk_size", "must be None or an integer >= 1", chunk_size=chunk_size)
        self._loss_fn = loss_fn
        self._has_aux = has_aux
        self._params = _as_float_params(params)
        self._optimizer = _make_optimizer(optimizer)
        if opt_state is None:
            self._opt_state = self._optimizer.init(self._params)
        else:
            self._opt_state = self._check_opt_state(opt_state)
        _check_lr_is_settable(self._optimizer, self._opt_state, self._params)
        self._lr_dtype = _lr_nodes(self._opt_state)[0].hyperparams["learning_rate"].dtype

        self._typed_key = False
        self._key_impl: Any = None
        if key is not None:
            key = self._key_data(key)
        self._key = key
        self._position = 0

        if batch_size is None:
            if isinstance(batches, (jax.Array, np.ndarray, Mapping, tuple)):
                # an array, a dict or a tuple of arrays is one dataset, not a list of batches
                raise invalid(
                    "batches",
                    "is an array pytree (array, dict or tuple): pass batch_size=N to cut it "
                    "into batches of N rows, or pass a list or iterator of batches",
                    batches=type(batches).__name__,
                )
            self._arrays: _ArrayData | None = None
            self._iterated: _IteratedData | None = _IteratedData(batches)
            first = self._iterated.first
        else:
            self._arrays = _ArrayData(batches, batch_size)
            self._iterated = None
            first = self._arrays.first
        self._loss_dtype = self._check_loss(first)

        # batch k of array data starts at row k*batch_size mod n_rows: periodic in k, so the
        # position handed to the compiled step stays small (no int32 overflow on long runs)
        self._period = (
            self._arrays.n_rows // math.gcd(self._arrays.n_rows, self._arrays.batch_size)
            if self._arrays is not None
            else 1
        )
        self._chunk = chunk_size
        self._traces = 0
        self._chunk_fn = jax.jit(self._scan_chunk)
        self.final_params: Any = None
        self._eval_batch = eval_batch
        if eval_batch is not None:
            self._check_loss(eval_batch)
            self._eval_fn = jax.jit(self._eval_loss)
            self.evaluate = self._evaluate

    # ----------------------------------------------------------------- checks

    def _check_opt_state(self, opt_state: Any) -> Any:
        """A given optimizer state must be one ``optimizer.init(params)`` would build."""
        expected = _signature(jax.eval_shape(self._optimizer.init, self._params))
        try:
            state = jax.tree_util.tree_map(jnp.asarray, opt_state)
            got = _signature(state)
        except (TypeError, ValueError):
            got = None
        if got != expected:
            raise invalid(
                "opt_state",
                "must be a state of `optimizer` for these params (as optimizer.init(params) "
                "builds it: same structure, shapes and dtypes)",
                opt_state=type(opt_state).__name__,
            )
        return state

    def _key_data(self, key: Any) -> Any:
        """Hold a key as raw uint32 data (comparable bitwise); remember if it was typed."""
        if not isinstance(key, (jax.Array, np.ndarray)):
            raise invalid("key", "must be a jax PRNG key (jax.random.key or PRNGKey)", key=key)
        if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
            if key.shape != ():
                raise invalid("key", "must be a single PRNG key", shape=key.shape)
            self._typed_key = True
            self._key_impl = jax.random.key_impl(key)
            return jax.random.key_data(key)
        if key.dtype != np.uint32 or key.ndim != 1:
            raise invalid(
                "key",
                "must be a jax PRNG key (jax.random.key(0) or jax.random.PRNGKey(0))",
                dtype=str(key.dtype),
                shape=key.shape,
            )
        return jnp.asarray(key)

    def _user_key(self, data: Any) -> Any:
        return jax.random.wrap_key_data(data, impl=self._key_impl) if self._typed_key else data

    def _call_loss(self, params: Any, batch: Any, key: Any) -> Any:
        if key is None:
            return self._loss_fn(params, batch)
        return self._loss_fn(params, batch, self._user_key(key))

    def _check_loss(self, batch: Any) -> Any:
        """Trace ``loss_fn`` once on the first batch (no compilation) for clear early errors;
        return the dtype of the loss."""
        try:
            out = jax.eval_shape(self._call_loss, self._params, batch, self._key)
        except TypeError as exc:
            raise invalid(
                "loss_fn",
                "must be callable as loss_fn(params, batch)"
                + (", key" if self._key is not None else "")
                + f" and return a scalar loss (calling it raised {exc})",
                loss_fn=getattr(self._loss_fn, "__name__", self._loss_fn),
            ) from exc
        if self._has_aux:
            if not (isinstance(out, (tuple, list)) and len(out) == 2):
                raise invalid(
                    "loss_fn",
                    "with has_aux=True must return a pair (loss, aux)",
                    returned=type(out).__name__,
                )
            out = out[0]
        elif isinstance(out, (tuple, list)):
            raise invalid(
                "loss_fn",
                "must return a scalar loss; it returned a tuple (pass has_aux=True if it "
                "returns (loss, aux))",
                returned=f"tuple of {len(out)}",
            )
        shape, dtype = getattr(out, "shape", None), getattr(out, "dtype", None)
        if shape != () or dtype is None or not jnp.issubdtype(dtype, jnp.floating):
            raise invalid(
                "loss_fn",
                "must return a scalar floating-point loss (e.g. a mean over the batch)",
                shape=shape,
                dtype=str(dtype),
            )
        return dtype

    # ----------------------------------------------------------------- compiled chunk

    def _scan_chunk(
        self,
        params: Any,
        opt_state: Any,
        key: Any,
        position: Any,
        data: Any,
        lrs: Any,
        active: Any,
    ) -> tuple[Any, Any, Any, Any]:
        """``len(lrs)`` steps in one ``lax.scan``; steps with ``active == False`` are no-ops.

        ``data`` is the whole array pytree (batches gathered by position) or the batches of
        this chunk stacked on axis 0. Returns the new params, optimizer state, key and the
        per-step losses (masked steps give NaN, dropped on the host).
        """
        self._traces += 1  # runs once per trace: counts compilations of the chunk
        grad_fn = jax.value_and_grad(self._call_loss, has_aux=self._has_aux)
        arrays = self._arrays
        steps = jnp.arange(lrs.shape[0])

        def one_step(carry: Any, batch: Any, lr: Any) -> tuple[Any, Any]:
            params, opt_state, key = carry
            sub = None
            if key is not None:
                parts = jax.random.split(self._user_key(key))
                key = jax.random.key_data(parts[0]) if self._typed_key else parts[0]
                sub = jax.random.key_data(parts[1]) if self._typed_key else parts[1]
            opt_state = _set_lr(opt_state, lr)
            value, grads = grad_fn(params, batch, sub)
            loss = value[0] if self._has_aux else value
            updates, opt_state = self._optimizer.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            return (params, opt_state, key), loss

        def body(carry: Any, xs: Any) -> tuple[Any, Any]:
            lr, is_active, index, chunk_batch = xs
            batch = arrays.gather(data, position + index) if arrays is not None else chunk_batch
            # cond, not select: a padding step costs nothing and leaves the state bitwise as is
            return jax.lax.cond(
                is_active,
                lambda c: one_step(c, batch, lr),
                lambda c: (c, jnp.full((), jnp.nan, self._loss_dtype)),
                carry,
            )

        chunk_batches = None if arrays is not None else data
        (params, opt_state, key), losses = jax.lax.scan(
            body, (params, opt_state, key), (lrs, active, steps, chunk_batches)
        )
        return params, opt_state, key, losses

    @property
    def compilations(self) -> int:
        """How many times the chunk function was traced (compiled); 1 for a whole test."""
        return self._traces

    @property
    def chunk_size(self) -> int | None:
        """Steps per compiled chunk (None until the first ``run`` when not given)."""
        return self._chunk

    # ----------------------------------------------------------------- protocol

    def run(self, lrs: np.ndarray) -> np.ndarray:
        """Take ``len(lrs)`` steps, step ``i`` at ``lrs[i]``; losses as float64, one host sync
        per compiled chunk."""
        lrs = np.asarray(lrs, dtype=np.float64).reshape(-1)
        if lrs.size == 0:
            return np.zeros(0)
        if self._chunk is None:
            self._chunk = int(lrs.size)
        length = self._chunk
        pieces = []
        for start in range(0, lrs.size, length):
            part = lrs[start : start + length]
            count = part.size
            padded = np.full(length, part[-1], dtype=self._lr_dtype)
            padded[:count] = part
            active = np.arange(length) < count
            if self._arrays is not None:
                data = self._arrays.data
            else:
                assert self._iterated is not None
                data = self._iterated.stacked(self._position, count, length)
            params, opt_state, key, losses = self._chunk_fn(
                self._params,
                self._opt_state,
                self._key,
                np.int32(self._position % self._period),
                data,
                padded,
                active,
            )
            self._params, self._opt_state, self._key = params, opt_state, key
            self._position += count
            pieces.append((losses, count))
            self.final_params = params
        return np.concatenate(
            [np.asarray(losses, dtype=np.float64)[:count] for losses, count in pieces]
        )

    def snapshot(self) -> dict[str, Any]:
        """References to the current state (jax arrays are immutable and never donated)."""
        return {
            "params": jax.tree_util.tree_leaves(self._params),
            "opt_state": jax.tree_util.tree_leaves(self._opt_state),
            "position": self._position,
            "key": self._key,
        }

    def restore(self, state: Any) -> None:
        """Put back the state of a :meth:`snapshot` of this trainer, exactly."""
        if not (isinstance(state, Mapping) and {"params", "opt_state", "position"} <= set(state)):
            raise TrainerError("JaxTrainer.restore needs a snapshot() of a JaxTrainer")
        self._params = jax.tree_util.tree_unflatten(
            jax.tree_util.tree_structure(self._params), state["params"]
        )
        self._opt_state = jax.tree_util.tree_unflatten(
            jax.tree_util.tree_structure(self._opt_state), state["opt_state"]
        )
        self._position = int(state["position"])
        self._key = state["key"]

    def metadata(self) -> dict[str, str | int | float | bool | None]:
        """What the result should record about this setup (JSON scalars)."""
        info: dict[str, str | int | float | bool | None] = {
            "framework": "jax",
            "jax_version": str(jax.__version__),
            "optax_version": str(optax.__version__),
            "backend": jax.default_backend(),
            "n_params": int(sum(np.size(x) for x in jax.tree_util.tree_leaves(self._params))),
            "data": "arrays" if self._arrays is not None else "iterator",
            "key": self._key is not None,
        }
        if self._arrays is not None:
            info["batch_size"] = self._arrays.batch_size
        return info

    @property
    def params(self) -> Any:
        """The current parameters (the caller's own after a range test: it restores)."""
        return self._params

    # ----------------------------------------------------------------- evaluate

    def _eval_loss(self, params: Any, batch: Any, key: Any) -> Any:
        value = self._call_loss(params, batch, key)
        return value[0] if self._has_aux else value

    def _evaluate(self) -> float:
        """Loss of the current params on ``eval_batch`` (the same key every time)."""
        return float(self._eval_fn(self._params, self._eval_batch, self._key))


# --------------------------------------------------------------------------- front door


#: Build the :class:`JaxTrainer` (for ``lrscope.range_test``, sweeps and the CLI); the same
#: arguments as the class (an alias, so the two signatures cannot drift apart).
trainer = JaxTrainer


@overload
def find_lr(
    loss_fn: LossFn,
    params: Any,
    optimizer: Any,
    batches: Any,
    *,
    return_params: Literal[False] = ...,
    **options: Any,
) -> RangeTestResult: ...


@overload
def find_lr(
    loss_fn: LossFn,
    params: Any,
    optimizer: Any,
    batches: Any,
    *,
    return_params: Literal[True],
    **options: Any,
) -> tuple[RangeTestResult, Any]: ...


def find_lr(
    loss_fn: LossFn,
    params: Any,
    optimizer: Any,
    batches: Any,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 100,
    mode: str = "exp",
    has_aux: bool = False,
    batch_size: int | None = None,
    key: Any = None,
    opt_state: Any = None,
    eval_batch: Any = None,
    eval_every: int | None = None,
    beta: float = 0.98,
    diverge_factor: float = 3.0,
    stop_on_divergence: bool = True,
    raise_on_divergence: bool = False,
    chunk_size: int | None = None,
    lr_diverge: float | None = None,
    metadata: Mapping[str, str | int | float | bool | None] | None = None,
    progress: bool = False,
    retest: bool = True,
    return_params: bool = False,
) -> RangeTestResult | tuple[RangeTestResult, Any]:
    """LR range test of a JAX loss with an optax optimizer, compiled once, run in chunks.

    ``loss_fn(params, batch) -> scalar`` (``(loss, aux)`` with ``has_aux=True``; with a PRNG
    ``key``, ``loss_fn(params, batch, key)`` gets a fresh split every step). ``optimizer`` is
    ``optax.inject_hyperparams(optax.adam)(learning_rate=...)`` (any transformation whose
    state holds one ``hyperparams["learning_rate"]``) or a factory ``lambda lr: optax.adam(lr)``.
    ``batches`` is an iterable of batch pytrees, or an array pytree with ``batch_size=N``
    (cut into batches of N rows along axis 0, cycled). ``opt_state`` continues from an
    existing optimizer state instead of a fresh ``optimizer.init(params)``. With
    ``eval_batch``, the loss on it is recorded every ``eval_every`` steps (default: once per
    chunk). The other options are those of :func:`lrscope.range_test`.

    Returns the :class:`~lrscope.RangeTestResult` (its metadata records ``compilations``:
    1 for a whole test); with ``return_params=True`` the pair ``(result, final_params)``,
    the params after the last step the test ran (``result.n_steps`` steps; NaN after an
    overflow), for inspection: ``params`` itself is never changed.

    >>> result = find_lr(loss_fn, params, lambda lr: optax.adam(lr), (x, y),
    ...                  batch_size=32, start_lr=1e-5, end_lr=1.0)     # doctest: +SKIP
    >>> result.suggest().lr                                            # doctest: +SKIP
    """
    if not isinstance(return_params, bool):
        raise invalid("return_params", "must be True or False", return_params=return_params)
    # The trainer compiles for the length of the engine's first chunk (its constant size).
    jax_trainer = JaxTrainer(
        loss_fn,
        params,
        optimizer,
        batches,
        batch_size=batch_size,
        has_aux=has_aux,
        key=key,
        opt_state=opt_state,
        eval_batch=eval_batch,
    )
    if eval_batch is not None and eval_every is None and isinstance(steps, int):
        eval_every = chunk_size or auto_chunk(steps)  # once per chunk: no extra host syncs
    result = range_test(
        jax_trainer,
        start_lr=start_lr,
        end_lr=end_lr,
        steps=steps,
        mode=mode,
        beta=beta,
        diverge_factor=diverge_factor,
        stop_on_divergence=stop_on_divergence,
        raise_on_divergence=raise_on_divergence,
        chunk_size=chunk_size,
        eval_every=eval_every,
        lr_diverge=lr_diverge,
        metadata={**jax_trainer.metadata(), **(metadata or {})},
        progress=progress,
        retest=retest,
    )
    # Recorded after the run: how many times the chunk was compiled (1 unless retraced).
    result = dataclasses.replace(
        result, metadata={**result.metadata, "compilations": jax_trainer.compilations}
    )
    if return_params:
        return result, jax_trainer.final_params
    return result
