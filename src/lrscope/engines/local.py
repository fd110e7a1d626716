"""The local engine: runs one after another in this process, or on a process pool.

Sequential (the default) works with a live Trainer object: each run starts from the trainer's
snapshot and restores it after, so the user's model ends exactly as it was. ``workers > 1``
runs on a pool of fresh processes (spawned: safe with threads and with frameworks that do not
survive ``fork``); it needs a picklable factory (a ``"file.py:function"`` string or a top-level
function), since a live model cannot be shared between processes.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from lrscope.core.sweep import RunOptions, RunRecord, run_one
from lrscope.core.trainer import Trainer
from lrscope.engines.worker import Task, error_record, execute
from lrscope.targets import build_trainer


def run_sequential(
    tasks: Sequence[Task],
    trainer: Trainer | None,
    factory: str | Callable[..., Any] | None,
    options: RunOptions,
) -> Iterator[RunRecord]:
    """Run ``tasks`` in order in this process, on ``trainer`` or on trainers from ``factory``
    (one per seed, reused across LRs through snapshot/restore)."""
    built: dict[int | None, Trainer] = {}
    for task in tasks:
        current = trainer
        if current is None:
            assert factory is not None  # the driver passes exactly one of the two
            current = built.get(task.seed)
            if current is None:
                try:
                    current = built[task.seed] = build_trainer(factory, task.seed)
                except Exception as exc:  # recorded like a failing run
                    yield error_record(task, f"building the trainer: {type(exc).__name__}: {exc}")
                    continue
        yield run_one(
            current,
            task.lr,
            options,
            lr_index=task.lr_index,
            seed_index=task.seed_index,
            seed=task.seed,
        )


def run_pool(
    tasks: Sequence[Task],
    factory: str | Callable[..., Any],
    options: RunOptions,
    workers: int,
) -> Iterator[RunRecord]:
    """Run ``tasks`` on ``workers`` spawned processes, yielding records as runs finish.

    At most ``workers`` runs are in flight, so a dying process (a segfault, ``os._exit``, the
    OOM killer) breaks at most those: they are recorded as errors, the pool is rebuilt and the
    remaining runs go on.
    """
    todo = list(tasks)
    context = multiprocessing.get_context("spawn")
    while todo:
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
        running: dict[Future[RunRecord], Task] = {}
        broken = False
        try:
            while (todo or running) and not broken:
                while todo and len(running) < workers:
                    task = todo[0]
                    try:
                        future = pool.submit(execute, factory, task, options)
                    except BrokenProcessPool:
                        # A worker died after the last wait() returned: this run never
                        # started, so it stays in `todo` for the rebuilt pool.
                        broken = True
                        break
                    todo.pop(0)
                    running[future] = task
                if broken and not running:
                    break
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in done:
                    task = running.pop(future)
                    try:
                        record = future.result()
                    except BrokenProcessPool:
                        broken = True
                        record = error_record(
                            task, "worker process died during the run (BrokenProcessPool)"
                        )
                    except Exception as exc:  # e.g. a record that failed to unpickle
                        record = error_record(task, f"{type(exc).__name__}: {exc}")
                    yield record
            if broken:  # the other in-flight runs died with the pool: recorded the same way
                for future, task in running.items():
                    try:
                        yield future.result(timeout=0)
                    except Exception:
                        yield error_record(
                            task, "worker process died during the run (BrokenProcessPool)"
                        )
                running.clear()
        finally:
            for future in running:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
