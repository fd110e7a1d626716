"""The three tasks every LR finder is run on (shared by bench_torch.py and run_finder.py).

Each task builds, from a seed, the same data, model, optimizer and loss, so that lrscope,
torch-lr-finder, fastai and Lightning all start from identical weights. Data are offline:
synthetic linear data, and scikit-learn's bundled digits (1797 8x8 images, no download).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

F = torch.nn.functional


@dataclass
class Task:
    name: str
    description: str
    optimizer: str  # "sgd", "sgd_momentum" or "adam"
    base_lr: float
    start_lr: float
    end_lr: float
    steps: int
    batch_size: int
    loss: Any


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    return x, torch.tensor(digits.target, dtype=torch.int64)


TASKS = {
    "linreg": Task(
        "linreg",
        "linear regression y=0.1x+0.5+noise (512 points), Linear(1,1), SGD, MSE",
        "sgd",
        0.01,
        1e-4,
        10.0,
        100,
        32,
        F.mse_loss,
    ),
    "digits_mlp": Task(
        "digits_mlp",
        "sklearn digits, MLP 64-128-10 (ReLU), Adam, cross-entropy",
        "adam",
        1e-3,
        1e-6,
        1.0,
        100,
        64,
        F.cross_entropy,
    ),
    "digits_cnn": Task(
        "digits_cnn",
        "sklearn digits 1x8x8, CNN conv16-conv32-pool-fc10, SGD momentum 0.9, cross-entropy",
        "sgd_momentum",
        0.01,
        1e-5,
        10.0,
        100,
        64,
        F.cross_entropy,
    ),
}


def dataset(task: Task) -> torch.utils.data.TensorDataset:
    if task.name == "linreg":
        gen = torch.Generator().manual_seed(0)
        x = torch.rand(512, 1, generator=gen)
        y = 0.1 * x + 0.5 + 0.01 * torch.randn(512, 1, generator=gen)
        return torch.utils.data.TensorDataset(x, y)
    x, y = _digits()
    if task.name == "digits_cnn":
        x = x.reshape(-1, 1, 8, 8)
    return torch.utils.data.TensorDataset(x, y)


def model(task: Task, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    if task.name == "linreg":
        return torch.nn.Linear(1, 1)
    if task.name == "digits_mlp":
        return torch.nn.Sequential(
            torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)
        )
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(32 * 4 * 4, 10),
    )


def optimizer(task: Task, params: Any) -> torch.optim.Optimizer:
    if task.optimizer == "adam":
        return torch.optim.Adam(params, lr=task.base_lr)
    momentum = 0.9 if task.optimizer == "sgd_momentum" else 0.0
    return torch.optim.SGD(params, lr=task.base_lr, momentum=momentum)


def loader(task: Task, seed: int = 0) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(
        dataset(task),
        batch_size=task.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )


#: ``lightning.pytorch.Trainer`` options for running Lightning's LR finder quietly on one CPU
#: (no logger, checkpoints, progress bar or summary), shared by run_finder.py and
#: quality/pkg_runner.py; each adds its own ``default_root_dir``.
LIGHTNING_QUIET = {
    "accelerator": "cpu",
    "devices": 1,
    "logger": False,
    "enable_checkpointing": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
}


def plain_steps(task: Task, net: Any, opt: Any, data: Any, lrs: list[float]) -> list[float]:
    """The plain PyTorch loop: one step per LR in ``lrs`` (set the LR, zero_grad, forward,
    loss, backward, step), cycling ``data``; the losses reach the host once, at the end."""
    group = opt.param_groups[0]
    losses = []
    batches = iter(data)
    for lr in lrs:
        group["lr"] = lr
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(data)
            x, y = next(batches)
        opt.zero_grad()
        loss = task.loss(net(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.detach())
    return torch.stack(losses).tolist()


@dataclass
class Paired:
    """A task set up for timing find_lr against the bare loop on the same objects: every call
    starts from :meth:`reset`, so both train on the same weights and batches."""

    task: Task
    net: Any
    opt: Any
    data: Any
    options: dict[str, Any]  # find_lr's ramp for this task
    steps: int  # the steps find_lr takes before it stops
    ramp: list[float]  # the LRs of those steps
    weights: dict[str, torch.Tensor]
    batch_order: torch.Tensor  # the loader generator's state

    def reset(self) -> None:
        """Put back the weights, the optimizer state and the batch order. The loader shuffles
        with its own generator, which the bare loop advances and find_lr puts back: without
        this the bare loops trained on other batch orders, whose high-LR steps took up to 8%
        longer on the CNN than find_lr's."""
        self.net.load_state_dict(self.weights)
        self.opt.state.clear()
        self.data.generator.set_state(self.batch_order)

    def bare(self) -> list[float]:
        """The bare loop over find_lr's steps and LRs; its losses."""
        return plain_steps(self.task, self.net, self.opt, self.data, self.ramp)


def paired(name: str, seed: int = 0) -> Paired:
    """Task ``name``'s model, optimizer and loader, with the steps one find_lr takes on them."""
    import lrscope
    import lrscope.torch

    task = TASKS[name]
    net = model(task, seed)
    opt = optimizer(task, net.parameters())
    data = loader(task, seed)
    # One test of task.steps steps, as every peer runs (the default retest=True would test a
    # curve that broke down again with 4x the steps: a quality step, not this cost).
    options = {
        "start_lr": task.start_lr,
        "end_lr": task.end_lr,
        "steps": task.steps,
        "retest": False,
    }
    steps = lrscope.torch.find_lr(net, opt, task.loss, data, **options).n_steps
    ramp = lrscope.lr_ramp(task.start_lr, task.end_lr, task.steps)[:steps].tolist()
    weights = {key: value.clone() for key, value in net.state_dict().items()}
    return Paired(task, net, opt, data, options, steps, ramp, weights, data.generator.get_state())


def bare_loop(task: Task, steps: int, seed: int = 0) -> float:
    """The plain PyTorch loop of ``steps`` steps at the task's base LR, on a freshly built
    model, optimizer and loader (the cost floor); returns the seconds it took."""
    import gc
    import time

    net = model(task, seed)
    opt = optimizer(task, net.parameters())
    data = loader(task, seed)
    lrs = [task.base_lr] * steps
    gc.collect()  # as before each finder call: no garbage of the setup in the timed region
    began = time.perf_counter()
    plain_steps(task, net, opt, data, lrs)
    return time.perf_counter() - began
