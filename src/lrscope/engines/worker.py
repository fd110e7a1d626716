"""What a worker process does for one run: build (or reuse) the trainer, run one LR.

Used by the process pool and by Ray tasks, so it must be importable by name (no closures).
A worker keeps the last few trainers it built (keyed by factory identity and seed): building a
model is often slower than a short run, and every run starts from the trainer's snapshot, so
reuse cannot leak state from one run into the next.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lrscope.core.sweep import RunOptions, RunRecord, run_one
from lrscope.core.trainer import Trainer
from lrscope.targets import build_trainer, describe_callable

_CACHE_SIZE = 4
_TRAINERS: OrderedDict[tuple[str, int | None], Trainer] = OrderedDict()


@dataclass(frozen=True)
class Task:
    """One run to do: the LR and seed, and their positions in the sweep."""

    seed_index: int
    lr_index: int
    lr: float
    seed: int | None


def error_record(task: Task, error: str, wall_s: float = float("nan")) -> RunRecord:
    """A record for a run that produced nothing but an error (e.g. its worker died)."""
    return RunRecord(
        lr_index=task.lr_index,
        seed_index=task.seed_index,
        lr=task.lr,
        seed=task.seed,
        loss=np.zeros(0),
        eval_step=np.zeros(0, dtype=np.int64),
        val_loss=np.zeros(0),
        diverged_at=None,
        wall_s=wall_s,
        error=error,
    )


def execute(factory: str | Callable[..., Any], task: Task, options: RunOptions) -> RunRecord:
    """Run one task in this process; a factory that raises gives an error record."""
    key = (factory if isinstance(factory, str) else describe_callable(factory), task.seed)
    trainer = _TRAINERS.get(key)
    if trainer is None:
        began = time.perf_counter()
        try:
            trainer = build_trainer(factory, task.seed)
        except Exception as exc:  # recorded like a failing run
            return error_record(
                task,
                f"building the trainer: {type(exc).__name__}: {exc}",
                time.perf_counter() - began,
            )
        _TRAINERS[key] = trainer
        while len(_TRAINERS) > _CACHE_SIZE:
            _TRAINERS.popitem(last=False)
    else:
        _TRAINERS.move_to_end(key)
    return run_one(
        trainer,
        task.lr,
        options,
        lr_index=task.lr_index,
        seed_index=task.seed_index,
        seed=task.seed,
    )
