"""``lrscope.sweep``: the LR x steps map, run locally or on Ray, resumable from a file.

The NumPy core (:mod:`lrscope.core.sweep`) knows what one run is and what the map means; this
module picks the candidate LRs, skips runs already in the results file, hands the rest to an
engine and appends each finished run to the file as it arrives.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from lrscope.core import jsonio
from lrscope.core.sweep import (
    RunOptions,
    RunRecord,
    SweepResult,
    check_lrs,
    lr_grid_around,
)
from lrscope.core.sweepfile import ResultsFile
from lrscope.core.trainer import NEEDS_EVALUATE, Trainer
from lrscope.engines import ENGINES
from lrscope.engines.worker import Task
from lrscope.errors import invalid
from lrscope.targets import absolute_target, describe_callable, parse_target


def _is_trainer(obj: object) -> bool:
    return all(callable(getattr(obj, n, None)) for n in ("run", "snapshot", "restore"))


def _seed_list(seeds: int | Sequence[int], seeded: bool) -> tuple[int | None, ...]:
    if isinstance(seeds, bool):
        raise invalid("seeds", "must be an integer >= 1 or a list of integer seeds", seeds=seeds)
    if isinstance(seeds, int):
        if seeds < 1:
            raise invalid(
                "seeds", "must be an integer >= 1 or a list of integer seeds", seeds=seeds
            )
        if seeds == 1:
            return (None,)
        values: list[int] = list(range(seeds))
    else:
        values = list(seeds)
        if not values or not all(isinstance(s, int) and not isinstance(s, bool) for s in values):
            raise invalid(
                "seeds", "must be an integer >= 1 or a list of integer seeds", seeds=seeds
            )
        if len(set(values)) != len(values):
            raise invalid("seeds", "must not repeat a seed", seeds=seeds)
    if not seeded:
        raise invalid(
            "seeds",
            "can differ from 1 only with a trainer factory (a callable or 'file.py:function' "
            "that takes `seed`), not with a live Trainer",
            seeds=seeds,
        )
    return tuple(values)


def sweep(
    trainer: Trainer | str | Callable[..., Trainer],
    lrs: Sequence[float] | np.ndarray | None = None,
    *,
    steps: int,
    around: Any = None,
    points: int = 7,
    decades: float = 1.0,
    eval_every: int | None = None,
    seeds: int | Sequence[int] = 1,
    engine: str = "local",
    workers: int = 1,
    address: str | None = None,
    num_cpus: int | None = None,
    results_file: str | os.PathLike[str] | None = None,
    retry_errors: bool = False,
    trainer_id: str | None = None,
    chunk_size: int | None = None,
    diverge_factor: float = 3.0,
    stop_on_divergence: bool = True,
    metadata: Mapping[str, str | int | float | bool | None] | None = None,
) -> SweepResult:
    """Train ``steps`` steps at each candidate LR from the same start; return the LR x steps map.

    ``trainer`` is a live :class:`~lrscope.Trainer` (local engine, one process: restored
    exactly after every run and at the end), or a factory that builds one: a
    ``"path/file.py:function"`` / ``"module:function"`` string or a top-level callable
    (needed for ``workers > 1`` and ``engine="ray"``, and called as ``factory(seed=s)`` when
    ``seeds`` asks for several seeds).

    Candidate LRs: ``lrs``, or with ``lrs=None`` a log grid of ``points`` LRs spanning
    ``around x 10^[-decades, +decades]``, where ``around`` is an LR or a
    :class:`~lrscope.RangeTestResult` (its default suggestion).

    ``eval_every=k`` measures held-out loss (``trainer.evaluate()``) every ``k`` steps; the
    best-LR answers then use it. ``seeds=N`` repeats every run with seeds ``0..N-1`` (or give
    the list); answers take the median over seeds and count an LR as failed when any seed
    failed.

    ``engine="local"`` runs in this process (or on ``workers`` spawned processes);
    ``engine="ray"`` makes each run a Ray task (a local cluster with ``num_cpus`` CPUs, or the
    cluster at ``address``).

    ``results_file``: a JSON-lines file each finished run is appended to at once. Running the
    same sweep with the same file skips the runs it holds (errored runs too, unless
    ``retry_errors``); a file written for a different sweep is refused. ``trainer_id`` names
    the trainer in that file's fingerprint (default: the factory string or the callable's
    ``module:qualname``; a live Trainer's class name).

    Ctrl-C returns the partial map (``result.complete`` is False; missing runs have status
    "missing"); the runs in flight are lost, the finished ones are in the file.

    >>> result = lrscope.sweep(trainer, [0.01, 0.1, 1.0], steps=200)  # doctest: +SKIP
    >>> result.best_lr(50), result.best_lr(200)                        # doctest: +SKIP
    """
    options = RunOptions(
        steps=steps,
        eval_every=eval_every,
        chunk_size=chunk_size,
        diverge_factor=diverge_factor,
        stop_on_divergence=stop_on_divergence,
    ).check()
    if lrs is None:
        if around is None:
            raise invalid(
                "lrs", "must be given, or `around` (an LR or a RangeTestResult)", lrs=None
            )
        grid = lr_grid_around(around, decades=decades, points=points)
    else:
        if around is not None:
            raise invalid("around", "must be None when `lrs` is given", around=around)
        grid = check_lrs(lrs)
    if engine not in ENGINES:
        raise invalid("engine", f"must be one of {ENGINES}", engine=engine)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise invalid("workers", "must be an integer >= 1", workers=workers)
    if num_cpus is not None and (
        isinstance(num_cpus, bool) or not isinstance(num_cpus, int) or num_cpus < 1
    ):
        raise invalid("num_cpus", "must be None or an integer >= 1", num_cpus=num_cpus)

    live: Trainer | None = None
    factory: str | Callable[..., Trainer] | None = None
    if isinstance(trainer, str):
        parse_target(trainer)
        factory = absolute_target(trainer)
        identity = trainer
    elif _is_trainer(trainer):
        live = trainer  # type: ignore[assignment]
        identity = f"{type(trainer).__module__}.{type(trainer).__qualname__} (live object)"
    elif callable(trainer):
        factory = trainer
        identity = describe_callable(trainer)
    else:
        raise TypeError(
            "Argument `trainer` must be a Trainer (run, snapshot, restore), a factory callable "
            f"or a 'file.py:function' string. Received: trainer={type(trainer).__name__}"
        )
    if live is not None and (engine == "ray" or workers > 1):
        raise invalid(
            "trainer",
            "must be a factory (a 'file.py:function' string or a top-level function) for "
            f"engine={engine!r} with workers={workers}: a live model cannot be shipped to "
            "other processes",
            trainer=type(trainer).__name__,
        )
    if live is not None and eval_every and not callable(getattr(live, "evaluate", None)):
        raise invalid("eval_every", NEEDS_EVALUATE, eval_every=eval_every)
    seed_values = _seed_list(seeds, seeded=factory is not None)
    identity = trainer_id if trainer_id is not None else identity

    config = {
        "lrs": jsonio.encode_array(grid),
        "steps": options.steps,
        "seeds": list(seed_values),
        "eval_every": options.eval_every,
        "chunk_size": options.chunk_size,
        "diverge_factor": options.diverge_factor,
        "stop_on_divergence": options.stop_on_divergence,
        "beta": options.beta,
        "trainer": identity,
    }
    store = ResultsFile(results_file, config) if results_file is not None else None
    records: dict[tuple[int, int], RunRecord] = dict(store.records) if store else {}
    if retry_errors:
        records = {k: r for k, r in records.items() if r.error is None}
    tasks = [
        Task(seed_index=s, lr_index=r, lr=float(lr), seed=seed)
        for s, seed in enumerate(seed_values)
        for r, lr in enumerate(grid.tolist())
        if (s, r) not in records
    ]

    info: dict[str, str | int | float | bool | None] = {
        "trainer": identity,
        "engine": engine if workers == 1 or engine == "ray" else f"local ({workers} processes)",
        "runs_reused": sum(1 for key in records if key[0] < len(seed_values)),
    }
    info.update(dict(metadata or {}))
    stream = _engine_stream(tasks, live, factory, options, engine, workers, address, num_cpus)
    snapshot = live.snapshot() if live is not None else None
    try:
        for record in stream:
            if store is not None:
                store.append(record)
            records[(record.seed_index, record.lr_index)] = record
    except KeyboardInterrupt:
        info["interrupted"] = True
    except BaseException:
        if store is not None:
            store.discard_if_unused()
        raise
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()  # stops the engine: cancels Ray tasks, shuts the pool down
        if live is not None:
            live.restore(snapshot)
    return SweepResult.from_records(
        records.values(),
        grid,
        options.steps,
        seed_values,
        eval_every=options.eval_every,
        diverge_factor=options.diverge_factor,
        metadata=info,
    )


def _engine_stream(
    tasks: list[Task],
    live: Trainer | None,
    factory: str | Callable[..., Trainer] | None,
    options: RunOptions,
    engine: str,
    workers: int,
    address: str | None,
    num_cpus: int | None,
) -> Iterator[RunRecord]:
    if not tasks:
        return iter(())
    if engine == "ray":
        from lrscope.engines.ray import run_ray

        assert factory is not None
        return run_ray(tasks, factory, options, address=address, num_cpus=num_cpus)
    from lrscope.engines.local import run_pool, run_sequential

    if workers > 1:
        assert factory is not None
        return run_pool(tasks, factory, options, workers)
    return run_sequential(tasks, live, factory, options)
