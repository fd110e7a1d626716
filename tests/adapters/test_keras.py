"""Keras adapter: run once per backend (``make test`` sets KERAS_BACKEND; never set here)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import needs

pytestmark = [pytest.mark.keras, needs("keras")]

keras = pytest.importorskip("keras")

import lrscope  # noqa: E402
import lrscope.keras as lk  # noqa: E402
from lrscope.testing import check_trainer, state_differences  # noqa: E402

BACKEND = keras.backend.backend()
N, D, BATCH = 96, 4, 16


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, D)).astype("float32")
    y = (x @ rng.normal(size=(D, 1)) + 0.3 + rng.normal(0, 0.1, (N, 1))).astype("float32")
    return x, y


def linear_model(optimizer, jit_compile="auto", steps_per_execution=1, run_eagerly=False):
    """Dense(1) with fixed weights: its MSE gradient has a closed form for the reference."""
    model = keras.Sequential([keras.Input((D,)), keras.layers.Dense(1)])
    model.layers[0].set_weights(
        [np.linspace(-0.5, 0.5, D, dtype="float32").reshape(D, 1), np.array([0.1], "float32")]
    )
    model.compile(
        optimizer=optimizer,
        loss="mse",
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
        run_eagerly=run_eagerly,
    )
    return model


def stateful_model(optimizer=None, seed=0):
    """Dropout (seed-generator state) + BatchNorm (moving statistics) + Adam (slots)."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((D,)),
            keras.layers.Dense(8),
            keras.layers.BatchNormalization(),
            keras.layers.Activation("relu"),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=optimizer or keras.optimizers.Adam(1e-3), loss="mse")
    return model


def reference_sgd(x, y, lrs, momentum=0.0):
    """Keras SGD on Dense(1)+MSE in float64 NumPy: m = mu m - lr g; w += m (in batch order)."""
    w = np.linspace(-0.5, 0.5, D).reshape(D, 1)
    b = np.array([0.1])
    mw, mb = np.zeros_like(w), np.zeros_like(b)
    losses = []
    for i, lr in enumerate(lrs):
        xb, yb = x[i * BATCH : (i + 1) * BATCH].astype(float), y[i * BATCH : (i + 1) * BATCH]
        err = xb @ w + b - yb
        losses.append(np.mean(err**2))
        gw, gb = 2 * xb.T @ err / len(xb), 2 * err.mean(0)
        mw, mb = momentum * mw - lr * gw, momentum * mb - lr * gb
        w, b = w + mw, b + mb
    return np.array(losses), w, b


def snapshot_of(model):
    return [
        np.array(keras.ops.convert_to_numpy(v)) for v in model.variables + model.optimizer.variables
    ]


# -- the numbers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("execution", ["jit", "no_jit", "eager"])
def test_losses_and_weights_follow_the_lr_ramp(data, momentum, execution):
    if execution == "jit" and BACKEND == "torch":
        pytest.skip("torch.compile takes minutes on CPU; the eager torch path is tested")
    x, y = data
    model = linear_model(
        keras.optimizers.SGD(0.01, momentum=momentum),
        jit_compile=execution == "jit",
        run_eagerly=execution == "eager",
    )
    trainer = lk.trainer(model, x, y, batch_size=BATCH, shuffle=False)
    lrs = np.geomspace(1e-3, 0.3, N // BATCH)
    losses = trainer.run(lrs)
    want_losses, want_w, want_b = reference_sgd(x, y, lrs, momentum)
    np.testing.assert_allclose(losses, want_losses, rtol=2e-5)
    kernel, bias = model.layers[0].get_weights()
    np.testing.assert_allclose(kernel, want_w, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(bias, want_b, rtol=2e-5, atol=1e-6)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == len(lrs)


@pytest.mark.parametrize("optimizer", ["sgd_momentum", "adamw"])
def test_per_batch_loss_equals_train_on_batch(data, optimizer):
    x, y = data

    def make():
        opt = (
            keras.optimizers.SGD(0.01, momentum=0.9)
            if optimizer == "sgd_momentum"
            else keras.optimizers.AdamW(1e-3, weight_decay=0.01)
        )
        return linear_model(opt)

    model, reference = make(), make()
    lrs = np.geomspace(1e-4, 1e-1, N // BATCH)
    losses = lk.trainer(model, x, y, batch_size=BATCH, shuffle=False).run(lrs)
    want = []
    for i, lr in enumerate(lrs):
        reference.optimizer.learning_rate = float(lr)
        logs = reference.train_on_batch(
            x[i * BATCH : (i + 1) * BATCH], y[i * BATCH : (i + 1) * BATCH], return_dict=True
        )
        want.append(logs["loss"])
    np.testing.assert_allclose(losses, want, rtol=1e-6)
    for got, ref in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-7)


def test_find_lr_returns_per_batch_losses_not_the_epoch_mean(data):
    x, y = data
    result = lk.find_lr(
        linear_model(keras.optimizers.SGD(0.01)),
        x,
        y,
        batch_size=BATCH,
        shuffle=False,
        start_lr=1e-3,
        end_lr=0.3,
        steps=N // BATCH,
    )
    want, _, _ = reference_sgd(x, y, result.lr)
    np.testing.assert_allclose(result.loss, want, rtol=2e-5)
    assert result.metadata["backend"] == BACKEND
    running_mean = np.cumsum(want) / np.arange(1, want.size + 1)
    assert not np.allclose(result.loss, running_mean, rtol=1e-3)


def test_steps_per_execution_above_one_still_gives_every_batch(data):
    x, y = data
    lrs = np.geomspace(1e-3, 0.3, N // BATCH)
    want, _, _ = reference_sgd(x, y, lrs)
    spe = 1 if BACKEND == "torch" else 3  # torch refuses steps_per_execution > 1 itself
    model = linear_model(keras.optimizers.SGD(0.01), steps_per_execution=spe)
    losses = lk.trainer(model, x, y, batch_size=BATCH, shuffle=False).run(lrs)
    np.testing.assert_allclose(losses, want, rtol=2e-5)


# -- restore ---------------------------------------------------------------------------------


def test_conformance_and_restore_after_divergence(data):
    x, y = data
    model = stateful_model()
    trainer = lk.trainer(model, x, y, batch_size=BATCH)
    before = snapshot_of(model)
    check_trainer(trainer, lrs=(1e-3, 1e-2, 1e-1), diverge_lr=1e4)
    assert not state_differences(before, snapshot_of(model))
    history = model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)  # the model still trains
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.skipif(BACKEND != "torch", reason="the torch RNG matters on the torch backend")
def test_torch_rng_is_restored(data):
    import torch

    x, y = data
    model = stateful_model()
    rng_before = torch.get_rng_state()
    lk.find_lr(model, x, y, batch_size=BATCH, steps=8)
    assert torch.equal(rng_before, torch.get_rng_state())


def test_restore_is_bitwise_after_success_exception_and_interrupt(data):
    x, y = data
    model = stateful_model(keras.optimizers.SGD(0.05, momentum=0.9))
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)  # non-zero momenta and iterations
    before = snapshot_of(model)

    result = lk.find_lr(model, x, y, batch_size=BATCH, steps=12, end_lr=1.0)
    assert result.stop_reason == "completed"
    assert not state_differences(before, snapshot_of(model))

    for error, outcome in ((RuntimeError("boom"), "raises"), (KeyboardInterrupt(), "interrupted")):
        trainer = lk.trainer(model, x, y, batch_size=BATCH)
        draw, calls = trainer._next_batch, []

        def failing_draw(draw=draw, calls=calls, error=error):
            calls.append(1)
            if len(calls) == 7:
                raise error
            return draw()

        trainer._next_batch = failing_draw
        if outcome == "raises":
            with pytest.raises(RuntimeError, match="boom"):
                lrscope.range_test(trainer, steps=12, chunk_size=4)
        else:
            partial = lrscope.range_test(trainer, steps=12, chunk_size=4)
            assert partial.stop_reason == "interrupted" and partial.n_steps == 4
        assert not state_differences(before, snapshot_of(model)), outcome


def test_schedule_is_swapped_for_the_test_and_the_same_object_put_back(data):
    x, y = data
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-2, decay_steps=5, decay_rate=0.5)
    optimizer = keras.optimizers.SGD(schedule, momentum=0.9)
    model = linear_model(optimizer)
    trainer = lk.trainer(model, x, y, batch_size=BATCH, shuffle=False)
    before = snapshot_of(model)
    lrs = np.geomspace(1e-3, 0.3, N // BATCH)
    losses = trainer.run(lrs)
    want, w, _ = reference_sgd(x, y, lrs, momentum=0.9)  # the ramp, not the schedule, applied
    np.testing.assert_allclose(losses, want, rtol=2e-5)
    np.testing.assert_allclose(model.layers[0].get_weights()[0], w, rtol=2e-5, atol=1e-6)
    assert optimizer._learning_rate is schedule
    trainer.restore(trainer.snapshot())
    check_trainer(trainer)
    lk.find_lr(model, x, y, batch_size=BATCH, steps=6)
    assert optimizer._learning_rate is schedule
    assert len(optimizer.variables) == len(before) - len(model.variables)
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)  # still trains with the schedule


# -- data inputs -------------------------------------------------------------------------


def _inputs(kind, x, y):
    if kind == "tf.data":
        import tensorflow as tf

        return tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)
    if kind == "generator":
        return ((x[i : i + BATCH], y[i : i + BATCH]) for i in range(0, N, BATCH))
    if kind == "PyDataset":

        class Batches(keras.utils.PyDataset):
            def __len__(self):
                return N // BATCH

            def __getitem__(self, i):
                return x[i * BATCH : (i + 1) * BATCH], y[i * BATCH : (i + 1) * BATCH]

        return Batches()
    import torch

    dataset = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    return torch.utils.data.DataLoader(dataset, batch_size=BATCH)


@pytest.mark.parametrize("kind", ["tf.data", "generator", "PyDataset", "DataLoader"])
def test_datasets_generators_and_loaders_give_the_same_losses_as_arrays(data, kind):
    pytest.importorskip("tensorflow" if kind == "tf.data" else "numpy")
    if kind == "DataLoader":
        pytest.importorskip("torch")
    x, y = data
    lrs = np.geomspace(1e-3, 0.3, N // BATCH)
    want, _, _ = reference_sgd(x, y, lrs)
    model = linear_model(keras.optimizers.SGD(0.01))
    trainer = lk.trainer(model, _inputs(kind, x, y))
    np.testing.assert_allclose(trainer.run(lrs), want, rtol=2e-5)
    if kind != "generator":
        check_trainer(trainer, lrs=np.full(2 * N // BATCH, 1e-3))  # two epochs, rewound


def test_validation_data_gives_held_out_losses(data):
    x, y = data
    model = linear_model(keras.optimizers.SGD(0.01))
    result = lk.find_lr(
        model, x, y, batch_size=BATCH, steps=10, end_lr=0.1, validation_data=(x[:32], y[:32])
    )
    assert result.val_step.tolist() == list(range(1, 11))
    assert np.all(np.isfinite(result.val_loss))


# -- the fit callback ------------------------------------------------------------------------


def test_callback_records_batch_losses_and_restores(data):
    x, y = data
    model = linear_model(keras.optimizers.SGD(0.01, momentum=0.9))
    model.optimizer.build(model.trainable_variables)  # the callback builds it too (zero slots)
    before = snapshot_of(model)
    callback = lk.LRRangeTest(start_lr=1e-3, end_lr=0.3, steps=N // BATCH)
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0, callbacks=[callback])
    result = callback.result
    want, _, _ = reference_sgd(x, y, result.lr, momentum=0.9)
    np.testing.assert_allclose(result.loss, want, rtol=2e-5)
    assert result.n_steps == N // BATCH
    assert not state_differences(before, snapshot_of(model))


def test_callback_refuses_steps_per_execution_above_one(data):
    if BACKEND == "torch":
        pytest.skip("torch backend refuses steps_per_execution > 1 at compile")
    x, y = data
    model = linear_model(keras.optimizers.SGD(0.01), steps_per_execution=2)
    with pytest.raises(ValueError, match="steps_per_execution=1"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[lk.LRRangeTest(steps=4)])


# -- clear errors ------------------------------------------------------------------------------


def test_uncompiled_model_is_refused(data):
    x, y = data
    model = keras.Sequential([keras.Input((D,)), keras.layers.Dense(1)])
    with pytest.raises(lrscope.InvalidParameterError, match="must be compiled"):
        lk.find_lr(model, x, y)


def test_model_without_trainable_weights_is_refused(data):
    x, y = data
    model = keras.Sequential([keras.Input((D,)), keras.layers.Dense(1, trainable=False)])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(lrscope.InvalidParameterError, match="trainable weights"):
        lk.find_lr(model, x, y)


def test_empty_data_is_refused(data):
    x, y = data
    model = linear_model(keras.optimizers.SGD(0.01))
    with pytest.raises(lrscope.InvalidParameterError, match="at least one sample"):
        lk.find_lr(model, x[:0], y[:0])
    with pytest.raises((lrscope.InvalidParameterError, ValueError)):
        lk.find_lr(model, (b for b in []))


def test_a_generator_that_runs_out_is_a_clear_error(data):
    x, y = data
    model = linear_model(keras.optimizers.SGD(0.01))
    batches = ((x[i : i + BATCH], y[i : i + BATCH]) for i in range(0, N, BATCH))
    before = snapshot_of(model)
    with pytest.raises(lrscope.InvalidParameterError, match="ran out after 6 batch"):
        lk.find_lr(model, batches, steps=20, chunk_size=4)
    assert not state_differences(before, snapshot_of(model))


@pytest.mark.skipif(BACKEND != "jax", reason="JAX compile cache")
def test_jax_step_compiles_once(data):
    x, y = data
    trainer = lk.trainer(linear_model(keras.optimizers.SGD(0.01)), x, y, batch_size=BATCH)
    for _ in range(3):
        trainer.run(np.full(4, 1e-3))
    assert trainer._compiled_step()._cache_size() == 1


# -- evaluate(): the value model.evaluate returns, without its per-call setup --------------------


def regularized_model(execution="default"):
    """Dense(8, L2 kernel regularizer) + Dropout + Dense(1), MSE with an MAE metric: the
    evaluated loss includes the regularization term, the metric must stay untouched."""
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((D,)),
            keras.layers.Dense(
                8, activation="relu", kernel_regularizer=keras.regularizers.L2(0.05)
            ),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(1),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.01),
        loss="mse",
        metrics=["mae"],
        jit_compile=False if execution == "no_jit" else "auto",
        run_eagerly=execution == "eager",
    )
    return model


def keras_evaluate(model, x, y, weights=None):
    return model.evaluate(x, y, sample_weight=weights, verbose=0, return_dict=True)["loss"]


@pytest.mark.parametrize("execution", ["default", "no_jit", "eager"])
def test_evaluate_equals_model_evaluate_and_leaves_the_state_alone(data, execution):
    x, y = data
    rng = np.random.default_rng(1)
    rows = 75  # not a multiple of evaluate's batch size 32: a short last batch
    x_val = rng.normal(size=(rows, D)).astype("float32")
    y_val = rng.normal(size=(rows, 1)).astype("float32")
    weights = rng.uniform(0.1, 3.0, rows).astype("float32")
    model = regularized_model(execution)
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)  # metric variables not at zero
    for validation in ((x_val, y_val), (x_val, y_val, weights)):
        trainer = lk.trainer(model, x, y, batch_size=BATCH, validation_data=validation)
        if BACKEND == "torch":
            model.train()  # model.evaluate would leave the module in eval mode
        before = trainer.snapshot()
        got = [trainer.evaluate() for _ in range(3)]  # the first one prepares the batches
        assert not state_differences(before, trainer.snapshot())  # metrics, torch RNG too
        if BACKEND == "torch":
            assert model.training
        want = keras_evaluate(model, *validation)
        np.testing.assert_allclose(got, [want] * 3, rtol=1e-6)
    # The regularization term is large enough that leaving it out would fail the comparison.
    assert float(keras.ops.convert_to_numpy(keras.ops.sum(model.losses))) > 1e-2


def test_without_validation_data_verify_ranks_by_training_loss(data):
    """No validation_data, no evaluate(): verify (and the CLI's --budget) rank by training
    loss instead of failing on an evaluate() that raised."""
    x, y = data
    model = linear_model(keras.optimizers.SGD(0.01))
    trainer = lk.trainer(model, x, y, batch_size=BATCH)
    assert getattr(trainer, "evaluate", None) is None
    with pytest.raises(AttributeError, match="validation_data"):
        trainer.evaluate()
    before = snapshot_of(model)
    checked = lrscope.verify(trainer, [0.01, 0.03], steps=4, refine=False)
    assert checked.score_kind == "train_tail"
    np.testing.assert_allclose(checked.scores, checked.losses[:, -1])
    for was, now in zip(before, snapshot_of(model), strict=True):
        np.testing.assert_array_equal(was, now)


def test_evaluate_follows_the_weights_as_they_change(data):
    x, y = data
    model = regularized_model()
    trainer = lk.trainer(model, x, y, batch_size=BATCH, validation_data=(x[:40], y[:40]))
    first = trainer.evaluate()
    trainer.run(np.full(3, 0.05))
    np.testing.assert_allclose(trainer.evaluate(), keras_evaluate(model, x[:40], y[:40]), rtol=1e-6)
    assert trainer.evaluate() != first


def test_evaluate_of_a_dataset_goes_through_model_evaluate(data):
    tf = pytest.importorskip("tensorflow")
    x, y = data
    model = regularized_model()
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    dataset = tf.data.Dataset.from_tensor_slices((x[:50], y[:50])).batch(16)
    trainer = lk.trainer(model, x, y, batch_size=BATCH, validation_data=dataset)
    before = trainer.snapshot()
    got = trainer.evaluate()
    assert not state_differences(before, trainer.snapshot())
    np.testing.assert_allclose(
        got, model.evaluate(dataset, verbose=0, return_dict=True)["loss"], rtol=1e-6
    )


def test_evaluate_after_a_recompile_uses_the_new_loss(data):
    x, y = data
    model = regularized_model()
    validation = (x[:40], y[:40])
    trainer = lk.trainer(model, x, y, batch_size=BATCH, validation_data=validation)
    mse = trainer.evaluate()
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mae")
    trainer = lk.trainer(model, x, y, batch_size=BATCH, validation_data=validation)
    mae = trainer.evaluate()
    np.testing.assert_allclose(mae, keras_evaluate(model, *validation), rtol=1e-6)
    assert abs(mae - mse) > 1e-3
