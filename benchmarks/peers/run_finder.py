"""Run one LR finder on one task and print one JSON line (used by bench_torch.py).

    python benchmarks/peers/run_finder.py FINDER TASK REPEATS

FINDER is lrscope, torch-lr-finder, fastai or lightning; TASK a key of tasks.TASKS. The
script runs one warm-up, then REPEATS timed finder calls, each followed by a bare PyTorch loop
of the same number of steps (interleaved, so load on a shared machine hits both alike). Each
call starts from the same weights and the same batch order (the RNG states the loader's
shuffling draws from are put back before it). It also records whether
the finder left the weights and torch's global RNG as they were (using each tool the way its
documentation says: torch-lr-finder needs ``reset()``, the others restore on their own).
"""

from __future__ import annotations

import contextlib
import copy
import gc
import io
import json
import logging
import os
import random
import resource
import sys
import tempfile
import time
import warnings
from functools import partial
from typing import Any

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tasks

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)


def run_lrscope(task: tasks.Task, seed: int) -> dict[str, Any]:
    import lrscope.torch

    net = tasks.model(task, seed)
    opt = tasks.optimizer(task, net.parameters())
    data = tasks.loader(task, seed)

    results = []

    def call() -> tuple[int, dict[str, float | None]]:
        result = lrscope.torch.find_lr(
            net,
            opt,
            task.loss,
            data,
            start_lr=task.start_lr,
            end_lr=task.end_lr,
            steps=task.steps,
            retest=False,  # one test of task.steps steps, as every peer runs
        )
        results.append(result)
        # Timed: the test and its default suggestion, what a user runs (each peer is timed
        # with its own default suggestion too).
        return result.n_steps, {"lrscope default": result.suggest().lr}

    def extra() -> dict[str, float | None]:
        # Not timed: a second rule for the table, which no peer computes, and what find_lr's
        # default (retest=True) gives: a curve that broke down is tested again with 4x the
        # steps, so the key says how many steps that call ran in all.
        default = lrscope.torch.find_lr(
            net, opt, task.loss, data, start_lr=task.start_lr, end_lr=task.end_lr, steps=task.steps
        )
        first = default.metadata.get("first_test_steps")
        ran = (
            f"{default.n_steps} steps"
            if first is None
            else f"retested after a {first}-step test: {default.n_steps} more steps"
        )
        return {
            "valley": results[-1].suggest("valley").lr,
            f"retest=True ({ran})": default.suggest().lr,
        }

    return {"net": net, "data": data, "call": call, "extra": extra}


def run_lrscope_adapter(task: tasks.Task, seed: int) -> dict[str, Any]:
    """lrscope's PyTorch adapter alone, used as find_lr uses it (a new trainer per call,
    snapshot, every chunk of the ramp through ``run_chunks``, restore, close); no engine
    bookkeeping (smoothing, stop checks). Separates the adapter's cost from the engine's in the
    table."""
    import lrscope
    import lrscope.torch
    from lrscope.core.rangetest import auto_chunk

    net = tasks.model(task, seed)
    opt = tasks.optimizer(task, net.parameters())
    data = tasks.loader(task, seed)
    ramp = lrscope.lr_ramp(task.start_lr, task.end_lr, task.steps)
    chunk = auto_chunk(task.steps)

    def call() -> tuple[int, dict[str, float | None]]:
        trainer = lrscope.torch.trainer(net, opt, task.loss, data)
        trainer._replayable = False  # as in find_lr: one snapshot, before the first batch
        state = trainer.snapshot()
        try:
            trainer.run_chunks(ramp, chunk, lambda losses: False)  # never stops early
        finally:
            trainer.restore(state)
            trainer.close()
        return task.steps, {}

    return {"net": net, "data": data, "call": call}


def run_torch_lr_finder(task: tasks.Task, seed: int) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torch_lr_finder import LRFinder

    net = tasks.model(task, seed)
    opt = tasks.optimizer(task, net.parameters())
    data = tasks.loader(task, seed)

    def call() -> tuple[int, dict[str, float | None]]:
        finder = LRFinder(net, opt, task.loss, device="cpu")
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            finder.range_test(data, start_lr=task.start_lr, end_lr=task.end_lr, num_iter=task.steps)
        finder.reset()
        n = len(finder.history["lr"])
        fig, ax = plt.subplots()
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                out = finder.plot(ax=ax, suggest_lr=True)
            lr = out[1] if isinstance(out, tuple) else None
        except Exception:  # too few points for its rule
            lr = None
        plt.close(fig)
        return n, {"steepest (its default)": None if lr is None else float(lr)}

    return {"net": net, "data": data, "call": call}


def run_fastai(task: tasks.Task, seed: int) -> dict[str, Any]:
    from fastai.callback.schedule import Learner  # noqa: F401  (patches Learner.lr_find)
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader
    from fastai.learner import Learner as FastLearner
    from fastai.optimizer import SGD, Adam

    net = tasks.model(task, seed)
    torch.manual_seed(seed)
    ds = tasks.dataset(task)
    dls = DataLoaders(
        DataLoader(ds, bs=task.batch_size, shuffle=True, drop_last=False),
        DataLoader(ds, bs=task.batch_size),
        device="cpu",
    )
    opt_func = {"adam": Adam, "sgd": partial(SGD, mom=0.0), "sgd_momentum": partial(SGD, mom=0.9)}
    tmp = tempfile.mkdtemp()
    learn = FastLearner(
        dls, net, loss_func=task.loss, opt_func=opt_func[task.optimizer], lr=task.base_lr, path=tmp
    )

    def call() -> tuple[int, dict[str, float | None]]:
        with learn.no_bar(), learn.no_logging():
            found = learn.lr_find(
                start_lr=task.start_lr, end_lr=task.end_lr, num_it=task.steps, show_plot=False
            )
        return len(learn.recorder.lrs), {"valley (its default)": float(found.valley)}

    return {"net": net, "data": None, "call": call}


def run_lightning(task: tasks.Task, seed: int) -> dict[str, Any]:
    import lightning.pytorch as pl
    from lightning.pytorch.tuner import Tuner

    net = tasks.model(task, seed)
    data = tasks.loader(task, seed)

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = net
            self.lr = task.base_lr

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            x, y = batch
            return task.loss(self.net(x), y)

        def configure_optimizers(self) -> Any:
            return tasks.optimizer(task, self.parameters())

    module = Module()
    tmp = tempfile.mkdtemp()

    def call() -> tuple[int, dict[str, float | None]]:
        trainer = pl.Trainer(**tasks.LIGHTNING_QUIET, default_root_dir=tmp)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            finder = Tuner(trainer).lr_find(
                module,
                train_dataloaders=data,
                min_lr=task.start_lr,
                max_lr=task.end_lr,
                num_training=task.steps,
                update_attr=False,
            )
        lr = finder.suggestion() if finder is not None else None
        n = len(finder.results["lr"]) if finder is not None else 0
        return n, {"steepest (its default)": None if lr is None else float(lr)}

    return {"net": net, "data": data, "call": call}


FINDERS = {
    "lrscope": run_lrscope,
    "lrscope-adapter": run_lrscope_adapter,
    "torch-lr-finder": run_torch_lr_finder,
    "fastai": run_fastai,
    "lightning": run_lightning,
}


def main() -> None:
    finder, task_name, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(1)  # a shared 2-core machine: one thread each keeps timings stable
    task = tasks.TASKS[task_name]
    setup = FINDERS[finder](task, 0)
    net, call = setup["net"], setup["call"]
    weights = copy.deepcopy(net.state_dict())
    rng = torch.get_rng_state()
    # The states the batch order comes from: the loader's own generator (torch DataLoaders
    # here) and the global RNGs (fastai's loader shuffles with Python's). Put back before every
    # timed call, so each call trains on the same batches (for the torch loaders, those of the
    # bare loop, whose fresh loader has the same seed): the same arithmetic on every repeat.
    loader_gen = getattr(setup["data"], "generator", None)
    batch_order = (rng, random.getstate(), None if loader_gen is None else loader_gen.get_state())
    n, suggestions = call()  # warm-up (and the restore check)
    suggestions.update(setup.get("extra", dict)())
    weights_restored = all(torch.equal(weights[k], v) for k, v in net.state_dict().items())
    rng_restored = torch.equal(rng, torch.get_rng_state())
    tasks.bare_loop(task, n)  # warm-up of the bare loop too
    times, bare = [], []
    steps = n
    for repeat in range(repeats):
        net.load_state_dict(weights)  # every repeat starts from the same weights
        # Alternate which of the pair runs first, so that neither always runs in the other's
        # wake (caches, allocator, the machine's other load). The bare loop takes as many
        # steps as the finder call; one run ahead that guessed the count wrong (a finder that
        # stopped at another step this time) is run again after the call.
        bare_first = (steps, tasks.bare_loop(task, steps)) if repeat % 2 else None
        # ... and the same batch order (after the bare loop, which seeds torch's RNG)
        torch.set_rng_state(batch_order[0])
        random.setstate(batch_order[1])
        if loader_gen is not None:
            loader_gen.set_state(batch_order[2])
        gc.collect()  # each timed region starts with no garbage of the previous one
        began = time.perf_counter()
        steps, _ = call()
        times.append(time.perf_counter() - began)
        if bare_first is not None and bare_first[0] == steps:
            bare.append(bare_first[1])
        else:
            bare.append(tasks.bare_loop(task, steps))
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "finder": finder,
                "task": task_name,
                "iterations": n,
                "times": times,
                "bare_times": bare,
                "peak_rss_mb": peak_kb / 1024,
                "suggestions": suggestions,
                "weights_restored": weights_restored,
                "rng_restored": rng_restored,
            }
        )
    )


if __name__ == "__main__":
    main()
