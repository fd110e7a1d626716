"""Trainer factories for the sweep tests, loaded by path ("tests/sweep_targets.py:name") in
spawned processes and Ray workers."""

from __future__ import annotations

import os

import numpy as np

from lrscope.lab.linreg import linreg_trainer, make_data, mse

CRASH_LR = 0.5
RAISE_LR = 0.2


def lesson(seed: int | None = None):
    """The lesson's trainer with an exact held-out loss (the loss after the steps taken)."""
    data = make_data(seed=0 if seed is None else seed)
    trainer = linreg_trainer(data)
    trainer.evaluate = lambda: float(mse(trainer.state["w"], trainer.state["b"], data.x, data.y))
    return trainer


def crashing():
    """Kills its own process (like a segfault or the OOM killer) when run at CRASH_LR."""
    trainer = lesson()
    run = trainer.run

    def run_or_die(lrs):
        if np.any(lrs == CRASH_LR):
            os._exit(1)
        return run(lrs)

    trainer.run = run_or_die
    return trainer


def raising():
    """Raises ValueError after 3 steps when run at RAISE_LR."""
    trainer = lesson()
    step = trainer._step
    count = {"n": 0}

    def step_or_raise(lr):
        if lr == RAISE_LR:
            count["n"] += 1
            if count["n"] > 3:
                count["n"] = 0
                raise ValueError("boom at lr=0.2")
        return step(lr)

    trainer._step = step_or_raise
    return trainer


def not_a_trainer():
    return 42
