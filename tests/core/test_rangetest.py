import numpy as np
import pytest

from lrscope import (
    DivergenceError,
    FunctionTrainer,
    InvalidParameterError,
    TrainerError,
    find_lr,
    range_test,
)
from lrscope.lab.linreg import linreg_trainer
from lrscope.testing import check_trainer, state_differences


class Quadratic:
    """Minimise 0.5 * a * w^2 by GD: loss after a step is exactly known."""

    def __init__(self, a=2.0, w=1.0, fail_at=None, interrupt_at=None):
        self.a, self.w = a, np.float64(w)
        self.calls = []
        self.fail_at, self.interrupt_at = fail_at, interrupt_at
        self.rng = np.random.default_rng(0)

    def run(self, lrs):
        out = []
        for lr in lrs:
            step = len(self.calls)
            if step == self.fail_at:
                raise RuntimeError("boom")
            if step == self.interrupt_at:
                raise KeyboardInterrupt
            self.calls.append(float(lr))
            out.append(0.5 * self.a * self.w**2)
            self.w = self.w - lr * self.a * self.w + 1e-3 * self.rng.standard_normal()
        return np.array(out)

    def snapshot(self):
        return {"w": self.w.copy(), "rng": self.rng.bit_generator.state}

    def restore(self, state):
        self.w = state["w"].copy()
        self.rng.bit_generator.state = state["rng"]


def test_steps_use_the_ramp_and_chunks_do_not_change_losses():
    a = Quadratic()
    b = Quadratic()
    ra = range_test(a, start_lr=1e-3, end_lr=0.5, steps=40, chunk_size=1)
    rb = range_test(b, start_lr=1e-3, end_lr=0.5, steps=40, chunk_size=7)
    np.testing.assert_array_equal(ra.loss, rb.loss)
    np.testing.assert_array_equal(np.array(a.calls), ra.lr)
    assert ra.stop_reason == "completed" and ra.n_steps == 40


def test_restore_is_bitwise_after_divergence():
    t = Quadratic()
    before = t.snapshot()
    result = range_test(t, start_lr=1e-3, end_lr=100.0, steps=100)
    assert result.stop_reason in ("diverged", "non_finite")
    assert result.n_steps < 100
    assert state_differences(before, t.snapshot()) == []


def test_divergence_on_quadratic_is_past_the_closed_form_bound():
    # GD on 0.5 a w^2 diverges iff lr > 2/a; the stop must come after that LR
    t = Quadratic(a=2.0)
    result = range_test(t, start_lr=1e-3, end_lr=100.0, steps=200, chunk_size=1)
    assert result.lr[result.stop_step] > 2 / 2.0


def test_interrupt_returns_partial_result_and_restores():
    t = Quadratic(interrupt_at=25)
    before = t.snapshot()
    result = range_test(t, start_lr=1e-3, end_lr=0.5, steps=100, chunk_size=10)
    assert result.stop_reason == "interrupted"
    assert result.n_steps == 20 and result.stop_step == 20
    assert state_differences(before, t.snapshot()) == []


def test_exception_propagates_after_restore():
    t = Quadratic(fail_at=13)
    before = t.snapshot()
    with pytest.raises(RuntimeError, match="boom"):
        range_test(t, start_lr=1e-3, end_lr=0.5, steps=50)
    assert state_differences(before, t.snapshot()) == []


def test_raise_on_divergence_raises_after_restore_with_the_result():
    t = Quadratic()
    before = t.snapshot()
    with pytest.raises(DivergenceError) as info:
        range_test(t, start_lr=1e-3, end_lr=100.0, steps=100, raise_on_divergence=True)
    assert info.value.result.stop_reason in ("diverged", "non_finite")
    assert state_differences(before, t.snapshot()) == []


def test_wrong_number_of_losses_is_a_trainer_error():
    class Bad(Quadratic):
        def run(self, lrs):
            return np.zeros(len(lrs) + 1)

    with pytest.raises(TrainerError, match=r"one scalar loss per step"):
        range_test(Bad(), start_lr=1e-3, end_lr=1.0, steps=10)


def test_not_a_trainer_is_a_type_error():
    with pytest.raises(TypeError, match=r"`trainer` must implement run"):
        range_test(object(), start_lr=1e-3, end_lr=1.0, steps=10)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"chunk_size": 0}, "`chunk_size`"),
        ({"beta": 1.0}, "`beta`"),
        ({"diverge_factor": -1.0}, "`diverge_factor`"),
        ({"eval_every": 5}, "evaluate"),
        ({"retest": "yes"}, "`retest` must be True or False"),
    ],
)
def test_bad_engine_options_are_refused(kwargs, match):
    with pytest.raises(InvalidParameterError, match=match):
        range_test(Quadratic(), start_lr=1e-3, end_lr=1.0, steps=10, **kwargs)


def test_eval_every_records_held_out_loss():
    t = Quadratic()
    t.evaluate = lambda: float(t.w**2)
    result = range_test(t, start_lr=1e-3, end_lr=0.5, steps=30, eval_every=10, chunk_size=5)
    np.testing.assert_array_equal(result.val_step, [10, 20, 30])
    assert result.val_loss.shape == (3,)


def test_function_trainer_passes_the_conformance_suite(lesson_data):
    check_trainer(linreg_trainer(lesson_data), diverge_lr=100.0)


def test_check_trainer_catches_a_restore_that_forgets_state():
    t = Quadratic()
    t.restore = lambda state: None  # forgets everything
    with pytest.raises(AssertionError, match="restore did not bring back"):
        check_trainer(t)


def test_check_trainer_catches_unsaved_rng():
    t = Quadratic()
    t.snapshot = lambda: {"w": t.w.copy()}
    t.restore = lambda s: setattr(t, "w", s["w"].copy())
    with pytest.raises(AssertionError, match="replay after restore gave other losses"):
        check_trainer(t)


def test_find_lr_on_plain_callables_restores_state():
    state = {"w": 5.0}

    def step(lr):
        loss = state["w"] ** 2
        state["w"] -= lr * 2 * state["w"]
        return loss

    result = find_lr(
        step,
        snapshot=lambda: dict(state),
        restore=state.update,
        start_lr=1e-4,
        end_lr=10.0,
        steps=60,
    )
    assert state == {"w": 5.0}
    assert result.stop_reason in ("diverged", "non_finite")
    # the quadratic w^2 diverges above lr = 1; the best suggestion must be below it
    assert result.suggest("min_div10").lr < 1.0


def test_function_trainer_rejects_non_scalar_losses():
    t = FunctionTrainer(lambda lr: np.ones(3), dict, lambda s: None)
    with pytest.raises(TrainerError, match="scalar loss"):
        t.run(np.array([0.1]))


def test_callables_of_the_wrong_shape_are_refused_before_the_test():
    """A step that takes no LR, a snapshot that wants an argument or a restore without the
    state used to fail inside the test with Python's own "takes 0 positional arguments"."""
    state = {"w": 1.0}

    def step_without_lr():
        return state["w"] ** 2

    for kwargs, name, form in (
        ({"step": step_without_lr}, "step", r"step\(lr\) -> loss"),
        ({"snapshot": lambda which: dict(state)}, "snapshot", r"snapshot\(\) -> state"),
        ({"restore": lambda: None}, "restore", r"restore\(state\)"),
    ):
        callables = {
            "step": lambda lr: state["w"] ** 2,
            "snapshot": lambda: dict(state),
            "restore": state.update,
            **kwargs,
        }
        with pytest.raises(InvalidParameterError, match=rf"`{name}` must be callable as {form}"):
            find_lr(callables.pop("step"), **callables, steps=10)
    with pytest.raises(InvalidParameterError, match=r"signature='step_without_lr\(\)'"):
        FunctionTrainer(step_without_lr, dict, state.update)
    # builtins without a readable signature (dict) and *args callables are let through
    FunctionTrainer(lambda *args: 0.0, dict, state.update)


def test_non_finite_loss_stops_even_when_divergence_does_not(lesson_data):
    result = range_test(
        linreg_trainer(lesson_data), start_lr=1e-3, end_lr=1e6, steps=100, stop_on_divergence=False
    )
    assert result.stop_reason == "non_finite"
    assert np.isfinite(result.loss[: result.stop_step]).all()
    assert not np.isfinite(result.loss[result.stop_step])


def test_smoothed_curve_of_the_result_equals_smoothing_the_raw_curve():
    from lrscope import smooth_loss

    result = range_test(Quadratic(), start_lr=1e-3, end_lr=0.5, steps=64, chunk_size=5)
    np.testing.assert_array_equal(result.smooth_loss, smooth_loss(result.loss, result.beta))


class ChunkedQuadratic(Quadratic):
    """The Quadratic driving its own chunks (``Trainer.run_chunks``), as fast adapters do."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.chunks = []

    def run_chunks(self, lrs, chunk, on_chunk):
        for begin in range(0, len(lrs), chunk):
            part = lrs[begin : begin + chunk]
            self.chunks.append(len(part))
            if on_chunk(self.run(part).tolist()):
                return


def _same_tests(first, second, test_kwargs):
    """The range test on two trainers (each restored exactly), whose results must be equal
    bit for bit; returns both."""
    results = []
    for t in (first, second):
        t.evaluate = lambda t=t: float(t.w**2)
        before = t.snapshot()
        with np.errstate(over="ignore", invalid="ignore"):  # the non_finite case overflows
            results.append(range_test(t, start_lr=1e-3, **test_kwargs))
        assert state_differences(before, t.snapshot()) == []
    a, b = results
    for name in ("lr", "loss", "smooth_loss", "val_step", "val_loss"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert (a.stop_reason, a.stop_step) == (b.stop_reason, b.stop_step)
    return a, b


@pytest.mark.parametrize(
    ("trainer_kwargs", "test_kwargs", "reason"),
    [
        ({}, {"end_lr": 0.5, "steps": 40, "chunk_size": 7}, "completed"),  # short last chunk
        ({}, {"end_lr": 100.0, "steps": 100}, "diverged"),
        (
            {},
            {"end_lr": 1e200, "steps": 60, "chunk_size": 3, "stop_on_divergence": False},
            "non_finite",
        ),
        ({"interrupt_at": 25}, {"end_lr": 0.5, "steps": 100, "chunk_size": 10}, "interrupted"),
        ({}, {"end_lr": 0.5, "steps": 30, "chunk_size": 4, "eval_every": 6}, "completed"),
    ],
    ids=["completed", "diverged", "non_finite", "interrupted", "eval_every"],
)
def test_run_chunks_gives_bitwise_the_result_of_run(trainer_kwargs, test_kwargs, reason):
    plain, chunked = Quadratic(**trainer_kwargs), ChunkedQuadratic(**trainer_kwargs)
    a, _ = _same_tests(plain, chunked, test_kwargs)
    assert a.stop_reason == reason
    assert chunked.chunks, "the engine did not use run_chunks"
    assert plain.calls == chunked.calls  # the same steps at the same LRs
    if reason == "diverged":  # stopped at the end of the chunk that crossed the threshold
        assert a.n_steps < 100 and a.n_steps % 5 == 0 and a.stop_step >= a.n_steps - 5


class HoldingQuadratic(ChunkedQuadratic):
    """Holds quiet chunks back (``Trainer.holds_quiet_chunks``): as the QuietBound allows
    (``greedy=False``), or every chunk until the last one, bound or not (``greedy=True``)."""

    holds_quiet_chunks = True

    def __init__(self, greedy=False, **kwargs):
        super().__init__(**kwargs)
        self.greedy = greedy
        self.handovers = []

    def run_chunks(self, lrs, chunk, on_chunk, quiet=None):
        if quiet is None:  # evaluating: every chunk
            return super().run_chunks(lrs, chunk, on_chunk)
        held, loud = [], False
        for begin in range(0, len(lrs), chunk):
            part = self.run(lrs[begin : begin + chunk]).tolist()
            held += part
            loud = loud or not all(quiet.low <= v <= quiet.high for v in part)
            if (loud and not self.greedy) or begin + chunk >= len(lrs):
                self.handovers.append(len(held))
                if on_chunk(held):
                    return
                held, loud = [], False


@pytest.mark.parametrize("greedy", [False, True], ids=["by_the_bound", "greedy"])
@pytest.mark.parametrize(
    ("test_kwargs", "reason"),
    [
        ({"end_lr": 0.5, "steps": 40, "chunk_size": 7}, "completed"),  # short last chunk
        ({"end_lr": 100.0, "steps": 100}, "diverged"),
        (
            {"end_lr": 1e200, "steps": 60, "chunk_size": 3, "stop_on_divergence": False},
            "non_finite",
        ),
        ({"end_lr": 0.5, "steps": 30, "chunk_size": 4, "eval_every": 6}, "completed"),
    ],
    ids=["completed", "diverged", "non_finite", "eval_every"],
)
def test_chunks_held_back_give_bitwise_the_chunk_by_chunk_result(greedy, test_kwargs, reason):
    """The recorded curve and the stop do not depend on what a trainer holds back: the engine
    cuts a hand-over at the end of the chunk the test stopped in (a greedy trainer only
    wastes the steps after it)."""
    plain, holding = Quadratic(), HoldingQuadratic(greedy=greedy)
    a, _ = _same_tests(plain, holding, test_kwargs)
    assert a.stop_reason == reason
    if "eval_every" in test_kwargs:
        assert holding.handovers == []  # evaluating every k steps: nothing held back
    elif not greedy:
        assert holding.calls == plain.calls  # by the bound: not one step more
        chunk = test_kwargs.get("chunk_size", 5)
        if reason != "non_finite":  # (that curve blows up before its noise level is known)
            assert len(holding.handovers) <= -(-len(a.loss) // chunk) // 2  # and few hand-overs


def test_a_hand_over_that_is_not_whole_chunks_is_a_trainer_error():
    class Ragged(HoldingQuadratic):
        def run_chunks(self, lrs, chunk, on_chunk, quiet=None):
            on_chunk(self.run(lrs[: chunk + 1]).tolist())

    with pytest.raises(TrainerError, match=r"whole chunks of 5 losses .*; got 6"):
        range_test(Ragged(), start_lr=1e-3, end_lr=0.5, steps=100)


def test_run_chunks_that_breaks_its_promise_is_a_trainer_error():
    class Quits(Quadratic):
        def run_chunks(self, lrs, chunk, on_chunk):
            on_chunk(self.run(lrs[:chunk]).tolist())  # and never the rest

    class Short(Quadratic):
        def run_chunks(self, lrs, chunk, on_chunk):
            on_chunk(self.run(lrs[: chunk - 1]).tolist())

    with pytest.raises(TrainerError, match=r"run_chunks returned after 5 of 100 steps"):
        range_test(Quits(), start_lr=1e-3, end_lr=0.5, steps=100)
    with pytest.raises(TrainerError, match=r"one scalar loss per step: shape \(5,\)"):
        range_test(Short(), start_lr=1e-3, end_lr=0.5, steps=100)


def test_check_trainer_catches_a_run_chunks_that_differs_from_run():
    class Off(ChunkedQuadratic):
        def run_chunks(self, lrs, chunk, on_chunk):
            for begin in range(0, len(lrs), chunk):
                if on_chunk((self.run(lrs[begin : begin + chunk]) * 2).tolist()):
                    return

    class Deaf(ChunkedQuadratic):
        def run_chunks(self, lrs, chunk, on_chunk):
            for begin in range(0, len(lrs), chunk):
                on_chunk(self.run(lrs[begin : begin + chunk]).tolist())

    check_trainer(ChunkedQuadratic())
    with pytest.raises(AssertionError, match="run_chunks gave other losses than run"):
        check_trainer(Off())
    with pytest.raises(AssertionError, match="went on after on_chunk returned True"):
        check_trainer(Deaf())


# -- the slower retest of a curve that broke down ----------------------------------------------
def test_a_curve_that_broke_down_is_tested_again_with_4x_the_steps_from_the_same_start():
    from sweep_targets import BreakingDown

    from lrscope.core.confidence import broke_down
    from lrscope.core.rangetest import RETEST_FACTOR

    trainer = BreakingDown()
    before = trainer.snapshot()
    first = range_test(trainer, retest=False)
    assert broke_down(first) and "broke_down" in first.quality().flags
    assert trainer.snapshot() == before  # restored after each test
    alone = range_test(trainer, steps=100 * RETEST_FACTOR, retest=False)
    result = range_test(trainer)  # retest=True by default
    assert trainer.snapshot() == before
    assert RETEST_FACTOR == 4 and result.steps == 400
    # the second test is exactly a 400-step test from the same start, bit for bit
    np.testing.assert_array_equal(result.lr, alone.lr)
    np.testing.assert_array_equal(result.loss, alone.loss)
    np.testing.assert_array_equal(result.smooth_loss, alone.smooth_loss)
    assert result.metadata == {
        "retest_reason": "broke_down",
        "first_test_steps": 100,
        "first_test_lr": first.suggest().lr,
        "first_test_elapsed_s": result.metadata["first_test_elapsed_s"],
    }
    assert 0 < result.metadata["first_test_elapsed_s"] < result.elapsed_s * 10
    # the user's metadata is kept beside the retest's
    tagged = range_test(trainer, metadata={"run": "a"})
    assert tagged.metadata["run"] == "a" and tagged.metadata["first_test_steps"] == 100


def test_a_curve_that_did_not_break_down_is_tested_once(lesson_data):
    t = Quadratic()
    result = range_test(t, start_lr=1e-3, end_lr=100.0, steps=100)
    assert "broke_down" not in result.quality().flags and result.stop_reason == "diverged"
    assert result.steps == 100 and len(t.calls) == result.n_steps  # one test, no more steps
    assert "retest_reason" not in result.metadata
    lesson = range_test(linreg_trainer(lesson_data), steps=100)
    assert lesson.steps == 100 and lesson.metadata == {}


def test_the_retest_scales_eval_every_and_raise_on_divergence_sees_its_result():
    from sweep_targets import BreakingDown

    trainer = BreakingDown()
    result = range_test(trainer, eval_every=5, chunk_size=5)
    assert result.steps == 400
    # the retest evaluated every 20 steps: the same number of points per decade of LR
    assert result.val_step.tolist() == list(range(20, result.n_steps + 1, 20))
    assert result.stop_reason == "diverged"
    with pytest.raises(DivergenceError) as caught:
        range_test(BreakingDown(), raise_on_divergence=True)
    assert caught.value.result.steps == 400
    assert caught.value.result.metadata["first_test_steps"] == 100


def test_ctrl_c_during_the_retest_returns_its_partial_curve_and_restores():
    from sweep_targets import BreakingDown

    class Interrupted(BreakingDown):
        def run(self, lrs):
            if self.total >= 150:  # 100-odd steps of the first test, then 50 of the retest
                raise KeyboardInterrupt
            self.total += len(lrs)
            return super().run(lrs)

    trainer = Interrupted()
    trainer.total = 0
    before = trainer.snapshot()
    result = range_test(trainer)
    assert result.stop_reason == "interrupted" and result.steps == 400
    assert 0 < result.n_steps < 100
    assert isinstance(result.metadata["first_test_lr"], float)
    assert "interrupted" in result.quality().flags
    assert trainer.snapshot() == before


def test_the_words_say_when_a_test_was_run_again():
    from sweep_targets import BreakingDown

    from lrscope.core.confidence import retest_note, warnings_text
    from lrscope.viz.text import suggestions_table

    once = range_test(BreakingDown(), retest=False)
    assert retest_note(once) is None
    [words] = warnings_text(once)
    assert "steps=400" in words and "retest=True" in words
    again = range_test(BreakingDown())
    note = retest_note(again)
    assert note is not None and "first test (100 steps) broke down" in note
    assert f"its default read {once.suggest().lr:.3g}" in note and "with 400 steps" in note
    [words] = warnings_text(again)  # still broke down: verify is what is left
    assert "also in this test with 4x the steps" in words and "lrscope.verify" in words
    assert "steps=400" not in words
    table = suggestions_table(again)
    assert f"note: {note}" in table and f"warning: {words}" in table
