"""Conformance checks for Trainer implementations: ``check_trainer(trainer)``.

Every adapter's tests go through this, and users writing their own Trainer can too. It checks
what the engine relies on: ``run`` returns one float loss per step, ``restore`` brings back
the snapshot bit for bit, and (through that) a replay after restore gives bitwise the same
losses — which fails when RNG state, optimizer slots or the data position are not captured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lrscope.core.rangetest import range_test
from lrscope.core.trainer import Trainer


def _leaf(value: Any) -> Any:
    if hasattr(value, "detach"):  # torch tensors, without importing torch
        value = value.detach().cpu()
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        try:
            return np.asarray(value.numpy())
        except (TypeError, RuntimeError, ValueError):
            return value
    if isinstance(value, (np.ndarray, np.generic, float, int, bool, complex)):
        return np.asarray(value)
    try:
        return np.asarray(value)  # jax arrays and other array-likes
    except (TypeError, ValueError, RuntimeError):
        return value


def state_differences(before: Any, after: Any, path: str = "state") -> list[str]:
    """Paths where two snapshots differ (dtype, shape or any bit); empty when identical.

    Walks dicts, lists and tuples; compares array-likes bitwise (NaNs equal to NaNs in the same
    place) and anything else with ``==``.
    """
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        if set(before) != set(after):
            return [f"{path}: keys differ ({sorted(map(str, set(before) ^ set(after)))})"]
        out: list[str] = []
        for key in before:
            out += state_differences(before[key], after[key], f"{path}[{key!r}]")
        return out
    if (
        isinstance(before, Sequence)
        and isinstance(after, Sequence)
        and not isinstance(before, (str, bytes))
        and not isinstance(after, (str, bytes))
    ):
        if len(before) != len(after):
            return [f"{path}: lengths differ ({len(before)} vs {len(after)})"]
        out = []
        for i, (a, b) in enumerate(zip(before, after, strict=False)):
            out += state_differences(a, b, f"{path}[{i}]")
        return out
    a, b = _leaf(before), _leaf(after)
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        if a.dtype != b.dtype or a.shape != b.shape:
            return [f"{path}: dtype/shape {a.dtype}{a.shape} vs {b.dtype}{b.shape}"]
        if a.dtype == object:
            same = np.array_equal(a, b)
        else:
            same = np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()
        return [] if same else [f"{path}: values differ"]
    try:
        same = bool(before == after)
    except (TypeError, ValueError):
        same = before is after
    return [] if same else [f"{path}: {before!r} != {after!r}"]


def _handed_chunks(
    run_chunks: Any, lrs: np.ndarray, chunk: int, stop_after: int | None = None
) -> list[list[float]]:
    """What ``run_chunks`` hands to ``on_chunk``, chunk by chunk; ``on_chunk`` says stop
    after ``stop_after`` chunks (never when None)."""
    handed: list[list[float]] = []

    def on_chunk(losses: list[float]) -> bool:
        handed.append([float(value) for value in losses])
        return stop_after is not None and len(handed) >= stop_after

    run_chunks(lrs, chunk, on_chunk)
    return handed


def check_trainer(
    trainer: Trainer,
    lrs: Sequence[float] | np.ndarray = (1e-3, 2e-3, 4e-3),
    diverge_lr: float | None = None,
) -> None:
    """Raise AssertionError naming the first broken promise of ``trainer``.

    Checks: ``run`` returns ``len(lrs)`` float losses; ``restore(snapshot())`` after steps
    brings back the state bit for bit; replaying the same LRs after restore gives bitwise the
    same losses; a ``run_chunks`` method, when the trainer has one, gives those same losses
    chunk by chunk and stops when told to; with ``diverge_lr`` a range test up to that LR
    stops (diverged or non-finite) and leaves the state as it found it.
    """
    lrs = np.asarray(lrs, dtype=np.float64)
    before = trainer.snapshot()
    first = np.asarray(trainer.run(lrs))
    assert first.shape == (len(lrs),), f"run returned shape {first.shape}, not ({len(lrs)},)"
    assert np.issubdtype(first.dtype, np.floating), f"run returned dtype {first.dtype}"
    trainer.restore(before)
    diffs = state_differences(before, trainer.snapshot())
    assert not diffs, "restore did not bring back the snapshot: " + "; ".join(diffs[:5])
    again = np.asarray(trainer.run(lrs))
    assert np.array_equal(first, again, equal_nan=True), (
        f"replay after restore gave other losses ({first} vs {again}): some state a step "
        "changes (RNG, optimizer slots, data position) is not in the snapshot"
    )
    trainer.restore(before)
    run_chunks = getattr(trainer, "run_chunks", None)
    if callable(run_chunks):
        handed = _handed_chunks(run_chunks, lrs, 2)
        sizes = [len(lrs[i : i + 2]) for i in range(0, len(lrs), 2)]
        assert [len(part) for part in handed] == sizes, (
            f"run_chunks(chunk=2) handed over chunks of {[len(p) for p in handed]} losses, "
            f"not {sizes}"
        )
        chunked = np.array([value for part in handed for value in part], dtype=np.float64)
        assert np.array_equal(first, chunked, equal_nan=True), (
            f"run_chunks gave other losses than run ({chunked} vs {first})"
        )
        trainer.restore(before)
        handed = _handed_chunks(run_chunks, lrs, 1, stop_after=1)
        assert len(handed) == 1, f"run_chunks went on after on_chunk returned True ({handed})"
        trainer.restore(before)
    if diverge_lr is not None:
        result = range_test(trainer, start_lr=float(lrs[0]), end_lr=diverge_lr, steps=50)
        assert result.stop_reason in ("diverged", "non_finite"), (
            f"a range test up to lr={diverge_lr} ended {result.stop_reason!r}"
        )
        diffs = state_differences(before, trainer.snapshot())
        assert not diffs, "state changed after a diverged range test: " + "; ".join(diffs[:5])
