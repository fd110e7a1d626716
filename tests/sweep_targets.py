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


class BreakingDown:
    """A trainer whose range test breaks down like the quality benchmark's digits CNN: the
    loss sits at chance level (2.3) up to LR 0.05, falls to 1.3 by LR 0.3, then goes back to
    chance level with a spike every 5th step instead of blowing up. The loss depends on the
    LR (and the step count, for the spikes) only, so a slower ramp draws the same shape."""

    def __init__(self) -> None:
        self.steps_run = 0
        self.evaluated: list[int] = []
        self.rng = np.random.default_rng(0)

    def _loss(self, lr: float) -> float:
        noise = 0.01 * float(self.rng.standard_normal())
        if lr <= 0.05:
            return 2.3 + noise
        if lr <= 0.3:
            return 2.2 - 0.9 * np.log(lr / 0.05) / np.log(0.3 / 0.05) + noise
        return 2.4 + (6.0 if self.steps_run % 5 == 1 else 0.0) + noise

    def run(self, lrs: np.ndarray) -> np.ndarray:
        out = []
        for lr in lrs:
            out.append(self._loss(float(lr)))
            self.steps_run += 1
        return np.array(out)

    def snapshot(self) -> dict:
        return {"steps_run": self.steps_run, "rng": self.rng.bit_generator.state}

    def restore(self, state: dict) -> None:
        self.steps_run = state["steps_run"]
        self.rng.bit_generator.state = state["rng"]

    def evaluate(self) -> float:
        self.evaluated.append(self.steps_run)
        return 1.0


def breaking_down() -> BreakingDown:
    return BreakingDown()
