"""TensorFlow custom loops (the lesson's own pattern) through lrscope.tensorflow."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import needs

pytestmark = [pytest.mark.tensorflow, needs("tensorflow")]

tf = pytest.importorskip("tensorflow")

import lrscope  # noqa: E402
import lrscope.tensorflow as ltf  # noqa: E402
from lrscope.lab.linreg import B0, W0, gradient_descent  # noqa: E402
from lrscope.testing import check_trainer, state_differences  # noqa: E402


def lesson_loop(data):
    """The course's code: tf.Variable w, b; GradientTape; assign_sub(lr * grad)."""
    x, y = tf.constant(data.x), tf.constant(data.y)
    w, b = tf.Variable(W0, dtype=tf.float32), tf.Variable(B0, dtype=tf.float32)

    @tf.function
    def train_step(lr):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(w * x + b - y))
        dw, db = tape.gradient(loss, [w, b])
        w.assign_sub(lr * dw)
        b.assign_sub(lr * db)
        return loss

    return train_step, w, b


def test_lesson_loop_matches_numpy_gd_and_traces_once(lesson_data):
    train_step, w, b = lesson_loop(lesson_data)
    trainer = ltf.trainer(train_step, [w, b])
    for lr in (0.1, 0.5):
        state = trainer.snapshot()
        losses = trainer.run(np.full(200, lr))
        reference = gradient_descent(lesson_data, lr, 200)
        np.testing.assert_allclose(losses, reference.loss[:200], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose([w.numpy(), b.numpy()], reference.path[200], rtol=1e-4)
        trainer.restore(state)
    assert train_step.experimental_get_tracing_count() == 1


def test_range_test_restores_and_never_retraces(lesson_data):
    train_step, w, b = lesson_loop(lesson_data)
    result = ltf.find_lr(train_step, [w, b], start_lr=1e-4, end_lr=10.0, steps=100)
    assert result.stop_reason == "diverged"
    assert (w.numpy(), b.numpy()) == (np.float32(W0), np.float32(B0))
    assert train_step.experimental_get_tracing_count() == 1
    # same curve as the NumPy lesson trainer, to float32 tolerance
    numpy_result = lrscope.range_test(
        lrscope.lab.linreg.linreg_trainer(lesson_data), start_lr=1e-4, end_lr=10.0, steps=100
    )
    assert numpy_result.n_steps == result.n_steps
    np.testing.assert_allclose(result.loss[:80], numpy_result.loss[:80], rtol=1e-4)


def test_conformance_and_bitwise_restore_with_a_keras_optimizer(lesson_data):
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("a Keras optimizer inside a tf.function needs the TensorFlow backend")
    x, y = tf.constant(lesson_data.x), tf.constant(lesson_data.y)
    w, b = tf.Variable(W0, dtype=tf.float32), tf.Variable(B0, dtype=tf.float32)
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    optimizer.build([w, b])

    @tf.function
    def train_step(lr):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(w * x + b - y))
        optimizer.apply_gradients(zip(tape.gradient(loss, [w, b]), [w, b], strict=True))
        return loss

    trainer = ltf.trainer(train_step, [w, b], optimizer=optimizer)
    before = trainer.snapshot()
    check_trainer(trainer, lrs=(1e-3, 1e-2, 0.1), diverge_lr=100.0)
    assert not state_differences(before, trainer.snapshot())
    assert int(optimizer.iterations.numpy()) == 0
    assert train_step.experimental_get_tracing_count() == 1


def test_restore_after_an_exception_in_the_step(lesson_data):
    train_step, w, b = lesson_loop(lesson_data)
    calls = []

    def failing(lr):
        calls.append(1)
        if len(calls) == 10:
            raise RuntimeError("boom")
        return train_step(lr)

    with pytest.raises(RuntimeError, match="boom"):
        ltf.find_lr(failing, [w, b], steps=20, chunk_size=4)
    assert (w.numpy(), b.numpy()) == (np.float32(W0), np.float32(B0))


def test_bad_arguments_are_named():
    w = tf.Variable(1.0)
    with pytest.raises(lrscope.InvalidParameterError, match="`variables`"):
        ltf.trainer(lambda lr: 0.0, [])
    with pytest.raises(lrscope.InvalidParameterError, match=r"`learning_rate` must be a tf\.Var"):
        ltf.trainer(lambda lr: 0.0, [w], learning_rate=0.1)
    with pytest.raises(lrscope.InvalidParameterError, match="scalar loss"):
        ltf.trainer(lambda lr: tf.zeros(3), [w]).run(np.array([0.1]))


def test_a_step_without_the_lr_argument_is_refused_before_anything_runs(lesson_data):
    """The course's step often reads a Python float LR and takes no argument; called with the
    LR variable it failed inside the first step with tf.function's binding error."""
    x, y = tf.constant(lesson_data.x), tf.constant(lesson_data.y)
    w, b = tf.Variable(W0, dtype=tf.float32), tf.Variable(B0, dtype=tf.float32)

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(w * x + b - y))
        dw, db = tape.gradient(loss, [w, b])
        w.assign_sub(0.1 * dw)
        b.assign_sub(0.1 * db)
        return loss

    with pytest.raises(lrscope.InvalidParameterError) as info:
        ltf.find_lr(train_step, [w, b], start_lr=1e-4, steps=20)
    message = str(info.value)
    assert "`step` must take the learning rate as its one argument" in message
    assert "Received: signature='train_step()'" in message and "\n" not in message
    assert train_step.experimental_get_tracing_count() == 0  # never called
    assert (w.numpy(), b.numpy()) == (np.float32(W0), np.float32(B0))


def test_one_variable_may_be_given_alone(lesson_data):
    """find_lr(step, w) for a step that changes one (non-scalar) variable: it is that variable,
    not its rows, that is snapshot and restored (list() of a tf.Variable iterates its rows)."""
    x, y = tf.constant(lesson_data.x), tf.constant(lesson_data.y)
    wb = tf.Variable(np.array([W0, B0], dtype=np.float32))

    @tf.function
    def train_step(lr):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(wb[0] * x + wb[1] - y))
        wb.assign_sub(lr * tape.gradient(loss, wb))
        return loss

    result = ltf.find_lr(train_step, wb, start_lr=1e-4, end_lr=10.0, steps=100)
    assert result.stop_reason == "diverged"
    np.testing.assert_array_equal(wb.numpy(), np.array([W0, B0], dtype=np.float32))
