"""The cheap paths behind lrscope.torch's speed: the plain step loop against the general one
(bit for bit), find_lr's trainer that skips pass records, and the engine's incremental stop
check against check_stop on the whole curve."""

from __future__ import annotations

import copy
import math
import random

import numpy as np
import pytest
from conftest import needs
from hypothesis import given, settings
from hypothesis import strategies as st

from lrscope.core.stopping import StopScan, check_stop
from lrscope.errors import TrainerError
from lrscope.testing import state_differences

torch_only = [pytest.mark.torch, needs("torch")]


def _torch():
    return pytest.importorskip("torch")


def _everything(model, optimizer):
    torch = _torch()
    return copy.deepcopy(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "grads": [None if p.grad is None else p.grad for p in model.parameters()],
            "modes": [m.training for m in model.modules()],
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": np.random.get_state(),  # noqa: NPY002
            "python_rng": random.getstate(),
        }
    )


def _setup(kind):
    """A model, optimizer and batches for one configuration of the plain loop."""
    torch = _torch()
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(96, 4, generator=gen)
    y = x @ torch.tensor([[0.5], [-1.0], [2.0], [0.1]]) + 0.05 * torch.randn(96, 1, generator=gen)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 16),
        torch.nn.BatchNorm1d(16),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.2),
        torch.nn.Linear(16, 1),
    )
    if kind == "groups":
        optimizer = torch.optim.SGD(
            [
                {"params": model[0].parameters(), "lr": 0.02},
                {"params": list(model[1].parameters()) + list(model[4].parameters()), "lr": 0.005},
            ],
            momentum=0.9,
        )
    elif kind == "tensor_lr":
        optimizer = torch.optim.Adam(model.parameters(), lr=torch.tensor(1e-3), foreach=False)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    dataset = torch.utils.data.TensorDataset(x, y)
    if kind == "lists":  # a plain list of [x, y] lists, cycled
        data = [[x[i : i + 32], y[i : i + 32]] for i in range(0, 96, 32)]
    else:
        data = torch.utils.data.DataLoader(
            dataset, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(1)
        )
    return model, optimizer, data


@pytest.mark.parametrize("kind", ["adam", "groups", "tensor_lr", "lists"])
@pytest.mark.parametrize(
    "entry", [pytest.param("run", marks=torch_only), pytest.param("find_lr", marks=torch_only)]
)
def test_plain_loop_equals_the_general_loop_bit_for_bit(kind, entry, monkeypatch):
    """The same steps through both loops: identical losses, weights, optimizer state, LRs and
    RNG states (find_lr: restored exactly by both); the plain loop is the one taken here."""
    torch = _torch()
    import lrscope.torch as lt

    calls = {"plain": 0, "general": 0}
    for name in ("plain", "general"):
        method = getattr(lt.TorchTrainer, f"_run_{name}")

        def counted(self, *args, method=method, name=name):
            calls[name] += 1
            return method(self, *args)

        monkeypatch.setattr(lt.TorchTrainer, f"_run_{name}", counted)
    outcomes = []
    for general_only in (False, True):
        model, optimizer, data = _setup(kind)
        np.random.seed(3)  # noqa: NPY002
        random.seed(3)
        torch.manual_seed(3)
        before = _everything(model, optimizer)
        if entry == "run":
            trainer = lt.trainer(model, optimizer, torch.nn.functional.mse_loss, data)
            trainer._general_only = general_only
            losses = np.concatenate([trainer.run(np.geomspace(1e-4, 1e-1, 7)) for _ in range(3)])
        else:  # find_lr builds its own trainer: choose the loop in its __init__
            init = lt.TorchTrainer.__init__

            def init_choosing(self, *args, init=init, general_only=general_only, **kwargs):
                init(self, *args, **kwargs)
                self._general_only = general_only

            monkeypatch.setattr(lt.TorchTrainer, "__init__", init_choosing)
            result = lt.find_lr(
                model, optimizer, torch.nn.functional.mse_loss, data, end_lr=10.0, steps=30
            )
            monkeypatch.setattr(lt.TorchTrainer, "__init__", init)
            losses = result.loss
            assert not state_differences(before, _everything(model, optimizer))
        lrs = [float(group["lr"]) for group in optimizer.param_groups]
        outcomes.append((losses, _everything(model, optimizer), lrs))
        taken, other = ("general", "plain") if general_only else ("plain", "general")
        assert calls[taken] > 0 and calls[other] == 0
        calls.update(plain=0, general=0)
    (plain_losses, plain_state, plain_lrs), (general_losses, general_state, general_lrs) = outcomes
    assert plain_losses.dtype == np.float64 and plain_losses.shape == general_losses.shape
    assert plain_losses.size >= 20 and np.isfinite(plain_losses[:10]).all()
    assert np.array_equal(plain_losses, general_losses, equal_nan=True)
    assert not state_differences(plain_state, general_state)
    assert plain_lrs == general_lrs


@pytest.mark.torch
@needs("torch")
def test_a_loss_of_shape_one_or_mixed_shapes_is_one_value_per_step():
    torch = _torch()
    import lrscope.torch as lt

    x = torch.linspace(0, 1, 32).reshape(-1, 1)
    data = [(x[:16], 2 * x[:16]), (x[16:], 2 * x[16:])]
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    calls = {"n": 0}

    def loss_fn(pred, target):
        calls["n"] += 1
        loss = torch.nn.functional.mse_loss(pred, target)
        return loss.reshape(1) if calls["n"] % 2 else loss  # (1,) and () alternately

    trainer = lt.trainer(model, optimizer, loss_fn, data)
    losses = trainer.run(np.full(5, 0.01))
    assert losses.shape == (5,) and np.isfinite(losses).all()


@pytest.mark.torch
@needs("torch")
def test_find_lr_trainer_skips_pass_records_and_refuses_a_mid_pass_snapshot():
    """find_lr's own trainer does not record where each pass began (it never replays one);
    a snapshot in the middle of such a pass is refused rather than restored wrongly."""
    torch = _torch()
    import lrscope.torch as lt

    model, optimizer, data = _setup("adam")
    trainer = lt.trainer(model, optimizer, torch.nn.functional.mse_loss, data)
    trainer._replayable = False
    state = trainer.snapshot()  # before the first batch: fine
    trainer.run(np.full(3, 1e-3))
    assert trainer._pass_rng is None
    with pytest.raises(TrainerError, match="middle of a pass"):
        trainer.snapshot()
    trainer.restore(state)
    assert trainer._iterator is None  # back before the first batch
    # the default trainer records them, so check_trainer-style mid-pass restores work
    recording = lt.trainer(model, optimizer, torch.nn.functional.mse_loss, data)
    recording.run(np.full(3, 1e-3))
    assert recording._pass_rng is not None
    recording.restore(recording.snapshot())


@pytest.mark.torch
@needs("torch")
def test_list_subclass_batches_are_moved_and_kept_as_their_type():
    torch = _torch()
    import lrscope.torch as lt

    class Batch(list):
        pass

    x = torch.linspace(0, 1, 8).reshape(-1, 1)
    model = torch.nn.Linear(1, 1)
    trainer = lt.trainer(
        model, torch.optim.SGD(model.parameters(), lr=0.1), torch.nn.functional.mse_loss, [[x, x]]
    )
    moved = trainer._to_device(Batch([x, 2 * x]))
    assert type(moved) is Batch and moved[0] is x  # already on the device: the same tensor


@pytest.mark.torch
@needs("torch")
def test_host_copies_of_cpu_tensors_are_separate_exact_copies():
    """The snapshot's copy of a CPU tensor (a clone on the usual path, ``detach().to()``
    otherwise) has the same values bit for bit, dtype, shape and strides, shares no memory,
    records no autograd history, and restores in place."""
    torch = _torch()
    from lrscope.adapters.torch import _restore_value, _to_host

    base = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4) / 7
    param = torch.nn.Parameter(torch.randn(3, 2))
    tensors = {
        "contiguous": base,
        "transposed": base.transpose(0, 2),
        "channels_last": torch.randn(2, 3, 4, 5).to(memory_format=torch.channels_last),
        "bfloat16": base.to(torch.bfloat16),
        "int64 counter": torch.tensor(7),
        "bool mask": base > 1,
        "parameter": param,  # requires grad: the detach path
        "needs grad": param * 2,
    }

    def bits(t):
        return t.detach().contiguous().reshape(-1).view(torch.uint8)

    for name, tensor in tensors.items():
        saved = _to_host(tensor)
        copy = saved.tensor
        assert saved.device == "cpu", name
        assert (copy.dtype, copy.shape, copy.stride()) == (
            tensor.dtype,
            tensor.shape,
            tensor.stride(),
        ), name
        assert not copy.requires_grad and copy.grad_fn is None, name
        assert copy.untyped_storage().data_ptr() != tensor.untyped_storage().data_ptr(), name
        assert torch.equal(bits(copy), bits(tensor)), name
        if not tensor.requires_grad:
            before = tensor.clone()
            with torch.no_grad():
                tensor.copy_(torch.ones_like(tensor))
                assert _restore_value(tensor, saved) is tensor, name  # copied in place
            assert torch.equal(tensor, before), name


# -- the engine's incremental stop check -------------------------------------------------------
values = st.one_of(
    st.floats(-1e3, 1e3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, np.nan, np.inf]),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(values, values), min_size=1, max_size=60),
    st.lists(st.integers(1, 12), min_size=1, max_size=60),
    st.floats(0.01, 100.0),
    st.booleans(),
)
def test_stop_scan_answers_exactly_what_check_stop_answers_on_the_whole_curve(
    points, chunks, factor, smooth_from_raw
):
    raw = np.array([r for r, _ in points], dtype=np.float64)
    if smooth_from_raw:
        from lrscope.core.smoothing import smooth_loss

        smooth = smooth_loss(raw, 0.9)
    else:
        smooth = np.array([s for _, s in points], dtype=np.float64)
    scan = StopScan(factor)
    done, i = 0, 0
    while done < raw.size:
        size = chunks[i % len(chunks)]
        i += 1
        part = slice(done, done + size)
        # Arrays, or the Python lists the range test passes: the same answer either way.
        as_lists = i % 2 == 0
        got = (
            scan.extend(smooth[part].tolist(), raw[part].tolist())
            if as_lists
            else scan.extend(smooth[part], raw[part])
        )
        done = min(done + size, raw.size)
        assert got == check_stop(smooth[:done], raw[:done], factor), done


@settings(max_examples=400, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 90),
    st.floats(0.0, 1.0),
    st.sampled_from([0.0, 1e-3, 0.05, 0.3]),
    st.lists(st.integers(1, 12), min_size=1, max_size=8),
    st.sampled_from([1.0, 3.0, 10.0]),
    st.sampled_from([None, np.nan, np.inf, -np.inf]),
)
def test_stop_scan_equals_check_stop_on_range_test_shaped_curves(
    seed, n, rise_at, noise, chunks, factor, bad
):
    """Curves like a range test's: a noisy fall, then a blow-up of random speed, sometimes a
    non-finite loss; checked after every chunk against check_stop on the whole curve."""
    from lrscope.core.smoothing import smooth_loss

    rng = np.random.default_rng(seed)
    steps = np.arange(n, dtype=np.float64)
    knee = rise_at * n
    raw = 1.0 + np.exp(-steps / max(1.0, n / 4)) + noise * rng.standard_normal(n)
    raw += np.where(steps > knee, np.expm1(rng.uniform(0.05, 1.0) * (steps - knee)), 0.0)
    if bad is not None and n > 1:
        raw[rng.integers(1, n)] = bad
    smooth = smooth_loss(raw, float(rng.choice([0.0, 0.5, 0.98])))
    scan = StopScan(factor)
    done, i = 0, 0
    while done < n:
        size = chunks[i % len(chunks)]
        i += 1
        got = scan.extend(smooth[done : done + size], raw[done : done + size])
        done = min(done + size, n)
        assert got == check_stop(smooth[:done], raw[:done], factor), done


def test_stop_scan_follows_a_real_divergence_chunk_by_chunk():
    raw = np.concatenate([np.linspace(2.0, 0.5, 40), 0.5 * 1.3 ** np.arange(30)])
    from lrscope.core.smoothing import smooth_loss

    smooth = smooth_loss(raw)
    scan = StopScan(3.0)
    answers = [scan.extend(smooth[i : i + 5], raw[i : i + 5]) for i in range(0, raw.size, 5)]
    expected = check_stop(smooth, raw, 3.0)
    assert expected[0] == "diverged" and answers[-1] == expected
    first = next(k for k, answer in enumerate(answers) if answer[0] == "diverged")
    assert all(answer == ("completed", 5 * (k + 1)) for k, answer in enumerate(answers[:first]))
    with pytest.raises(ValueError, match="`diverge_factor` must be a positive finite number"):
        StopScan(0.0)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(values, min_size=1, max_size=60),
    st.lists(st.integers(1, 12), min_size=1, max_size=60),
    st.sampled_from([0.0, 0.5, 0.9, 0.98]),
    st.floats(0.01, 100.0),
)
def test_curve_monitor_equals_smooth_loss_and_check_stop_on_the_whole_curve(
    raw, chunks, beta, factor
):
    """The range test's one-pass bookkeeping per chunk: bitwise smooth_loss's values and
    exactly check_stop's answer on the curve so far, after every chunk."""
    from lrscope.core.smoothing import smooth_loss
    from lrscope.core.stopping import CurveMonitor

    monitor = CurveMonitor(beta, factor)
    whole = smooth_loss(np.array(raw, dtype=np.float64), beta)
    got: list[float] = []
    done, i = 0, 0
    while done < len(raw):
        size = chunks[i % len(chunks)]
        i += 1
        part = raw[done : done + size]
        smoothed, reason, index = monitor.extend(part)
        assert type(smoothed) is list and len(smoothed) == len(part)
        got += smoothed
        done = min(done + size, len(raw))
        assert (reason, index) == check_stop(whole[:done], np.array(raw[:done]), factor), done
    np.testing.assert_array_equal(np.array(got, dtype=np.float64), whole)


def test_curve_monitor_takes_the_fast_path_past_the_noise_window_and_leaves_it_on_a_nan():
    """Past the first NOISE_WINDOW points the chunk is handled in one loop; a NaN in the
    middle of a chunk hands the rest to the smoother's and the scan's own rules."""
    from lrscope.core.smoothing import smooth_loss
    from lrscope.core.stopping import NOISE_WINDOW, CurveMonitor

    raw = [2.0 - 0.01 * k for k in range(NOISE_WINDOW + 8)] + [1.5, math.nan, 1.4, 1.3]
    monitor = CurveMonitor(0.98, 3.0)
    first = monitor.extend(raw[:NOISE_WINDOW])
    assert monitor.scan._settled and first[1:] == ("completed", NOISE_WINDOW)
    second = monitor.extend(raw[NOISE_WINDOW:])
    whole = smooth_loss(np.array(raw), 0.98)
    np.testing.assert_array_equal(np.array(first[0] + second[0]), whole)
    assert second[1:] == ("non_finite", len(raw) - 3) == check_stop(whole, np.array(raw), 3.0)
    assert monitor.smoother.broken and monitor.extend([1.0]) == ([math.nan], "non_finite", 19)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(values, min_size=0, max_size=40),
    st.lists(st.integers(1, 12), min_size=1, max_size=40),
    st.sampled_from([0.0, 0.5, 0.98]),
)
def test_running_smoother_lists_equal_arrays_and_the_whole_curve(raw, chunks, beta):
    """extend_list (what the range test calls per chunk) and extend give, chunk by chunk,
    bitwise what smooth_loss gives on the whole curve."""
    from lrscope.core.smoothing import RunningSmoother, smooth_loss

    by_list, by_array = RunningSmoother(beta), RunningSmoother(beta)
    got_list: list[float] = []
    got_array: list[np.ndarray] = []
    done, i = 0, 0
    while done < len(raw):
        size = chunks[i % len(chunks)]
        i += 1
        got_list += by_list.extend_list(raw[done : done + size])
        got_array.append(by_array.extend(np.array(raw[done : done + size], dtype=np.float64)))
        done += size
    whole = smooth_loss(np.array(raw, dtype=np.float64), beta)
    np.testing.assert_array_equal(np.array(got_list, dtype=np.float64), whole)
    np.testing.assert_array_equal(np.concatenate(got_array) if got_array else np.zeros(0), whole)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16", "float64"])
@pytest.mark.torch
@needs("torch")
def test_cpu_losses_reach_the_engine_as_the_exact_python_floats(dtype):
    """On the CPU a chunk's losses are read one by one (no stacked copy): every shape a scalar
    loss comes in, every float dtype, each value exactly what the tensor holds."""
    torch = _torch()
    from lrscope.adapters.torch import _host_floats

    kind = getattr(torch, dtype)
    values = [0.1, 1 / 3, 2.5e-3, float("nan"), float("inf")]
    shapes = [(), (1,), (1, 1), (), (1,)]
    losses = [torch.tensor(v, dtype=kind).reshape(s) for v, s in zip(values, shapes, strict=True)]
    got = _host_floats(losses)
    assert all(type(v) is float for v in got)
    # The exact value of each tensor: through float64, which holds every float16/32 and bfloat16.
    want = [loss.to(torch.float64).reshape(()).tolist() for loss in losses]
    np.testing.assert_array_equal(got, want)
    assert _host_floats([]) == []


@pytest.mark.torch
@needs("torch")
@pytest.mark.parametrize("general_only", [False, True])
def test_a_chunk_callback_that_leaves_the_model_in_eval_mode_does_not_change_training(
    general_only,
):
    """Both step loops put the model back in train mode after each hand-over (a callback may
    evaluate): with dropout and BatchNorm, losses equal bit for bit to a callback that does
    not touch the mode, and every step of every chunk ran in train mode."""
    torch = _torch()
    import lrscope.torch as lt

    runs = []
    for leave_in_eval in (False, True):
        model, optimizer, data = _setup("adam")
        torch.manual_seed(5)
        trainer = lt.trainer(model, optimizer, torch.nn.functional.mse_loss, data)
        trainer._general_only = general_only
        modes: list[bool] = []
        forward = model.forward

        def recording_forward(x, forward=forward, model=model, modes=modes):
            modes.append(model.training)
            return forward(x)

        model.forward = recording_forward
        losses: list[float] = []

        def on_chunk(new, model=model, losses=losses, leave_in_eval=leave_in_eval):
            losses.extend(new)
            if leave_in_eval:
                model.eval()
            return False

        trainer.run_chunks(np.geomspace(1e-4, 1e-2, 12), 4, on_chunk)
        assert len(losses) == 12 and all(modes) and len(modes) == 12
        runs.append(losses)
    assert runs[0] == runs[1]


@pytest.mark.torch
@needs("torch")
@pytest.mark.parametrize("ending", ["completed", "diverged", "ctrl_c"])
def test_find_lr_on_the_cpu_holds_quiet_chunks_back_with_the_same_result(ending, monkeypatch):
    """The plain loop reads each CPU loss as it comes and hands quiet chunks over together
    (QuietBound): the same steps, curve, stop and restore as chunk by chunk, in fewer
    hand-overs; after Ctrl-C the same partial curve."""
    torch = _torch()
    import lrscope.torch as lt

    end_lr = 1.0 if ending == "completed" else 100.0
    handovers = []
    run_chunks = lt.TorchTrainer.run_chunks

    def counted(self, lrs, chunk, on_chunk, quiet=None):
        def on(values):
            handovers.append(len(values))
            return on_chunk(values)

        return run_chunks(self, lrs, chunk, on, quiet)

    monkeypatch.setattr(lt.TorchTrainer, "run_chunks", counted)
    outcomes = []
    for holds in (True, False):
        monkeypatch.setattr(lt.TorchTrainer, "holds_quiet_chunks", holds)
        model, optimizer, data = _setup("adam")
        steps = {"n": 0}

        def loss_fn(pred, target, steps=steps):
            steps["n"] += 1
            if ending == "ctrl_c" and steps["n"] == 38:
                raise KeyboardInterrupt
            return torch.nn.functional.mse_loss(pred, target)

        before = _everything(model, optimizer)
        handovers.clear()
        result = lt.find_lr(model, optimizer, loss_fn, data, start_lr=1e-4, end_lr=end_lr)
        assert not state_differences(before, _everything(model, optimizer))
        outcomes.append((result, steps["n"], list(handovers)))
    (held, held_steps, held_handovers), (plain, plain_steps, plain_handovers) = outcomes
    assert plain.stop_reason == {"ctrl_c": "interrupted"}.get(ending, ending)
    for name in ("lr", "loss", "smooth_loss"):
        assert getattr(held, name).tobytes() == getattr(plain, name).tobytes(), name
    assert (held.stop_reason, held.stop_step) == (plain.stop_reason, plain.stop_step)
    assert held_steps == plain_steps  # not one step more
    assert set(plain_handovers) == {5}  # auto_chunk(100): every chunk of 5
    assert len(held_handovers) <= len(plain_handovers) // 2
    if ending == "ctrl_c":
        assert held.n_steps == 35 and sum(held_handovers) == 35
