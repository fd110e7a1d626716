"""lrscope.jax: a range test as jitted lax.scan chunks, checked against an eager optax loop."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import needs

pytestmark = [pytest.mark.jax, needs("jax"), needs("optax")]

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
optax = pytest.importorskip("optax")

import lrscope  # noqa: E402
from lrscope.errors import DivergenceError, InvalidParameterError  # noqa: E402
from lrscope.testing import check_trainer, state_differences  # noqa: E402

lrscope_jax = pytest.importorskip("lrscope.jax")

ROWS, FEATURES, CLASSES = 100, 6, 3


def make_data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(ROWS, FEATURES)).astype(np.float32)
    y = np.argmax(x @ rng.normal(size=(FEATURES, CLASSES)), axis=1).astype(np.int32)
    return x, y


def init_params(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "hidden": {
            "w": jnp.asarray(rng.normal(0, 0.4, (FEATURES, 16)), jnp.float32),
            "b": jnp.zeros(16, jnp.float32),
        },
        "out": {
            "w": jnp.asarray(rng.normal(0, 0.4, (16, CLASSES)), jnp.float32),
            "b": jnp.zeros(CLASSES, jnp.float32),
        },
    }


def logits_of(params, x):
    hidden = jnp.tanh(x @ params["hidden"]["w"] + params["hidden"]["b"])
    return hidden @ params["out"]["w"] + params["out"]["b"]


def loss_fn(params, batch):
    x, y = batch
    return optax.softmax_cross_entropy_with_integer_labels(logits_of(params, x), y).mean()


def squared_loss(params, batch):
    """Squared error on one-hot targets: at a huge LR it grows geometrically to inf, then NaN."""
    x, y = batch
    return jnp.mean((logits_of(params, x) - jax.nn.one_hot(y, CLASSES)) ** 2)


def dropout_loss(params, batch, key):
    x, y = batch
    keep = jax.random.bernoulli(key, 0.8, x.shape)
    return loss_fn(params, (jnp.where(keep, x / 0.8, 0.0), y))


def adam():
    return optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)


def array_batch(data, k, batch_size):
    """Batch k of an array dataset as the adapter documents it: rows k*bs.. modulo n."""
    rows = (k * batch_size + np.arange(batch_size)) % ROWS
    return tuple(a[rows] for a in data)


def eager_reference(loss, params, optimizer, lrs, batches, key=None):
    """A plain Python loop of optax updates, one step per LR, LR set in the state."""
    state = optimizer.init(params)
    losses = []
    for lr, batch in zip(lrs, batches, strict=False):
        hyper = dict(state.hyperparams, learning_rate=jnp.asarray(lr, jnp.float32))
        state = state._replace(hyperparams=hyper)
        if key is None:
            value, grads = jax.value_and_grad(loss)(params, batch)
        else:
            key, sub = jax.random.split(key)
            value, grads = jax.value_and_grad(loss)(params, batch, sub)
        updates, state = optimizer.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        losses.append(float(value))
    return np.array(losses), params


def assert_tree_close(a, b, rtol=1e-4, atol=1e-5):
    # float32 jit vs eager differ by fusion round-off, which Adam amplifies in tiny gradients
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def tree_bytes(tree):
    return [np.asarray(leaf).tobytes() for leaf in jax.tree_util.tree_leaves(tree)]


# --------------------------------------------------------------------------- conformance


def test_array_data_trainer_passes_check_trainer_and_compiles_once():
    trainer = lrscope_jax.trainer(
        loss_fn,
        init_params(),
        optax.inject_hyperparams(optax.sgd)(learning_rate=0.1),
        make_data(),
        batch_size=32,
    )
    check_trainer(trainer, lrs=[0.01, 0.1, 0.5], diverge_lr=1e7)
    assert trainer.compilations == 1


def test_iterator_trainer_with_typed_key_passes_check_trainer():
    # the iterator cannot rewind: replay after restore must come from the kept batches, and
    # the dropout key must be part of the snapshot
    x, y = make_data()
    batches = iter([(x[i : i + 20], y[i : i + 20]) for i in range(0, ROWS, 20)])
    trainer = lrscope_jax.trainer(
        dropout_loss, init_params(), adam(), batches, key=jax.random.key(3)
    )
    check_trainer(trainer, lrs=np.geomspace(1e-3, 1e-2, 7), diverge_lr=1e9)
    assert trainer.compilations == 1


@pytest.mark.parametrize("source", ["arrays", "iterator"])
def test_a_snapshot_taken_mid_way_replays_the_same_data_and_key(source):
    # check_trainer snapshots at the start only; here the data position and the key have
    # moved before the snapshot, so a restore that forgot either replays other steps
    x, y = make_data()
    if source == "arrays":
        batches, batch_size = (x, y), 15
    else:
        batches, batch_size = iter([(x[i : i + 15], y[i : i + 15]) for i in range(0, 90, 15)]), None
    trainer = lrscope_jax.trainer(
        dropout_loss,
        init_params(),
        adam(),
        batches,
        batch_size=batch_size,
        key=jax.random.PRNGKey(5),
        chunk_size=4,
    )
    trainer.run(np.full(5, 1e-3))
    middle = trainer.snapshot()
    assert middle["position"] == 5
    first = trainer.run(np.full(6, 1e-3))
    trainer.restore(middle)
    again = trainer.run(np.full(6, 1e-3))
    np.testing.assert_array_equal(first, again)


# --------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("chunk_size", [8, 37])
def test_losses_and_final_params_equal_an_eager_optax_loop(chunk_size):
    # 37 steps in chunks of 8: the last chunk (5) is padded with masked steps; batch_size 24
    # does not divide 100 rows, so batches wrap around the end of the data
    data, params = make_data(), init_params()
    result, final = lrscope_jax.find_lr(
        loss_fn,
        params,
        adam(),
        data,
        batch_size=24,
        start_lr=1e-4,
        end_lr=0.3,
        steps=37,
        chunk_size=chunk_size,
        stop_on_divergence=False,
        return_params=True,
    )
    batches = [array_batch(data, k, 24) for k in range(37)]
    expected, expected_params = eager_reference(loss_fn, params, adam(), result.lr, batches)
    assert result.n_steps == 37
    np.testing.assert_allclose(result.loss, expected, rtol=2e-5, atol=1e-6)
    assert_tree_close(final, expected_params)
    assert result.metadata["compilations"] == 1
    assert result.metadata["framework"] == "jax" and result.metadata["batch_size"] == 24


def test_public_module_exports_the_adapter():
    from lrscope.adapters import jax as adapter

    assert lrscope_jax.__all__ == ["JaxTrainer", "find_lr", "trainer"]
    assert lrscope_jax.find_lr is adapter.find_lr
    assert isinstance(
        lrscope_jax.trainer(loss_fn, init_params(), adam(), [make_data()]), lrscope.Trainer
    )


def test_factory_optimizer_key_and_iterator_match_the_eager_loop():
    x, y = make_data()
    batches = [(x[i : i + 25], y[i : i + 25]) for i in range(0, ROWS, 25)]  # 4, cycled
    key = jax.random.PRNGKey(7)
    result, final = lrscope_jax.find_lr(
        dropout_loss,
        init_params(),
        lambda lr: optax.adam(lr),
        iter(batches),
        key=key,
        start_lr=1e-4,
        end_lr=0.1,
        steps=30,
        stop_on_divergence=False,
        return_params=True,
    )
    expected, expected_params = eager_reference(
        dropout_loss,
        init_params(),
        adam(),
        result.lr,
        [batches[k % 4] for k in range(30)],
        key=key,
    )
    np.testing.assert_allclose(result.loss, expected, rtol=2e-5, atol=1e-6)
    assert_tree_close(final, expected_params)


def test_a_whole_test_compiles_once_whatever_the_chunks():
    trainer = lrscope_jax.trainer(loss_fn, init_params(), adam(), make_data(), batch_size=10)
    result = lrscope.range_test(trainer, start_lr=1e-4, end_lr=1e-2, steps=53, chunk_size=6)
    assert result.n_steps == 53  # 8 full chunks and a padded one of 5
    assert trainer.compilations == 1
    trainer.run(np.full(20, 1e-3))  # longer than a chunk: split, still the same program
    trainer.run(np.full(1, 1e-3))
    assert trainer.compilations == 1
    assert trainer._chunk_fn._cache_size() == 1  # jax's own count agrees


def test_padding_steps_change_nothing():
    trainer = lrscope_jax.trainer(
        loss_fn, init_params(), adam(), make_data(), batch_size=10, chunk_size=8
    )
    one_by_one = np.concatenate([trainer.run(np.array([lr])) for lr in (1e-3, 2e-3, 3e-3)])
    state = trainer.snapshot()
    other = lrscope_jax.trainer(
        loss_fn, init_params(), adam(), make_data(), batch_size=10, chunk_size=3
    )
    together = other.run(np.array([1e-3, 2e-3, 3e-3]))
    assert np.array_equal(one_by_one, together)
    assert state["position"] == 3
    assert not state_differences(state, other.snapshot())


# --------------------------------------------------------------------------- divergence, state


def test_nan_from_a_huge_lr_stops_cleanly_and_restores_bitwise():
    trainer = lrscope_jax.trainer(
        squared_loss,
        init_params(),
        optax.inject_hyperparams(optax.sgd)(learning_rate=0.1),
        make_data(),
        batch_size=50,
    )
    before = trainer.snapshot()
    # from lr=1e20 the second step overflows float32: a NaN/inf stop, not a divergence one
    result = lrscope.range_test(trainer, start_lr=1e20, end_lr=1e30, steps=60, chunk_size=8)
    assert result.stop_reason == "non_finite"
    assert result.n_steps < 60 and not np.isfinite(result.loss[result.stop_step])
    assert np.all(np.isfinite(result.loss[: result.stop_step]))
    assert not state_differences(before, trainer.snapshot())
    with pytest.raises(DivergenceError):
        lrscope.range_test(trainer, start_lr=1e-2, end_lr=1e12, steps=60, raise_on_divergence=True)
    assert not state_differences(before, trainer.snapshot())


def test_huge_lr_gives_non_finite_and_nan_final_params():
    result, final = lrscope_jax.find_lr(
        squared_loss,
        init_params(),
        lambda lr: optax.sgd(lr),
        make_data(),
        batch_size=50,
        start_lr=1e20,
        end_lr=1e30,
        steps=20,
        return_params=True,
    )
    assert result.stop_reason == "non_finite"
    assert not np.isfinite(result.loss[result.stop_step])
    assert not all(np.all(np.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(final))


def test_user_params_opt_state_and_data_are_untouched():
    numpy_params = jax.tree_util.tree_map(np.array, init_params())
    jax_params = init_params()
    optimizer = adam()
    opt_state = optimizer.init(jax_params)
    data = make_data()
    saved = (
        tree_bytes(numpy_params),
        tree_bytes(jax_params),
        tree_bytes(opt_state),
        tree_bytes(data),
    )
    for params in (numpy_params, jax_params):
        lrscope_jax.find_lr(
            loss_fn,
            params,
            optimizer,
            data,
            batch_size=20,
            opt_state=opt_state,
            start_lr=1e-3,
            end_lr=1e3,
            steps=40,
        )
    assert saved == (
        tree_bytes(numpy_params),
        tree_bytes(jax_params),
        tree_bytes(opt_state),
        tree_bytes(data),
    )
    leaves = jax.tree_util.tree_leaves((jax_params, opt_state))
    assert not any(leaf.is_deleted() for leaf in leaves if isinstance(leaf, jax.Array))


def test_an_exception_from_the_data_restores_the_state():
    x, y = make_data()

    def batches():
        for _ in range(7):
            yield x[:10], y[:10]
        raise RuntimeError("disk gone")

    trainer = lrscope_jax.trainer(loss_fn, init_params(), adam(), batches())
    before = trainer.snapshot()
    with pytest.raises(RuntimeError, match="disk gone"):
        lrscope.range_test(trainer, start_lr=1e-4, end_lr=1.0, steps=20, chunk_size=4)
    assert not state_differences(before, trainer.snapshot())


def test_evaluate_gives_the_loss_on_the_eval_batch():
    data = make_data()
    result = lrscope_jax.find_lr(
        loss_fn,
        init_params(),
        adam(),
        data,
        batch_size=20,
        eval_batch=data,
        eval_every=5,
        start_lr=1e-4,
        end_lr=1e-1,
        steps=20,
        chunk_size=5,
    )
    assert list(result.val_step) == [5, 10, 15, 20]
    assert result.val_loss.shape == (4,) and np.all(np.isfinite(result.val_loss))


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({}, "at least one array leaf"),
        ({"w": jnp.ones(3), "name": "mlp"}, r"leaf \['name'\]"),
        ({"w": jnp.ones(3, jnp.int32)}, "dtype int32"),
    ],
)
def test_bad_params_pytrees_are_refused(params, match):
    with pytest.raises(InvalidParameterError, match=match):
        lrscope_jax.trainer(lambda p, b: jnp.sum(p["w"]), params, adam(), [jnp.ones(3)])


@pytest.mark.parametrize(
    ("batches", "batch_size", "match"),
    [
        ([], None, "is empty"),
        (iter(()), None, "is empty"),
        ((np.zeros((0, 6)), np.zeros(0)), 4, r"is empty \(0 rows\)"),
        ((np.zeros((10, 6)), np.zeros(9)), 4, "same number of rows"),
        ((np.zeros((10, 6)), np.zeros(10)), 11, "at most the number of rows"),
        ((np.zeros((10, 6)), np.zeros(10)), None, "pass batch_size=N"),
        ({"x": np.zeros((10, 6))}, 0, "integer >= 1"),
        (["not", "arrays"], None, "numeric array leaves"),
    ],
)
def test_bad_batches_are_refused(batches, batch_size, match):
    with pytest.raises(InvalidParameterError, match=match):
        lrscope_jax.trainer(loss_fn, init_params(), adam(), batches, batch_size=batch_size)


def test_batches_that_change_shape_are_refused_by_name():
    x, y = make_data()
    trainer = lrscope_jax.trainer(
        loss_fn, init_params(), adam(), iter([(x[:10], y[:10]), (x[:9], y[:9])])
    )
    before = trainer.snapshot()
    with pytest.raises(InvalidParameterError, match="batch 1 differs from batch 0"):
        lrscope.range_test(trainer, start_lr=1e-4, end_lr=1.0, steps=10)
    assert not state_differences(before, trainer.snapshot())


@pytest.mark.parametrize(
    ("fn", "has_aux", "match"),
    [
        (lambda p, b: logits_of(p, b[0]), False, r"scalar floating-point loss.*shape=\(100, 3\)"),
        (lambda p, b: (loss_fn(p, b), 0.0), False, "pass has_aux=True"),
        (loss_fn, True, r"pair \(loss, aux\)"),
        (lambda p: 0.0, False, r"callable as loss_fn\(params, batch\)"),
    ],
)
def test_bad_loss_functions_are_refused(fn, has_aux, match):
    with pytest.raises(InvalidParameterError, match=match):
        lrscope_jax.trainer(fn, init_params(), adam(), [make_data()], has_aux=has_aux)


def test_has_aux_loss_works():
    def with_aux(params, batch):
        loss = loss_fn(params, batch)
        return loss, {"double": 2 * loss}

    plain = lrscope_jax.find_lr(
        loss_fn,
        init_params(),
        adam(),
        make_data(),
        batch_size=20,
        start_lr=1e-4,
        end_lr=1e-1,
        steps=10,
    )
    aux = lrscope_jax.find_lr(
        with_aux,
        init_params(),
        adam(),
        make_data(),
        batch_size=20,
        has_aux=True,
        start_lr=1e-4,
        end_lr=1e-1,
        steps=10,
    )
    np.testing.assert_array_equal(plain.loss, aux.loss)


@pytest.mark.parametrize(
    ("optimizer", "match"),
    [
        (optax.adam(1e-3), r"hyperparams\['learning_rate'\].*inject_hyperparams"),
        (
            optax.inject_hyperparams(optax.adam)(learning_rate=optax.linear_schedule(0.1, 0, 9)),
            "recomputes it every step",
        ),
        (
            optax.chain(adam(), optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)),
            "exactly one injectable learning rate",
        ),
        (optax.inject_hyperparams(optax.sgd)(learning_rate=1), "floating-point learning rate"),
        ("adam", "must be an optax GradientTransformation"),
        (lambda lr: "adam", "must return an optax GradientTransformation"),
        (lambda: optax.adam(1e-3), r"factory\(lr\)"),
    ],
)
def test_optimizers_whose_lr_cannot_be_set_are_refused(optimizer, match):
    with pytest.raises(InvalidParameterError, match=match):
        lrscope_jax.trainer(loss_fn, init_params(), optimizer, make_data(), batch_size=10)


def test_chained_optimizer_with_one_injected_lr_works():
    chained = optax.chain(optax.clip_by_global_norm(1.0), adam())
    trainer = lrscope_jax.trainer(loss_fn, init_params(), chained, make_data(), batch_size=20)
    check_trainer(trainer)


def test_an_opt_state_of_another_optimizer_is_refused():
    sgd_state = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1).init(init_params())
    with pytest.raises(InvalidParameterError, match="Argument `opt_state` must be a state of"):
        lrscope_jax.trainer(
            loss_fn, init_params(), adam(), make_data(), batch_size=10, opt_state=sgd_state
        )


def test_bad_key_is_refused():
    with pytest.raises(InvalidParameterError, match="Argument `key`"):
        lrscope_jax.trainer(dropout_loss, init_params(), adam(), make_data(), batch_size=10, key=7)


def test_without_jax_the_module_names_the_extra():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['jax'] = None\n"
        "import lrscope\n"
        "try:\n"
        "    import lrscope.jax\n"
        "except lrscope.MissingDependencyError as error:\n"
        "    print(error)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert "pip install 'lrscope[jax]'" in out
