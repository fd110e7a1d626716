"""The lesson's gradient descent written in each framework, the way its users write it.

TensorFlow: ``tf.Variable`` w and b, a ``GradientTape`` and ``assign_sub(lr * grad)`` (the
course's own code); PyTorch: tensors with ``requires_grad``, ``backward()`` and an in-place
update under ``no_grad``; JAX: ``jax.grad`` of the loss and a jitted ``lax.scan`` over the
steps. All run in float32 from the same data and return the same :class:`GDRun` objects as
the NumPy reference (:func:`lrscope.lab.linreg.gradient_descent`), regime read by the same
:func:`~lrscope.lab.linreg.observed_regime`, so ``lrscope demo --framework X`` prints the
same table and the numbers agree with NumPy to float32 round-off (the frameworks sum in
their own order).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from lrscope.adapters.stepfn import FunctionTrainer
from lrscope.core.trainer import Trainer
from lrscope.errors import invalid, require
from lrscope.lab.linreg import (
    B0,
    W0,
    GDRun,
    LinRegData,
    Moments,
    gradient_descent,
    linreg_trainer,
    observed_regime,
)

FRAMEWORKS = ("numpy", "tensorflow", "torch", "jax")
DISPLAY_NAMES = {"numpy": "NumPy", "tensorflow": "TensorFlow", "torch": "PyTorch", "jax": "JAX"}
_EXTRAS = {"tensorflow": "tensorflow", "torch": "torch", "jax": "jax"}


def check_framework(framework: str) -> str:
    if framework not in FRAMEWORKS:
        raise invalid("framework", f"must be one of {', '.join(FRAMEWORKS)}", framework=framework)
    if framework != "numpy":
        require(framework, f"the lesson on {DISPLAY_NAMES[framework]}", _EXTRAS[framework])
    return framework


def _as_run(data: LinRegData, lr: float, steps: int, path: np.ndarray, loss: np.ndarray) -> GDRun:
    """Cut a framework's iterates at the first non-finite value, exactly as the NumPy loop
    stops there, and read the regime the same way."""
    path = np.asarray(path, dtype=np.float64).reshape(steps + 1, 2)
    loss = np.asarray(loss, dtype=np.float64).reshape(steps + 1)
    finite = np.isfinite(loss) & np.isfinite(path).all(axis=1)
    diverged_at = None if finite.all() else int(np.argmin(finite))
    if diverged_at is not None:
        path, loss = path.copy(), loss.copy()
        path[diverged_at + 1 :] = np.nan
        loss[diverged_at + 1 :] = np.nan
    return GDRun(
        lr=float(lr),
        steps=steps,
        path=path,
        loss=loss,
        diverged_at_step=diverged_at,
        regime=observed_regime(path, loss, diverged_at, Moments.of(data)),
    )


# -- TensorFlow: the course's code ------------------------------------------------------------


def _tf_model(data: LinRegData, w0: float, b0: float) -> tuple[Any, Any, Any, Callable[..., Any]]:
    import tensorflow as tf

    x, y = tf.constant(data.x), tf.constant(data.y)
    w = tf.Variable(w0, dtype=tf.float32)
    b = tf.Variable(b0, dtype=tf.float32)

    @tf.function
    def train_step(lr: Any) -> Any:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(w * x + b - y))
        dw, db = tape.gradient(loss, [w, b])
        w.assign_sub(lr * dw)
        b.assign_sub(lr * db)
        return loss

    return tf, w, b, train_step


@functools.lru_cache(maxsize=2)
def _tf_runner(data: LinRegData) -> Callable[[float, int, float, float], tuple[Any, Any]]:
    """One model and one traced step per data set (LinRegData hashes by identity), reused
    for every LR: the LR is a variable, so it never retraces."""
    tf, w, b, train_step = _tf_model(data, W0, B0)
    rate = tf.Variable(0.0, dtype=tf.float32)
    x, y = tf.constant(data.x), tf.constant(data.y)

    def run(lr: float, steps: int, w0: float, b0: float) -> tuple[Any, Any]:
        w.assign(w0)
        b.assign(b0)
        rate.assign(lr)
        points, losses = [], []
        for _ in range(steps):
            points.append(tf.stack([w.read_value(), b.read_value()]))
            losses.append(train_step(rate))
        points.append(tf.stack([w.read_value(), b.read_value()]))
        losses.append(tf.reduce_mean(tf.square(w * x + b - y)))
        return tf.stack(points).numpy(), tf.stack(losses).numpy()

    return run


def _tf_gd(data: LinRegData, lr: float, steps: int, w0: float, b0: float) -> GDRun:
    path, loss = _tf_runner(data)(lr, steps, w0, b0)
    return _as_run(data, lr, steps, path, loss)


def _tf_trainer(data: LinRegData) -> Trainer:
    from lrscope.adapters.tf import trainer

    _, w, b, train_step = _tf_model(data, W0, B0)
    return trainer(train_step, [w, b])


# -- PyTorch: autograd -----------------------------------------------------------------------


def _torch_model(data: LinRegData, w0: float, b0: float) -> tuple[Any, Any, Callable[..., Any]]:
    import torch

    x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)
    w = torch.tensor(w0, dtype=torch.float32, requires_grad=True)
    b = torch.tensor(b0, dtype=torch.float32, requires_grad=True)

    def train_step(lr: float) -> Any:
        loss = torch.mean((w * x + b - y) ** 2)
        loss.backward()
        with torch.no_grad():
            rate = torch.tensor(lr, dtype=torch.float32)
            w.sub_(rate * w.grad)
            b.sub_(rate * b.grad)
            w.grad = None
            b.grad = None
        return loss.detach()

    return w, b, train_step


def _torch_gd(data: LinRegData, lr: float, steps: int, w0: float, b0: float) -> GDRun:
    import torch

    w, b, train_step = _torch_model(data, w0, b0)
    points, losses = [], []
    for _ in range(steps):
        points.append(torch.stack([w.detach().clone(), b.detach().clone()]))
        losses.append(train_step(lr))
    points.append(torch.stack([w.detach().clone(), b.detach().clone()]))
    with torch.no_grad():
        x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)
        losses.append(torch.mean((w * x + b - y) ** 2))
    return _as_run(data, lr, steps, torch.stack(points).numpy(), torch.stack(losses).numpy())


def _torch_trainer(data: LinRegData) -> Trainer:
    import torch

    w, b, train_step = _torch_model(data, W0, B0)

    def snapshot() -> list[Any]:
        return [w.detach().clone(), b.detach().clone()]

    def restore(state: list[Any]) -> None:
        with torch.no_grad():
            w.copy_(state[0])
            b.copy_(state[1])

    return FunctionTrainer(train_step, snapshot, restore)


# -- JAX: jax.grad and a jitted scan --------------------------------------------------------------


def _jax_functions(data: LinRegData) -> tuple[Any, Callable[..., Any], Callable[..., Any]]:
    import jax
    import jax.numpy as jnp

    x, y = jnp.asarray(data.x), jnp.asarray(data.y)

    def loss_fn(params: Any) -> Any:
        w, b = params
        return jnp.mean((w * x + b - y) ** 2)

    grad_fn = jax.value_and_grad(loss_fn)

    @jax.jit
    def step(params: Any, lr: Any) -> Any:
        loss, grads = grad_fn(params)
        return params - lr * grads, loss

    @jax.jit
    def run(params: Any, lrs: Any) -> Any:
        def body(p: Any, lr: Any) -> Any:
            new, loss = step(p, lr)
            return new, (p, loss)

        final, (points, losses) = jax.lax.scan(body, params, lrs)
        return final, points, losses

    return jnp, run, loss_fn


def _jax_gd(data: LinRegData, lr: float, steps: int, w0: float, b0: float) -> GDRun:
    jnp, run, loss_fn = _jax_functions(data)
    params = jnp.array([w0, b0], dtype=jnp.float32)
    final, points, losses = run(params, jnp.full(steps, lr, dtype=jnp.float32))
    path = np.concatenate([np.asarray(points), np.asarray(final)[None]])
    loss = np.concatenate([np.asarray(losses), [np.asarray(loss_fn(final))]])
    return _as_run(data, lr, steps, path, loss)


def _jax_trainer(data: LinRegData) -> Trainer:
    jnp, run, _ = _jax_functions(data)
    state = {"params": jnp.array([W0, B0], dtype=jnp.float32)}

    class JaxLessonTrainer:
        """One jitted scan per chunk: one host sync per chunk."""

        def run(self, lrs: np.ndarray) -> np.ndarray:
            final, _, losses = run(state["params"], jnp.asarray(lrs, dtype=jnp.float32))
            state["params"] = final
            return np.asarray(losses, dtype=np.float64)

        def snapshot(self) -> np.ndarray:
            return np.array(state["params"], copy=True)

        def restore(self, saved: np.ndarray) -> None:
            state["params"] = jnp.asarray(saved)

    return JaxLessonTrainer()


# -- the front door ---------------------------------------------------------------------------


def lesson_gd(
    data: LinRegData,
    lr: float,
    steps: int,
    framework: str = "numpy",
    w0: float = W0,
    b0: float = B0,
) -> GDRun:
    """Full-batch float32 GD on the lesson's data in ``framework``; a :class:`GDRun`."""
    check_framework(framework)
    if framework == "numpy":
        return gradient_descent(data, lr, steps, w0, b0)
    if not (lr > 0 and np.isfinite(lr)):
        raise invalid("lr", "must be a positive finite number", lr=lr)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise invalid("steps", "must be an integer >= 1", steps=steps)
    run = {"tensorflow": _tf_gd, "torch": _torch_gd, "jax": _jax_gd}[framework]
    return run(data, lr, steps, w0, b0)


def lesson_trainer(data: LinRegData, framework: str = "numpy") -> Trainer:
    """The lesson as a :class:`~lrscope.Trainer` in ``framework`` (for its range test)."""
    check_framework(framework)
    make = {
        "numpy": linreg_trainer,
        "tensorflow": _tf_trainer,
        "torch": _torch_trainer,
        "jax": _jax_trainer,
    }[framework]
    return make(data)
