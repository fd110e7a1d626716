"""lrscope.torch: conformance, bitwise restore in every outcome, AMP, accumulation, param
groups, mid-training use, and one-line errors for user mistakes."""

from __future__ import annotations

import collections
import copy
import random

import numpy as np
import pytest
from conftest import needs

pytestmark = [pytest.mark.torch, needs("torch")]

torch = pytest.importorskip("torch")
lt = pytest.importorskip("lrscope.torch")

from lrscope.errors import InvalidParameterError  # noqa: E402
from lrscope.testing import check_trainer, state_differences  # noqa: E402

F = torch.nn.functional


# -- fixtures ---------------------------------------------------------------------------------
def regression_data(n=256, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, generator=gen)
    y = 0.1 * x + 0.5 + 0.01 * torch.randn(n, 1, generator=gen)
    return x, y


def loader(x, y, batch_size=32, shuffle=True, generator=None):
    dataset = torch.utils.data.TensorDataset(x, y)
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, generator=generator
    )


def bn_dropout_model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(1, 16),
        torch.nn.BatchNorm1d(16),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.3),
        torch.nn.Linear(16, 1),
    )


def everything(model, optimizer, scaler=None, generators=()):
    """All user-visible state, captured independently of the adapter's own snapshot."""
    return copy.deepcopy(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "grads": [None if p.grad is None else p.grad for p in model.parameters()],
            "modes": [m.training for m in model.modules()],
            "scaler": None if scaler is None else scaler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": np.random.get_state(),  # noqa: NPY002
            "python_rng": random.getstate(),
            "generators": [g.get_state() for g in generators],
        }
    )


def assert_same(before, after):
    diffs = state_differences(before, after)
    assert not diffs, diffs[:5]


class Boom(Exception):
    pass


def failing_at(step, error):
    """An MSE loss that raises ``error`` on call number ``step`` (0-based)."""
    calls = {"n": 0}

    def loss_fn(pred, target):
        calls["n"] += 1
        if calls["n"] == step + 1:
            raise error
        return F.mse_loss(pred, target)

    return loss_fn


# -- conformance ------------------------------------------------------------------------------
@pytest.mark.parametrize("optimizer_name", ["sgd_momentum", "adam"])
def test_check_trainer_passes_on_a_batchnorm_dropout_model(optimizer_name):
    model = bn_dropout_model()
    params = model.parameters()
    optimizer = (
        torch.optim.SGD(params, lr=0.01, momentum=0.9)
        if optimizer_name == "sgd_momentum"
        else torch.optim.Adam(params, lr=1e-3)
    )
    trainer = lt.trainer(model, optimizer, F.mse_loss, loader(*regression_data()))
    check_trainer(trainer, lrs=(1e-3, 1e-2, 1e-1), diverge_lr=1e4)


def test_replay_from_the_middle_of_a_pass_sees_the_same_batches():
    """A snapshot taken mid-pass (5 of 8 batches used) restores the data position: the replay
    crosses into the next (reshuffled) pass exactly as the first run did."""
    model = bn_dropout_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    data = loader(*regression_data(), generator=torch.Generator().manual_seed(1))
    trainer = lt.trainer(model, optimizer, F.mse_loss, data)
    trainer.run(np.full(5, 1e-3))
    check_trainer(trainer, lrs=np.full(6, 1e-2))


def test_replay_works_with_worker_processes():
    """With num_workers=2 the shuffle seeds and worker seeds come from the RNG states the
    pass began with, so a mid-pass restore replays the same batches."""
    model = bn_dropout_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    dataset = torch.utils.data.TensorDataset(*regression_data(n=128))
    data = torch.utils.data.DataLoader(dataset, batch_size=32, shuffle=True, num_workers=2)
    trainer = lt.trainer(model, optimizer, F.mse_loss, data)
    trainer.run(np.full(2, 1e-3))
    check_trainer(trainer, lrs=np.full(3, 1e-2))
    trainer.close()


# -- restore in the four outcomes -------------------------------------------------------------
OUTCOMES = {
    "completed": ({"end_lr": 1e-2}, F.mse_loss, "completed"),
    "diverged": ({"end_lr": 1e4}, F.mse_loss, ("diverged", "non_finite")),
    "exception": ({"end_lr": 1e-2}, "boom", None),
    "interrupted": ({"end_lr": 1e-2}, "ctrl_c", "interrupted"),
}


@pytest.mark.parametrize("outcome", list(OUTCOMES))
def test_restore_is_bitwise_in_every_outcome(outcome):
    options, loss_fn, expected = OUTCOMES[outcome]
    if loss_fn == "boom":
        loss_fn = failing_at(7, Boom("user error"))
    elif loss_fn == "ctrl_c":
        loss_fn = failing_at(7, KeyboardInterrupt())
    model = bn_dropout_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    data_gen = torch.Generator().manual_seed(3)
    train = loader(*regression_data(), generator=data_gen)
    # Some real training first: optimizer slots, BN statistics and grads are non-trivial.
    for x, y in train:
        optimizer.zero_grad()
        F.mse_loss(model(x), y).backward()
        optimizer.step()
    model.eval()  # the test must train in train mode and put eval mode back
    np.random.seed(5)  # noqa: NPY002
    random.seed(5)
    before = everything(model, optimizer, generators=[data_gen])
    kwargs = {"start_lr": 1e-5, "steps": 30, "chunk_size": 4, **options}
    if expected is None:
        with pytest.raises(Boom):
            lt.find_lr(model, optimizer, loss_fn, train, **kwargs)
    else:
        result = lt.find_lr(model, optimizer, loss_fn, train, **kwargs)
        allowed = expected if isinstance(expected, tuple) else (expected,)
        assert result.stop_reason in allowed
        if outcome == "interrupted":
            assert result.n_steps == 4  # the chunk before the one that was interrupted
    assert_same(before, everything(model, optimizer, generators=[data_gen]))
    assert not model.training


@pytest.mark.parametrize("draws", ["nothing", "uniform_every_step", "the_cached_gaussian"])
def test_global_numpy_rng_is_restored_however_the_steps_drew_from_it(monkeypatch, draws):
    """Restore skips NumPy's slow set_state only when the generator's words and its cached
    Gaussian are unchanged; one legacy normal draw can take that cached value without moving
    the words, so that case must still be put back."""
    from lrscope.adapters import numpy_rng

    np.random.seed(11)  # noqa: NPY002
    if draws == "the_cached_gaussian":
        np.random.standard_normal()  # noqa: NPY002  (draws a pair, caches the second)
    calls = {"loss": 0, "set_state": 0}
    set_state = np.random.set_state

    def counting_set_state(state):
        calls["set_state"] += 1
        set_state(state)

    monkeypatch.setattr(np.random, "set_state", counting_set_state)

    def loss_fn(pred, target):
        calls["loss"] += 1
        if draws == "uniform_every_step":
            np.random.random()  # noqa: NPY002
        elif draws == "the_cached_gaussian" and calls["loss"] == 1:
            raw = numpy_rng._raw_state()
            np.random.standard_normal()  # noqa: NPY002
            after = numpy_rng._raw_state()
            assert raw is not None and after is not None  # read raw on this NumPy
            assert after.words == raw.words and after.has_gauss != raw.has_gauss  # the premise
        return F.mse_loss(pred, target)

    model = bn_dropout_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    before = everything(model, optimizer)
    lt.find_lr(model, optimizer, loss_fn, loader(*regression_data()), steps=20, end_lr=1.0)
    assert calls["loss"] == 20
    assert_same(before, everything(model, optimizer))
    assert calls["set_state"] == (0 if draws == "nothing" else 1)


def test_training_continues_bitwise_as_if_find_lr_never_ran():
    """Train 5 steps from the user's own (mid-epoch) iterator, range-test, train 5 more: the
    weights equal those of 10 uninterrupted steps, bit for bit."""

    def train(with_test):
        model = bn_dropout_model(seed=1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        data = loader(*regression_data(), batch_size=16)
        batches = iter(data)
        for step in range(10):
            if with_test and step == 5:
                lt.find_lr(model, optimizer, F.mse_loss, data, start_lr=1e-4, end_lr=1.0, steps=20)
            x, y = next(batches)
            optimizer.zero_grad()
            F.mse_loss(model(x), y).backward()
            optimizer.step()
        return everything(model, optimizer)

    torch.manual_seed(9)
    plain = train(with_test=False)
    torch.manual_seed(9)
    assert_same(plain, train(with_test=True))


def test_nan_and_inf_losses_stop_cleanly_and_restore():
    for bad in (float("nan"), float("inf")):
        model = bn_dropout_model()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        calls = {"n": 0}

        def loss_fn(pred, target, bad=bad, calls=calls):
            calls["n"] += 1
            loss = F.mse_loss(pred, target)
            return loss * bad if calls["n"] == 13 else loss

        before = everything(model, optimizer)
        result = lt.find_lr(
            model, optimizer, loss_fn, loader(*regression_data()), steps=40, chunk_size=5
        )
        assert result.stop_reason == "non_finite"
        assert result.stop_step == 12
        assert not np.isfinite(result.loss[12]) and np.isfinite(result.loss[:12]).all()
        assert_same(before, everything(model, optimizer))


@pytest.mark.parametrize(
    ("end_lr", "accumulation_steps"),
    [(1.0, 1), (1e4, 1), (1e4, 2)],
    ids=["completed", "diverged", "general_loop"],
)
def test_find_lr_through_run_chunks_equals_chunk_by_chunk_run(
    monkeypatch, end_lr, accumulation_steps
):
    """The engine lets TorchTrainer drive the chunks (run_chunks); the result is bitwise the
    one of the engine calling run() per chunk, and the state is restored the same."""
    from lrscope.adapters.torch import TorchTrainer

    def find():
        model = bn_dropout_model()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        data = loader(*regression_data(), generator=torch.Generator().manual_seed(3))
        torch.manual_seed(5)
        before = everything(model, optimizer)
        result = lt.find_lr(
            model,
            optimizer,
            F.mse_loss,
            data,
            start_lr=1e-4,
            end_lr=end_lr,
            steps=60,
            accumulation_steps=accumulation_steps,
        )
        assert_same(before, everything(model, optimizer))
        return result

    chunked = find()
    monkeypatch.setattr(TorchTrainer, "run_chunks", None)  # the engine falls back to run()
    plain = find()
    assert (
        chunked.stop_reason == plain.stop_reason == ("completed" if end_lr == 1.0 else "diverged")
    )
    assert chunked.stop_step == plain.stop_step
    for name in ("lr", "loss", "smooth_loss"):
        np.testing.assert_array_equal(getattr(chunked, name), getattr(plain, name), err_msg=name)


# -- AMP, accumulation, param groups -----------------------------------------------------------
def test_cpu_bfloat16_autocast_with_grad_scaler_runs_and_restores():
    model = bn_dropout_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=3)
    dtypes = []

    def loss_fn(pred, target):
        dtypes.append(pred.dtype)
        return F.mse_loss(pred.float(), target)

    train = loader(*regression_data())
    trainer = lt.trainer(
        model, optimizer, loss_fn, train, scaler=scaler, autocast_dtype=torch.bfloat16
    )
    check_trainer(trainer, lrs=(1e-3, 1e-2, 1e-1, 1e-1))
    assert set(dtypes) == {torch.bfloat16}  # the forward really ran under autocast
    before = everything(model, optimizer, scaler)
    result = lt.find_lr(
        model,
        optimizer,
        loss_fn,
        train,
        steps=20,
        end_lr=1e-2,
        scaler=scaler,
        autocast_dtype=torch.bfloat16,
    )
    assert result.n_steps == 20 and result.metadata["autocast_dtype"] == "torch.bfloat16"
    assert_same(before, everything(model, optimizer, scaler))


def test_accumulation_matches_a_batch_of_the_combined_size():
    """Two accumulated batches of 16 take the same SGD step as one batch of 32 (MSE is a
    mean, so the accumulated gradient is the same up to round-off)."""
    x, y = regression_data(n=64)

    def run(batch_size, accumulation_steps):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        trainer = lt.trainer(
            model,
            optimizer,
            F.mse_loss,
            loader(x, y, batch_size=batch_size, shuffle=False),
            accumulation_steps=accumulation_steps,
        )
        losses = trainer.run(np.array([0.1, 0.2, 0.3, 0.4]))
        return losses, torch.cat([p.detach().flatten() for p in model.parameters()])

    losses_acc, weights_acc = run(16, 2)
    losses_big, weights_big = run(32, 1)
    np.testing.assert_allclose(losses_acc, losses_big, rtol=1e-5)
    torch.testing.assert_close(weights_acc, weights_big, rtol=1e-5, atol=1e-6)
    # and restore stays exact with accumulation
    torch.manual_seed(0)
    model = bn_dropout_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    trainer = lt.trainer(
        model, optimizer, F.mse_loss, loader(x, y, batch_size=16), accumulation_steps=3
    )
    check_trainer(trainer)


def test_param_groups_keep_their_ratio_and_match_a_manual_sgd_loop():
    x, y = regression_data(n=96)
    ramp = None

    def build():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
        optimizer = torch.optim.SGD(
            [
                {"params": model[0].parameters(), "lr": 0.1},
                {"params": model[2].parameters(), "lr": 0.025},
            ]
        )
        return model, optimizer

    # the LRs in force at each step, seen from inside the loss
    model, optimizer = build()
    applied = []

    def loss_fn(pred, target):
        applied.append([group["lr"] for group in optimizer.param_groups])
        return F.mse_loss(pred, target)

    data = loader(x, y, batch_size=32, shuffle=False)
    before = everything(model, optimizer)
    result = lt.find_lr(model, optimizer, loss_fn, data, start_lr=1e-3, end_lr=1.0, steps=12)
    ramp = result.lr
    applied = np.array(applied)
    assert np.array_equal(applied[:, 0], ramp)  # the ramp is the first group's LR, exactly
    np.testing.assert_allclose(applied[:, 1] / applied[:, 0], 0.25, rtol=1e-12)
    assert_same(before, everything(model, optimizer))  # LRs 0.1 / 0.025 back, weights too
    assert result.metadata["group0_base_lr"] == 0.1
    assert result.metadata["group1_base_lr"] == 0.025

    # the weights after the steps equal a hand-written SGD loop at those LRs
    model_a, optimizer_a = build()
    lt.trainer(model_a, optimizer_a, F.mse_loss, data).run(ramp)
    model_b, optimizer_b = build()
    batches = [batch for _ in range(4) for batch in data]
    for lr, (xb, yb) in zip(ramp, batches, strict=False):
        with torch.no_grad():
            optimizer_b.zero_grad()
        loss = F.mse_loss(model_b(xb), yb)
        loss.backward()
        with torch.no_grad():
            for p in model_b[0].parameters():
                p -= float(lr) * p.grad
            for p in model_b[2].parameters():
                p -= float(lr) * 0.25 * p.grad
    for p, q in zip(model_a.parameters(), model_b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


# -- mid-training use -------------------------------------------------------------------------
def test_a_trained_model_does_not_diverge_falsely():
    """After 300 SGD steps the loss is near its minimum; the test must still run up to near
    the analytic stability limit 2/lambda_max of the MSE Hessian, not stop on noise."""
    x, y = regression_data(n=512)
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.3)
    data = loader(x, y, batch_size=64)
    for _ in range(40):
        for xb, yb in data:
            optimizer.zero_grad()
            F.mse_loss(model(xb), yb).backward()
            optimizer.step()
    x64 = x.double().flatten()
    hessian = 2 * torch.tensor([[(x64**2).mean(), x64.mean()], [x64.mean(), 1.0]])
    lr_diverge = 2 / torch.linalg.eigvalsh(hessian).max().item()
    before = everything(model, optimizer)
    result = lt.find_lr(model, optimizer, F.mse_loss, data, start_lr=1e-4, end_lr=100, steps=60)
    assert result.stop_reason in ("diverged", "non_finite")
    assert result.lr[result.stop_step] > 0.5 * lr_diverge
    assert_same(before, everything(model, optimizer))


# -- batches ----------------------------------------------------------------------------------
def test_dict_batches_batch_fn_and_a_short_loader_that_is_cycled():
    x, y = regression_data(n=24)
    batches = [{"x": x[i : i + 8], "labels": y[i : i + 8]} for i in (0, 8, 16)]

    class DictModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(1, 1)

        def forward(self, x, labels=None):
            pred = self.linear(x)
            return pred if labels is None else {"loss": F.mse_loss(pred, labels)}

    model = DictModel()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    seen = []

    def loss_fn(pred, target):
        seen.append(target)
        return F.mse_loss(pred, target)

    result = lt.find_lr(model, optimizer, loss_fn, batches, steps=10, end_lr=0.1)
    assert result.n_steps == 10
    order = [next(i for i, b in enumerate(batches) if b["labels"] is t) for t in seen]
    assert order == [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]  # three batches cycled over ten steps
    # Hugging Face style: no loss_fn, the model returns the loss
    hf = lt.find_lr(model, optimizer, None, batches, steps=10, end_lr=0.1)
    np.testing.assert_array_equal(hf.loss, result.loss)
    # batch_fn: full control over how a batch becomes a loss
    custom = lt.find_lr(
        model,
        optimizer,
        None,
        batches,
        steps=10,
        end_lr=0.1,
        batch_fn=lambda b: F.mse_loss(model(b["x"]), b["labels"]),
    )
    np.testing.assert_array_equal(custom.loss, result.loss)
    # namedtuple batches are (inputs, target) too
    pair = collections.namedtuple("Pair", "x y")
    named = [pair(b["x"], b["labels"]) for b in batches]
    plain = lt.find_lr(model, optimizer, F.mse_loss, named, steps=10, end_lr=0.1)
    np.testing.assert_array_equal(plain.loss, result.loss)


def test_validation_subset_is_evaluated_every_k_steps_without_changing_state():
    model = bn_dropout_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = regression_data()
    trainer = lt.trainer(model, optimizer, F.mse_loss, loader(x, y), val_loader=loader(x, y))
    before = trainer.snapshot()
    first = trainer.evaluate()
    assert_same(before, trainer.snapshot())
    assert first == trainer.evaluate()  # the same fixed subset each time
    result = lt.find_lr(
        model,
        optimizer,
        F.mse_loss,
        loader(x, y),
        val_loader=loader(x, y),
        val_batches=2,
        steps=20,
        end_lr=0.1,
        chunk_size=5,
    )
    assert list(result.val_step) == [5, 10, 15, 20]
    assert np.isfinite(result.val_loss).all()


def test_without_val_loader_verify_ranks_by_training_loss_and_restores():
    """A trainer without val_loader has no evaluate(): verify (and the CLI's --budget) rank
    by training loss instead of failing on an evaluate() that raised."""
    import lrscope

    model = bn_dropout_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = regression_data()
    trainer = lt.trainer(model, optimizer, F.mse_loss, loader(x, y))
    assert getattr(trainer, "evaluate", None) is None
    with pytest.raises(AttributeError, match="val_loader"):
        trainer.evaluate()
    with pytest.raises(InvalidParameterError, match=r"eval_every.*trainer\(\.\.\., val_loader="):
        lrscope.sweep(trainer, [0.01], steps=2, eval_every=1)
    before = everything(model, optimizer)
    checked = lrscope.verify(trainer, [0.01, 0.03, 0.1], steps=8, refine=False)
    assert checked.score_kind == "train_tail"
    assert checked.best_lr in (0.01, 0.03, 0.1)
    # The score is the mean training loss of the last tenth of each run (at least one step).
    np.testing.assert_allclose(checked.scores, checked.losses[:, -1])
    assert_same(before, everything(model, optimizer))
    with_val = lt.trainer(model, optimizer, F.mse_loss, loader(x, y), val_loader=loader(x, y))
    assert lrscope.verify(with_val, [0.01, 0.03], steps=4).score_kind == "evaluate"


TARGET_WITHOUT_VAL = """
import torch
import lrscope.torch


def trainer(seed=0):
    torch.manual_seed(seed)
    x = torch.rand(128, 1)
    y = 0.1 * x + 0.5
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
    return lrscope.torch.trainer(model, optimizer, torch.nn.functional.mse_loss, data)
"""


def test_cli_find_budget_on_a_target_without_val_loader(tmp_path, capsys):
    from lrscope.cli import main
    from lrscope.core.verify import VerifyResult

    target = tmp_path / "target.py"
    target.write_text(TARGET_WITHOUT_VAL)
    out_dir = tmp_path / "out"
    args = ["find", f"{target}:trainer", "--budget", "10", "--no-plots", "--out", str(out_dir)]
    assert main([*args, "--start-lr", "1e-4", "--end-lr", "10"]) == 0
    checked = VerifyResult.load(out_dir / "verify.json")
    assert checked.score_kind == "train_tail" and checked.steps == 10
    assert f"best LR for 10 steps: {checked.best_lr:.4g}" in capsys.readouterr().out


# -- errors -----------------------------------------------------------------------------------
def test_user_mistakes_give_one_line_errors():
    x, y = regression_data(n=32)
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    good = loader(x, y)

    empty = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[:0], y[:0]))
    with pytest.raises(InvalidParameterError, match=r"`train_loader` must yield at least one"):
        lt.find_lr(model, optimizer, F.mse_loss, empty)

    class NoBatches:
        def __iter__(self):
            return iter(())

    with pytest.raises(InvalidParameterError, match=r"`train_loader` must yield at least one"):
        lt.find_lr(model, optimizer, F.mse_loss, NoBatches(), steps=5)

    with pytest.raises(InvalidParameterError, match=r"`train_loader` must be re-iterable"):
        lt.find_lr(model, optimizer, F.mse_loss, (b for b in good))

    frozen = torch.nn.Linear(1, 1).requires_grad_(False)
    with pytest.raises(InvalidParameterError, match=r"`model` must have at least one trainable"):
        lt.find_lr(frozen, torch.optim.SGD(frozen.parameters(), lr=0.1), F.mse_loss, good)

    with pytest.raises(InvalidParameterError, match=r"`optimizer` must hold at least one"):
        lt.find_lr(model, torch.optim.SGD(frozen.parameters(), lr=0.1), F.mse_loss, good)

    per_sample = lambda pred, target: F.mse_loss(pred, target, reduction="none")  # noqa: E731
    with pytest.raises(InvalidParameterError, match=r"`loss_fn` must return a scalar loss.*32, 1"):
        lt.find_lr(model, optimizer, per_sample, good, steps=5)

    with pytest.raises(TypeError, match=r"`loss_fn` must return the loss as a scalar torch"):
        lt.find_lr(model, optimizer, lambda p, t: 0.5, good, steps=5)

    # Checked when backward() refuses the loss: the one-line error, without backward's own
    # error chained to it
    detached = lambda pred, target: F.mse_loss(pred, target).detach()  # noqa: E731
    weights = [p.detach().clone() for p in model.parameters()]
    no_grad_fn = r"`loss_fn` must return a loss computed"
    with pytest.raises(InvalidParameterError, match=no_grad_fn) as info:
        lt.find_lr(model, optimizer, detached, good, steps=5)
    assert info.value.__suppress_context__ and "no grad_fn" in str(info.value)
    assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters(), strict=True))

    with pytest.raises(InvalidParameterError, match=r"`accumulation_steps` must be an integer"):
        lt.find_lr(model, optimizer, F.mse_loss, good, accumulation_steps=0)

    with pytest.raises(InvalidParameterError, match=r"`end_lr` must be greater than `start_lr`"):
        lt.find_lr(model, optimizer, F.mse_loss, good, start_lr=1.0, end_lr=0.1)

    with pytest.raises(TypeError, match=r"`model` must be a torch.nn.Module"):
        lt.find_lr(lambda x: x, optimizer, F.mse_loss, good)

    # A loss_fn or batch_fn that cannot take what find_lr passes it failed inside the first
    # step with Python's own "takes 1 positional argument but 2 were given"
    with pytest.raises(InvalidParameterError, match=r"`loss_fn` must be callable as loss_fn\("):
        lt.find_lr(model, optimizer, lambda pred: pred.mean(), good, steps=5)
    with pytest.raises(InvalidParameterError, match=r"signature='<lambda>\(\)'"):
        lt.find_lr(model, optimizer, None, good, batch_fn=lambda: 0.0, steps=5)

    # LBFGS's step needs a closure; it used to fail inside the first step with a bare
    # "step() missing 1 required positional argument: 'closure'"
    lbfgs = torch.optim.LBFGS(model.parameters(), lr=1.0)
    with pytest.raises(InvalidParameterError, match=r"`optimizer` must be able to step without"):
        lt.find_lr(model, lbfgs, F.mse_loss, good, steps=5)
    assert lbfgs.state == {} and all(
        torch.equal(a, b) for a, b in zip(weights, model.parameters(), strict=True)
    )

    with pytest.raises(InvalidParameterError) as info:
        lt.find_lr(model, optimizer, per_sample, good, steps=5)
    assert "\n" not in str(info.value) and "Received: loss_shape=(32, 1)" in str(info.value)
    # nothing was changed by the failed calls
    assert optimizer.param_groups[0]["lr"] == 0.01


def test_find_lr_tests_a_curve_that_broke_down_again_and_restores_everything():
    """A loss that falls briefly and then goes back to chance level (the shape of the quality
    benchmark's digits CNN) makes find_lr test again with 4x the steps; retest=False runs one
    test. Either way every piece of user state is back as it was."""
    from sweep_targets import BreakingDown

    shape = BreakingDown()
    model = bn_dropout_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    gen = torch.Generator().manual_seed(3)
    data = loader(*regression_data(), generator=gen)

    def loss_fn(out, y):
        # real gradients through the model; the value follows the breakdown shape in the LR
        lr = optimizer.param_groups[0]["lr"]
        return F.mse_loss(out, y) * 0.0 + float(shape.run([lr])[0])

    before = everything(model, optimizer, generators=[gen])
    once = lt.find_lr(model, optimizer, loss_fn, data, retest=False)
    assert once.steps == 100 and "broke_down" in once.quality().flags
    assert_same(before, everything(model, optimizer, generators=[gen]))
    again = lt.find_lr(model, optimizer, loss_fn, data)
    assert again.steps == 400 and again.metadata["first_test_steps"] == 100
    assert again.metadata["framework"] == "torch"  # the adapter's metadata is kept
    assert_same(before, everything(model, optimizer, generators=[gen]))
