"""A sweep over a hand-written PyTorch Trainer (SGD with momentum): every run starts from the
same state, and the model and optimizer end bit for bit as they were."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from conftest import needs

import lrscope
from lrscope.testing import state_differences

pytestmark = [pytest.mark.torch, needs("torch")]


class TinyTorchTrainer:
    def __init__(self, seed=0):
        import torch

        self.torch = torch
        torch.manual_seed(seed)
        self.x = torch.randn(64, 4)
        self.y = self.x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
        self.model = torch.nn.Sequential(
            torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)
        )
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9)

    def run(self, lrs):
        out = np.empty(len(lrs))
        for i, lr in enumerate(lrs):
            for group in self.optimizer.param_groups:
                group["lr"] = float(lr)
            batch = self.torch.randint(0, 64, (16,))  # consumes the torch RNG
            loss = self.torch.nn.functional.mse_loss(self.model(self.x[batch]), self.y[batch])
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            out[i] = float(loss.detach())
        return out

    def snapshot(self):
        return {
            "model": copy.deepcopy(self.model.state_dict()),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "rng": self.torch.get_rng_state(),
        }

    def restore(self, state):
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        self.torch.set_rng_state(state["rng"])


def test_sweep_runs_each_lr_from_the_same_state_and_restores_torch_exactly():
    trainer = TinyTorchTrainer()
    trainer.run(np.full(5, 0.01))  # momentum buffers exist: they must be restored too
    before = trainer.snapshot()
    lrs = [0.003, 0.03, 0.3]
    result = lrscope.sweep(trainer, lrs, steps=25)
    assert state_differences(before, trainer.snapshot()) == []
    tails = []
    for r, lr in enumerate(lrs):  # each run equals a lone run from the same start
        alone = TinyTorchTrainer()
        alone.restore(before)
        expected = alone.run(np.full(25, lr))
        ran = np.isfinite(result.loss[0, r])
        np.testing.assert_array_equal(result.loss[0, r, ran], expected[ran])
        tails.append(expected[-5:].mean() if result.status[0, r] == "ok" else np.inf)
    assert result.best_lr(25) == lrs[int(np.argmin(tails))]
