"""Benchmark tasks: small, deterministic training problems exposed as lrscope Trainers.

Every task builds a fresh trainer from a seed (the seed fixes the initial weights, the data
split and the mini-batch order), so "the same start" is just ``task.make(seed)`` again. The
batch used at step t depends only on t (a precomputed schedule), which makes the data
position part of the snapshot for free and every run bitwise repeatable.

The score of a run is ``trainer.score()``: the test-split loss after the budget for the
learned tasks (what a user keeps; on a loss that can reach ~0 on the training set a *ratio*
of training losses would blow up between two equally perfect fits), and the exact training
loss for the lesson (a noiseless-enough convex quadratic whose floor is the noise variance).
A non-finite score counts as diverged (inf). ``trainer.evaluate()`` (what ``lrscope.verify``
ranks candidates by) is the loss on a separate validation split, never the test split.

The torch trainers here are deliberately self-contained (not ``lrscope.torch``): the
benchmark must keep measuring the rules even while the adapter changes.
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from lrscope.lab import linreg


@dataclass(frozen=True)
class Task:
    """A problem, its LR grid for the oracle and its two step budgets."""

    name: str
    description: str
    make: Callable[[int], object]
    grid: np.ndarray  # oracle LRs, log-spaced
    budgets: tuple[int, int]  # (short, long)
    needs_torch: bool = True
    range_test: dict[str, float | int] = field(default_factory=dict)


def log_grid(low: float, high: float, per_decade: int = 4) -> np.ndarray:
    """LRs from ``low`` to ``high`` with ``per_decade`` points per decade (both ends in)."""
    count = round(math.log10(high / low) * per_decade) + 1
    return np.logspace(math.log10(low), math.log10(high), count)


# -- the lesson ------------------------------------------------------------------------------
class LinRegTask:
    """The lesson's float32 full-batch GD; the seed draws the data set."""

    def __init__(self, seed: int) -> None:
        self.data = linreg.make_data(seed=seed)
        self.moments = linreg.Moments.of(self.data)
        self.trainer = linreg.linreg_trainer(self.data)

    def run(self, lrs: np.ndarray) -> np.ndarray:
        return self.trainer.run(lrs)

    def snapshot(self) -> object:
        return self.trainer.snapshot()

    def restore(self, state: object) -> None:
        self.trainer.restore(state)

    def evaluate(self) -> float:
        """The full-batch training loss at the current weights: the lesson's objective (it
        has no held-out split), what lrscope.verify ranks candidates by."""
        return self.score()

    def score(self) -> float:
        state = self.trainer.state  # type: ignore[attr-defined]
        with np.errstate(all="ignore"):
            value = float(self.moments.loss(float(state["w"]), float(state["b"])))
        return value if math.isfinite(value) else math.inf


# -- torch tasks -----------------------------------------------------------------------------
class TorchTask:
    """A torch model + optimizer stepping through a fixed batch schedule.

    ``batches[t]`` holds the training-row indices of step t; ``score()`` is the mean loss on
    the held-out rows. No dropout and no other randomness during a step, so the state is the
    weights, the optimizer state and the step counter.
    """

    def __init__(
        self,
        model: object,
        optimizer: object,
        loss_fn: Callable[..., object],
        x_train: object,
        y_train: object,
        x_val: object,
        y_val: object,
        batches: np.ndarray,
        x_test: object,
        y_test: object,
    ) -> None:
        import torch

        self.torch = torch
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.x_train, self.y_train = x_train, y_train
        self.x_val, self.y_val = x_val, y_val
        self.x_test, self.y_test = x_test, y_test
        self.batches = torch.as_tensor(batches)
        self.step = 0

    def run(self, lrs: np.ndarray) -> np.ndarray:
        torch = self.torch
        out = np.empty(len(lrs))
        for i, lr in enumerate(lrs):
            rows = self.batches[self.step % len(self.batches)]
            for group in self.optimizer.param_groups:  # type: ignore[attr-defined]
                group["lr"] = float(lr)
            self.optimizer.zero_grad(set_to_none=True)  # type: ignore[attr-defined]
            loss = self.loss_fn(self.model(self.x_train[rows]), self.y_train[rows])  # type: ignore[operator]
            value = float(loss.item())  # type: ignore[attr-defined]
            out[i] = value
            self.step += 1
            if not math.isfinite(value):
                out[i + 1 :] = math.nan
                break
            loss.backward()  # type: ignore[attr-defined]
            with torch.no_grad():
                self.optimizer.step()  # type: ignore[attr-defined]
        return out

    def snapshot(self) -> object:
        return copy.deepcopy(
            (self.model.state_dict(), self.optimizer.state_dict(), self.step)  # type: ignore[attr-defined]
        )

    def restore(self, state: object) -> None:
        weights, slots, step = copy.deepcopy(state)  # type: ignore[misc]
        self.model.load_state_dict(weights)  # type: ignore[attr-defined]
        self.optimizer.load_state_dict(slots)  # type: ignore[attr-defined]
        self.step = step

    def _loss_on(self, x: object, y: object) -> float:
        with self.torch.no_grad():
            value = float(self.loss_fn(self.model(x), y).item())  # type: ignore[operator]
        return value if math.isfinite(value) else math.inf

    def evaluate(self) -> float:
        """Validation-split loss (for lrscope.verify)."""
        return self._loss_on(self.x_val, self.y_val)

    def score(self) -> float:
        """Test-split loss (for the oracle and the regret)."""
        return self._loss_on(self.x_test, self.y_test)


def batch_schedule(n_rows: int, batch: int, steps: int, seed: int) -> np.ndarray:
    """Row indices for ``steps`` mini-batches: shuffled epochs, drop-last, seeded."""
    rng = np.random.default_rng(seed)
    per_epoch = n_rows // batch
    epochs = -(-steps // per_epoch)
    rows = [
        rng.permutation(n_rows)[: per_epoch * batch].reshape(per_epoch, batch)
        for _ in range(epochs)
    ]
    return np.concatenate(rows)[:steps]


_DIGITS: tuple[np.ndarray, np.ndarray] | None = None


def _digits() -> tuple[np.ndarray, np.ndarray]:
    global _DIGITS
    if _DIGITS is None:
        from sklearn.datasets import load_digits

        data = load_digits()
        _DIGITS = (data.data.astype(np.float32) / 16.0, data.target.astype(np.int64))
    return _DIGITS


MAX_STEPS = 2048


def _digits_split(seed: int) -> tuple[object, ...]:
    """Train 1100 / validation 300 / test 397 rows, split by the seed."""
    import torch

    x, y = _digits()
    order = np.random.default_rng(1000 + seed).permutation(len(y))
    train, val, test = order[:1100], order[1100:1400], order[1400:]
    batches = batch_schedule(len(train), 64, MAX_STEPS, seed)
    t = torch.from_numpy
    return (t(x[train]), t(y[train]), t(x[val]), t(y[val]), batches, t(x[test]), t(y[test]))


def digits_mlp(seed: int) -> TorchTask:
    """sklearn digits, MLP 64-64-10 (ReLU), Adam, batch 64."""
    import torch

    torch.set_num_threads(1)
    split = _digits_split(seed)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    return TorchTask(model, optimizer, torch.nn.functional.cross_entropy, *split)


def digits_cnn(seed: int) -> TorchTask:
    """sklearn digits as 1x8x8 images, two 3x3 convs + linear, SGD momentum 0.9, batch 64."""
    import torch

    torch.set_num_threads(1)
    split = _digits_split(seed)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Unflatten(1, (1, 8, 8)),
        torch.nn.Conv2d(1, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(16 * 4 * 4, 10),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    return TorchTask(model, optimizer, torch.nn.functional.cross_entropy, *split)


# Text that ships with Python: the source of a few stdlib modules, fixed order.
_TEXT_MODULES = ("textwrap", "string", "fnmatch", "colorsys", "bisect", "heapq", "shlex")
CONTEXT = 8
_TEXT: tuple[np.ndarray, int] | None = None


def _text() -> tuple[np.ndarray, int]:
    """Character codes of the corpus (printable ASCII + newline; anything else -> '?')."""
    global _TEXT
    if _TEXT is None:
        import importlib

        source = "\n".join(inspect.getsource(importlib.import_module(m)) for m in _TEXT_MODULES)
        chars = sorted({c for c in source if c == "\n" or 32 <= ord(c) < 127} | {"?"})
        index = {c: i for i, c in enumerate(chars)}
        codes = np.array([index.get(c, index["?"]) for c in source], dtype=np.int64)
        _TEXT = (codes, len(chars))
    return _TEXT


def char_lm(seed: int) -> TorchTask:
    """Next-character MLP LM (context 8, embedding 16, hidden 128) on stdlib source, AdamW."""
    import torch

    torch.set_num_threads(1)
    codes, vocab = _text()
    windows = np.lib.stride_tricks.sliding_window_view(codes, CONTEXT + 1)
    # Train on the first 90%, validate on the next 5%, test on the last 5% (gaps of CONTEXT
    # windows so no character is shared across splits); 2000 fixed windows each.
    cut1, cut2 = int(0.9 * len(windows)), int(0.95 * len(windows))
    train = windows[:cut1]
    pick = np.random.default_rng(7)
    val = windows[cut1 + CONTEXT : cut2]
    val = val[pick.choice(len(val), size=min(2000, len(val)), replace=False)]
    test = windows[cut2 + CONTEXT :]
    test = test[pick.choice(len(test), size=min(2000, len(test)), replace=False)]
    batches = batch_schedule(len(train), 128, MAX_STEPS, seed)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Embedding(vocab, 16),
        torch.nn.Flatten(),
        torch.nn.Linear(16 * CONTEXT, 128),
        torch.nn.Tanh(),
        torch.nn.Linear(128, vocab),
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    tr = torch.from_numpy(np.ascontiguousarray(train))
    va = torch.from_numpy(np.ascontiguousarray(val))
    te = torch.from_numpy(np.ascontiguousarray(test))
    return TorchTask(
        model,
        optimizer,
        torch.nn.functional.cross_entropy,
        tr[:, :CONTEXT],
        tr[:, CONTEXT],
        va[:, :CONTEXT],
        va[:, CONTEXT],
        batches,
        te[:, :CONTEXT],
        te[:, CONTEXT],
    )


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task(
            "linreg",
            "the lesson: linear regression, full-batch float32 GD (NumPy)",
            LinRegTask,
            log_grid(1e-3, 1.0),
            (20, 200),
            needs_torch=False,
        ),
        Task(
            "digits_mlp",
            "digits MLP 64-64-10, Adam, batch 64",
            digits_mlp,
            log_grid(1e-4, 1.0),
            (100, 400),
        ),
        Task(
            "digits_cnn",
            "digits CNN (2 conv + linear), SGD momentum 0.9, batch 64",
            digits_cnn,
            log_grid(1e-3, 10**0.5),
            (100, 400),
        ),
        Task(
            "char_lm",
            "character MLP LM on stdlib source, AdamW, batch 128",
            char_lm,
            log_grid(1e-4, 1.0),
            (100, 400),
        ),
    )
}
