"""The Ray engine: each LR run is a Ray task on a local or existing cluster.

``ray.init()`` starts a local cluster (``num_cpus`` from the caller) unless Ray is already
initialised or an ``address`` names a running cluster; a cluster this engine started is shut
down when the sweep ends (also after an error or Ctrl-C), one it found is left running.
Trainers come from a picklable factory built in the worker (see
:mod:`lrscope.engines.worker`). Tasks are never retried (``max_retries=0``): a task whose
worker dies is recorded as an error run, and the other runs complete.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from lrscope.core.sweep import RunOptions, RunRecord
from lrscope.engines.worker import Task, error_record, execute
from lrscope.errors import require


def run_ray(
    tasks: Sequence[Task],
    factory: str | Callable[..., Any],
    options: RunOptions,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    cpus_per_run: float = 1.0,
) -> Iterator[RunRecord]:
    """Submit every task to Ray and yield records in completion order."""
    ray: Any = require("ray", "the Ray sweep engine", "ray")
    started = False
    if not ray.is_initialized():
        ray.init(
            address=address,
            num_cpus=num_cpus if address is None else None,
            include_dashboard=False,
            logging_level=logging.WARNING,
            configure_logging=False,
        )
        started = True
    pending: dict[Any, Task] = {}
    try:
        remote = ray.remote(num_cpus=cpus_per_run, max_retries=0)(execute)
        factory_ref = ray.put(factory)
        options_ref = ray.put(options)
        for task in tasks:
            pending[remote.remote(factory_ref, task, options_ref)] = task
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                task = pending.pop(ref)
                try:
                    record = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    record = error_record(task, _first_line(exc))
                yield record
    finally:
        for ref in pending:  # Ctrl-C or an error in the caller: do not leave work behind
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()
