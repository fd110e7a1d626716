"""Run one peer's own LR-finder package on the quality benchmark's torch tasks; print JSON.

    .venv-bench/bin/python benchmarks/quality/pkg_runner.py --package fastai \\
        --tasks digits_mlp,digits_cnn,char_lm --seeds 0,1,2,3,4

Runs in ``.venv-bench`` (``make bench-peers``), where torch-lr-finder, fastai and Lightning are
installed; ``quality/packages.py`` calls it from the harness and scores the suggestions. Every
(task, seed) starts from ``task.make(seed)``: the harness's own model init, torch optimizer,
loss and precomputed batch order, fed to the package through a real ``DataLoader`` whose batch
sampler is that schedule. Each package is used the way its documentation shows, with its
default ramp, step count and suggestion (see ``SETTINGS``). The package's output goes to
stderr; stdout carries one JSON object::

    {"package": ..., "version": ..., "settings": ..., "seconds": ...,
     "suggestions": {task: {seed: lr or null}},
     "runs": {task: {seed: {"lrs": [...], "losses": [...], "error": str or null}}}}

``lrs``/``losses`` are what the package actually trained with: the LR in the optimizer and the
raw loss of every training step, recorded by a wrapper around the task's loss function. The
harness replays those LRs in its own trainer to show the package trained the same start.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

# Import our modules as quality.* from benchmarks/; run as a script, drop this script's own
# folder from the path (its module names, e.g. tasks and packages, must not shadow anything a
# package imports).
_HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0] or ".").resolve() == _HERE:
    sys.path.pop(0)
if str(_HERE.parent) not in sys.path:
    sys.path.insert(0, str(_HERE.parent))

import torch  # noqa: E402

from quality.tasks import TASKS, TorchTask  # noqa: E402

#: How each package is called (its defaults unless said); the harness prints this.
SETTINGS = {
    "torch_lr_finder": "LRFinder(model, optimizer, loss).range_test(loader, start_lr=1e-7) "
    "(its defaults end_lr=10, num_iter=100, exp, smooth_f=0.05, diverge_th=5; start_lr as in "
    "its README, whose optimizer starts at 1e-7) and plot(suggest_lr=True) (steepest, "
    "skip_start=10, skip_end=5)",
    "fastai": "Learner(DataLoaders(loader, loader), model, loss_func, "
    "opt_func=OptimWrapper(opt=optimizer)).lr_find() (its defaults 1e-7..10, num_it=100, "
    "stop_div; suggestion valley)",
    "lightning": "Tuner(Trainer(accelerator='cpu', devices=1)).lr_find(module, loader) "
    "(its defaults 1e-8..1, num_training=100, exponential, early_stop_threshold=4) and "
    ".suggestion()",
}


def loader(task: TorchTask) -> torch.utils.data.DataLoader:
    """A DataLoader yielding exactly the harness's batches, in its order: step t gets the
    training rows ``task.batches[t]`` (default collate stacks the same rows the harness
    indexes)."""
    data = torch.utils.data.TensorDataset(task.x_train, task.y_train)  # type: ignore[arg-type]
    schedule = [rows.tolist() for rows in task.batches]
    return torch.utils.data.DataLoader(data, batch_sampler=schedule)


class RecordingLoss:
    """The task's loss, recording every training step's raw loss and the LR the optimizer
    holds at that moment (what the package is about to step with)."""

    def __init__(self, task: TorchTask) -> None:
        self.loss_fn = task.loss_fn
        self.optimizer = task.optimizer
        self.lrs: list[float] = []
        self.losses: list[float] = []

    def __call__(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = self.loss_fn(prediction, target)
        if torch.is_grad_enabled():  # a training step, not an evaluation
            self.lrs.append(float(self.optimizer.param_groups[0]["lr"]))  # type: ignore[attr-defined]
            self.losses.append(float(loss.item()))  # type: ignore[attr-defined]
        return loss  # type: ignore[return-value]


def run_torch_lr_finder(task: TorchTask, loss: RecordingLoss, workdir: Path) -> float | None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from torch_lr_finder import LRFinder

    finder = LRFinder(task.model, task.optimizer, loss, device="cpu")
    finder.range_test(loader(task), start_lr=1e-7)
    try:
        _, lr = finder.plot(ax=Figure().subplots(), suggest_lr=True)
    except RuntimeError:  # "Need at least 17 iterations to suggest a learning rate"
        lr = None
    finder.reset()
    return None if lr is None else float(lr)


def run_fastai(task: TorchTask, loss: RecordingLoss, workdir: Path) -> float | None:
    import fastai.callback.schedule  # noqa: F401  (adds Learner.lr_find)
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner
    from fastai.optimizer import OptimWrapper

    # Plain torch DataLoaders and a built torch optimizer, as fastai's "pure PyTorch" guide
    # shows; the validation loader is never used (lr_find skips validation).
    dls = DataLoaders(loader(task), loader(task))
    learn = Learner(
        dls,
        task.model,  # type: ignore[arg-type]
        loss_func=loss,
        opt_func=OptimWrapper(opt=task.optimizer),
        path=workdir,
    )
    with learn.no_bar(), learn.no_logging():
        found = learn.lr_find(show_plot=False)
    return float(found.valley)


def run_lightning(task: TorchTask, loss: RecordingLoss, workdir: Path) -> float | None:
    import lightning.pytorch as pl
    from lightning.pytorch.tuner import Tuner
    from peers.tasks import LIGHTNING_QUIET  # benchmarks/peers/tasks.py

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = task.model
            self.lr = float(task.optimizer.param_groups[0]["lr"])  # type: ignore[attr-defined]

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            return loss(self.net(x), y)

        def configure_optimizers(self) -> Any:
            return task.optimizer

    trainer = pl.Trainer(**LIGHTNING_QUIET, default_root_dir=workdir)
    finder = Tuner(trainer).lr_find(Module(), train_dataloaders=loader(task))
    lr = None if finder is None else finder.suggestion()
    return None if lr is None else float(lr)


RUNNERS = {
    "torch_lr_finder": ("torch_lr_finder", run_torch_lr_finder),
    "fastai": ("fastai", run_fastai),
    "lightning": ("lightning", run_lightning),
}


def _version(module: str) -> str:
    from importlib.metadata import version

    return version({"torch_lr_finder": "torch-lr-finder"}.get(module, module))


def run(package: str, task_names: list[str], seeds: list[int]) -> dict[str, Any]:
    """Every (task, seed) for one package, in this one process (one import per package)."""
    module, call = RUNNERS[package]
    began = time.perf_counter()
    suggestions: dict[str, dict[str, float | None]] = {}
    runs: dict[str, dict[str, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="lrscope-pkg-") as tmp:
        for name in task_names:
            suggestions[name], runs[name] = {}, {}
            for seed in seeds:
                task = TASKS[name].make(seed)
                if not isinstance(task, TorchTask):
                    raise SystemExit(f"task {name!r} is not a torch task")
                loss = RecordingLoss(task)
                error = None
                try:
                    lr = call(task, loss, Path(tmp))
                except Exception as exc:  # a package refusing is a result, not a crash
                    lr, error = None, f"{type(exc).__name__}: {exc}"
                if lr is not None and not math.isfinite(lr):
                    lr = None
                suggestions[name][str(seed)] = lr
                runs[name][str(seed)] = {"lrs": loss.lrs, "losses": loss.losses, "error": error}
    return {
        "package": package,
        "version": _version(module),
        "settings": SETTINGS[package],
        "seconds": time.perf_counter() - began,
        "suggestions": suggestions,
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--package", required=True, choices=sorted(RUNNERS))
    parser.add_argument("--tasks", required=True, help="comma-separated torch task names")
    parser.add_argument("--seeds", required=True, help="comma-separated seeds")
    args = parser.parse_args(argv)
    names = args.tasks.split(",")
    unknown = [name for name in names if name not in TASKS]
    if unknown:
        parser.error(f"unknown task(s) {unknown}; choose from {sorted(TASKS)}")
    seeds = [int(seed) for seed in args.seeds.split(",")]
    torch.set_num_threads(1)  # like the harness: one thread, same kernels
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    # The packages print progress and notes; keep stdout for the one JSON line.
    with contextlib.redirect_stdout(sys.stderr):
        out = run(args.package, names, seeds)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
