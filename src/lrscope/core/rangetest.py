"""The range-test engine: ramp the LR, run chunks, record, stop, and always restore."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

import numpy as np

from lrscope.core.progress import Progress
from lrscope.core.ramp import lr_ramp
from lrscope.core.result import RangeTestResult
from lrscope.core.stopping import CurveMonitor
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
) -> RangeTestResult:
    """Run an LR range test on any :class:`~lrscope.Trainer` and restore it exactly after.

    The LR rises from ``start_lr`` to ``end_lr`` over ``steps`` steps (``mode`` "exp" or
    "linear"). The test stops early when the loss becomes non-finite or the smoothed loss
    blows up (see :func:`lrscope.core.stopping.divergence_threshold`); it may overshoot the
    stop by at most one chunk. Whatever happens (completion, divergence, an exception, Ctrl-C)
    the trainer's state is restored from a snapshot taken before the first step. Ctrl-C
    returns the partial result with ``stop_reason="interrupted"``; other exceptions propagate
    after the restore.

    ``eval_every=k`` calls ``trainer.evaluate()`` every k steps when the trainer has it.

    >>> result = range_test(my_trainer, start_lr=1e-5, end_lr=1.0, steps=100)  # doctest: +SKIP
    >>> result.suggest().lr                                                    # doctest: +SKIP
    """
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
    meter = Progress(len(lrs), "range test", enabled=progress)
    total = int(lrs.size)

    def take(new: list[float]) -> bool:
        """Record the next chunk's losses; True when the test should stop."""
        expected = min(chunk, total - len(losses))
        if type(new) is not list or len(new) != expected:
            new = _as_losses(new, expected).tolist()
        # smoothing and check_stop on the whole curve so far, without rescanning it
        new_smooth, reason, index = monitor.extend(new)
        losses.extend(new)
        smoothed.extend(new_smooth)
        done = len(losses)
        if evaluate is not None and eval_every and done % eval_every < len(new):
            val_step.append(done)
            val_loss.append(float(evaluate()))
        if progress:
            meter.update(done, new[-1])
        if reason == "completed":
            return False
        if reason == "diverged" and not stop_on_divergence:
            # keep going past a divergence, but never past a non-finite loss
            finite = np.isfinite(np.array(losses))
            if finite.all():
                return False
            reason, index = "non_finite", int(np.argmin(finite))
        stop.append((reason, index))
        return True

    run_chunks = getattr(trainer, "run_chunks", None)
    began = time.perf_counter()
    snapshot = trainer.snapshot()
    try:
        if callable(run_chunks):
            # The trainer drives the chunks (fewer round trips); the same steps and losses.
            run_chunks(lrs, chunk, take)
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
    if raise_on_divergence and stop_reason in ("diverged", "non_finite"):
        raise DivergenceError(
            f"range test {stop_reason} at step {stop_step} (lr={lrs[stop_step or 0]:.3g}); "
            "the trainer was restored",
            result,
        )
    return result
