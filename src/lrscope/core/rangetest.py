"""The range-test engine: ramp the LR, run chunks, record, stop, and always restore."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from lrscope.core.confidence import broke_down
from lrscope.core.progress import Progress
from lrscope.core.ramp import lr_ramp
from lrscope.core.result import RangeTestResult
from lrscope.core.stopping import QUIET_LOW, CurveMonitor
from lrscope.core.trainer import NEEDS_EVALUATE, Trainer
from lrscope.errors import DivergenceError, TrainerError, invalid


def _check_trainer_shape(trainer: object) -> None:
    for name in ("run", "snapshot", "restore"):
        if not callable(getattr(trainer, name, None)):
            raise TypeError(
                f"Argument `trainer` must implement run(lrs), snapshot() and restore(state) "
                f"(see lrscope.Trainer); {type(trainer).__name__} has no callable `{name}`"
            )


def _as_losses(values: object, expected: int) -> np.ndarray:
    try:
        losses = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TrainerError(f"Trainer.run must return numbers; got {type(values).__name__}") from exc
    if losses.shape != (expected,):
        raise TrainerError(
            f"Trainer.run must return one scalar loss per step: shape ({expected},); "
            f"got shape {losses.shape}"
        )
    return losses


class QuietBound:
    """What the range test tells a trainer that may hold quiet chunks back.

    A trainer with ``holds_quiet_chunks = True`` and ``run_chunks`` gets it as a fourth
    argument, ``run_chunks(lrs, chunk, on_chunk, quiet)``. While every loss of the chunks it
    has not handed over yet is finite and inside ``[quiet.low, quiet.high]``, the test cannot
    stop in them (:meth:`~lrscope.core.stopping.CurveMonitor.quiet_bound`), so the trainer may
    keep stepping and hand several whole chunks over in one ``on_chunk`` call. It hands over
    at the end of the first chunk with a loss outside, and at the end of the ramp. ``high`` is
    updated after every hand-over (``-inf``: hand over every chunk).

    Each hand-over of a small model's chunk costs several times its microbenchmark (the steps
    in between evict the engine's code and data from the CPU caches), so a test that stops
    late makes a few hand-overs instead of ~20. The recorded curve and the stop are those of a
    chunk-by-chunk test whatever the trainer holds back: the engine cuts a hand-over at the
    end of the chunk the test stopped in.
    """

    __slots__ = ("high", "low")

    def __init__(self) -> None:
        self.low = QUIET_LOW
        self.high = -math.inf


#: A test whose curve broke down is run again with this many times the steps (range_test's
#: ``retest``): the 400-step test read the quality benchmark's CNN within 0.12 decades over
#: five seeds, where the 100-step one spread 0.77 (benchmarks/results/ramp_length.md).
RETEST_FACTOR = 4


def auto_chunk(steps: int) -> int:
    """Steps per ``Trainer.run`` call: ~20 host syncs per test, never more than 32 steps of
    overshoot after a divergence."""
    return int(min(32, max(1, math.ceil(steps / 20))))


def range_test(
    trainer: Trainer,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 100,
    mode: str = "exp",
    beta: float = 0.98,
    diverge_factor: float = 3.0,
    stop_on_divergence: bool = True,
    raise_on_divergence: bool = False,
    chunk_size: int | None = None,
    eval_every: int | None = None,
    lr_diverge: float | None = None,
    metadata: Mapping[str, str | int | float | bool | None] | None = None,
    progress: bool = False,
    retest: bool = True,
) -> RangeTestResult:
    """Run an LR range test on any :class:`~lrscope.Trainer` and restore it exactly after.

    The LR rises from ``start_lr`` to ``end_lr`` over ``steps`` steps (``mode`` "exp" or
    "linear"). The test stops early when the loss becomes non-finite or the smoothed loss
    blows up (see :func:`lrscope.core.stopping.divergence_threshold`); it may overshoot the
    stop by at most one chunk. Whatever happens (completion, divergence, an exception, Ctrl-C)
    the trainer's state is restored from a snapshot taken before the first step. Ctrl-C
    returns the partial result with ``stop_reason="interrupted"``; other exceptions propagate
    after the restore.

    ``retest=True`` (the default): when the loss fell for only a few steps and then went back
    to about its starting level instead of blowing up (:func:`lrscope.core.confidence.
    broke_down`, the ``broke_down`` quality flag), the test runs once more over the same LR
    range with :data:`RETEST_FACTOR` (4) times the steps (and ``eval_every``), from the same
    restored start, and that test is returned. The rules that read the edge read such a
    100-step curve several times too low, and differently on every seed; the slower ramp lets
    the model train before it reaches the edge. On the quality benchmark this took the
    default's worst mean-score regret from 1.27 to 1.05 and its seed spread from 0.77 to 0.24
    decades (docs/quality.md). The returned result's ``metadata`` then says so: ``retest_reason``,
    ``first_test_steps``, ``first_test_lr`` (the first test's default suggestion) and
    ``first_test_elapsed_s``. ``retest=False`` always runs exactly one test.

    ``eval_every=k`` calls ``trainer.evaluate()`` every k steps when the trainer has it.

    >>> result = range_test(my_trainer, start_lr=1e-5, end_lr=1.0, steps=100)  # doctest: +SKIP
    >>> result.suggest().lr                                                    # doctest: +SKIP
    """
    if not isinstance(retest, bool):
        raise invalid("retest", "must be True or False", retest=retest)
    same: dict[str, Any] = {  # every option but the length, the evaluation period and the metadata
        "start_lr": start_lr,
        "end_lr": end_lr,
        "mode": mode,
        "beta": beta,
        "diverge_factor": diverge_factor,
        "stop_on_divergence": stop_on_divergence,
        "chunk_size": chunk_size,
        "lr_diverge": lr_diverge,
        "progress": progress,
    }
    result = _one_test(trainer, steps=steps, eval_every=eval_every, metadata=metadata, **same)
    if retest and result.stop_reason != "interrupted" and broke_down(result):
        first = result
        result = _one_test(
            trainer,
            steps=steps * RETEST_FACTOR,
            eval_every=None if eval_every is None else eval_every * RETEST_FACTOR,
            metadata={
                **dict(metadata or {}),
                "retest_reason": "broke_down",
                "first_test_steps": first.steps,
                "first_test_lr": first.suggest().lr,
                "first_test_elapsed_s": first.elapsed_s,
            },
            label=f"range test again, {RETEST_FACTOR}x the steps (the first broke down)",
            **same,
        )
    if raise_on_divergence and result.stop_reason in ("diverged", "non_finite"):
        raise DivergenceError(
            f"range test {result.stop_reason} at step {result.stop_step} "
            f"(lr={result.lr[min(result.stop_step or 0, result.n_steps - 1)]:.3g}); "
            "the trainer was restored",
            result,
        )
    return result


def _one_test(
    trainer: Trainer,
    *,
    start_lr: float,
    end_lr: float,
    steps: int,
    mode: str,
    beta: float,
    diverge_factor: float,
    stop_on_divergence: bool,
    chunk_size: int | None,
    eval_every: int | None,
    lr_diverge: float | None,
    metadata: Mapping[str, str | int | float | bool | None] | None,
    progress: bool,
    label: str = "range test",
) -> RangeTestResult:
    """One range test (what :func:`range_test` runs, once or twice), restored after."""
    _check_trainer_shape(trainer)
    lrs = lr_ramp(start_lr, end_lr, steps, mode)
    if not 0.0 <= beta < 1.0:
        raise invalid("beta", "must be in [0, 1)", beta=beta)
    if not (diverge_factor > 0 and math.isfinite(diverge_factor)):
        raise invalid(
            "diverge_factor", "must be a positive finite number", diverge_factor=diverge_factor
        )
    if chunk_size is not None and (
        isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
    ):
        raise invalid("chunk_size", "must be None or an integer >= 1", chunk_size=chunk_size)
    if eval_every is not None and (
        isinstance(eval_every, bool) or not isinstance(eval_every, int) or eval_every < 1
    ):
        raise invalid("eval_every", "must be None or an integer >= 1", eval_every=eval_every)
    evaluate = getattr(trainer, "evaluate", None) if eval_every else None
    if eval_every and not callable(evaluate):
        raise invalid("eval_every", NEEDS_EVALUATE, eval_every=eval_every)
    chunk = chunk_size or auto_chunk(steps)

    # Python floats during the test, arrays once at the end: a chunk is a handful of values,
    # and NumPy calls between a small model's steps cost several times their cost alone.
    losses: list[float] = []
    smoothed: list[float] = []
    monitor = CurveMonitor(beta, diverge_factor)
    val_step: list[int] = []
    val_loss: list[float] = []
    stop: list[tuple[str, int | None]] = []  # (reason, step) once the test should end
    meter = Progress(len(lrs), label, enabled=progress)
    total = int(lrs.size)

    run_chunks = getattr(trainer, "run_chunks", None)
    # A trainer that can read each loss as it comes (PyTorch on the CPU) may hold quiet
    # chunks back and hand them over together; see Trainer's docstring and QuietBound.
    quiet = (
        QuietBound()
        if evaluate is None
        and callable(run_chunks)
        and getattr(trainer, "holds_quiet_chunks", False)
        else None
    )

    def take(new: list[float]) -> bool:
        """Record the next chunk's losses (whole chunks, with ``quiet``); True when the test
        should stop."""
        before = len(losses)
        left = total - before
        if quiet is None:
            expected = min(chunk, left)
            if type(new) is not list or len(new) != expected:
                new = _as_losses(new, expected).tolist()
        elif type(new) is not list or not (
            0 < len(new) <= left and (len(new) % chunk == 0 or len(new) == left)
        ):
            raise TrainerError(
                f"Trainer.run_chunks must hand over whole chunks of {chunk} losses (or the "
                f"last {left % chunk or chunk}) as a list of floats; got "
                f"{len(new) if type(new) is list else type(new).__name__}"
            )
        # smoothing and check_stop on the whole curve so far, without rescanning it
        new_smooth, reason, index = monitor.extend(new)
        losses.extend(new)
        smoothed.extend(new_smooth)
        if reason == "diverged" and not stop_on_divergence:
            # keep going past a divergence, but never past a non-finite loss
            finite = np.isfinite(np.array(losses))
            reason, index = (
                ("completed", index) if finite.all() else ("non_finite", int(np.argmin(finite)))
            )
        if reason != "completed" and quiet is not None:
            # Held-back chunks after the one the test stopped in were never to be run: the
            # curve ends where a chunk-by-chunk test ends, whatever the trainer held back.
            del losses[(index // chunk + 1) * chunk :], smoothed[(index // chunk + 1) * chunk :]
        done = len(losses)
        if evaluate is not None and eval_every and done % eval_every < len(new):
            val_step.append(done)
            val_loss.append(float(evaluate()))
        if progress:
            meter.update(done, losses[-1])
        if reason == "completed":
            if quiet is not None:
                quiet.high = monitor.quiet_bound()
            return False
        stop.append((reason, index))
        return True

    began = time.perf_counter()
    snapshot = trainer.snapshot()
    try:
        if callable(run_chunks):
            # The trainer drives the chunks (fewer round trips); the same steps and losses.
            if quiet is None:
                run_chunks(lrs, chunk, take)
            else:
                run_chunks(lrs, chunk, take, quiet)
            if not stop and len(losses) != lrs.size:
                raise TrainerError(
                    f"Trainer.run_chunks returned after {len(losses)} of {lrs.size} steps "
                    "without being told to stop (on_chunk returned False every time)"
                )
        else:
            for begin in range(0, lrs.size, chunk):
                part = lrs[begin : begin + chunk]
                if take(_as_losses(trainer.run(part), len(part)).tolist()):
                    break
        stop_reason, stop_step = stop[0] if stop else ("completed", None)
    except KeyboardInterrupt:
        stop_reason, stop_step = "interrupted", len(losses)
    finally:
        try:
            trainer.restore(snapshot)
        finally:
            meter.close()
    raw = np.array(losses, dtype=np.float64)
    result = RangeTestResult(
        lr=lrs[: raw.size].copy(),
        loss=raw,
        smooth_loss=np.array(smoothed, dtype=np.float64),
        stop_reason=stop_reason,
        stop_step=stop_step,
        start_lr=float(start_lr),
        end_lr=float(end_lr),
        steps=int(steps),
        mode=mode,
        beta=float(beta),
        diverge_factor=float(diverge_factor),
        lr_diverge=lr_diverge,
        val_step=np.array(val_step, dtype=np.int64),
        val_loss=np.array(val_loss),
        elapsed_s=time.perf_counter() - began,
        metadata=dict(metadata or {}),
    )
    return result
