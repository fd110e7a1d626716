"""The local engine's process pool: spawned workers, a dying worker recorded, same map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import sweep_targets

import lrscope

TARGETS = Path(sweep_targets.__file__)


def test_process_pool_matches_in_process_runs_and_records_a_dead_worker(tmp_path):
    lrs = [0.1, 0.3, sweep_targets.CRASH_LR, 0.7, 1.0]
    file = tmp_path / "runs.jsonl"
    pooled = lrscope.sweep(
        f"{TARGETS}:crashing", lrs, steps=30, eval_every=3, workers=2, results_file=file
    )
    assert pooled.status[0, 2] == "error"
    assert "worker process died" in pooled.errors[0][2]
    # the runs not in flight with the dying one completed; any that shared its pool died
    # with it and are recorded the same way, never dropped
    assert all(s in ("ok", "diverged", "error") for s in pooled.status[0])
    assert pooled.complete and len(file.read_text().splitlines()) == 1 + len(lrs)
    reference = lrscope.sweep(sweep_targets.lesson(), lrs, steps=30, eval_every=3)
    good = [i for i in range(len(lrs)) if pooled.status[0, i] != "error"]
    assert len(good) >= 3
    assert np.array_equal(pooled.loss[0, good], reference.loss[0, good], equal_nan=True)
    assert np.array_equal(pooled.val_loss[0, good], reference.val_loss[0, good], equal_nan=True)
    assert pooled.metadata["engine"] == "local (2 processes)"


def test_a_pool_that_breaks_between_runs_requeues_the_run_it_could_not_start(monkeypatch):
    """A worker can die after wait() returned and before the next submit(): submit() then
    raises BrokenProcessPool for a run that never started; it must run on the next pool."""
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    from lrscope.core.sweep import RunOptions
    from lrscope.engines import local
    from lrscope.engines.worker import Task

    pools = []

    class OnePoolBreaksAtItsThirdSubmit:
        def __init__(self, **kwargs):
            self.submits = 0
            pools.append(self)

        def submit(self, fn, *args):
            self.submits += 1
            if len(pools) == 1 and self.submits == 3:
                raise BrokenProcessPool("a worker died")
            future = Future()
            future.set_result(fn(*args))  # run in this process: a real record
            return future

        def shutdown(self, wait=True, cancel_futures=False):
            pass

    monkeypatch.setattr(local, "ProcessPoolExecutor", OnePoolBreaksAtItsThirdSubmit)
    lrs = [0.1, 0.2, 0.3, 0.4]
    tasks = [Task(seed_index=0, lr_index=i, lr=lr, seed=None) for i, lr in enumerate(lrs)]
    options = RunOptions(steps=5)
    records = list(local.run_pool(tasks, f"{TARGETS}:lesson", options, workers=2))
    assert len(pools) == 2  # the broken pool was replaced
    assert sorted(r.lr_index for r in records) == [0, 1, 2, 3]  # each run exactly once
    assert all(r.status == "ok" for r in records)
