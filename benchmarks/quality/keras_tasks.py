"""The Keras task of the quality benchmark, measured on each Keras backend.

``keras_mlp``: the torch ``digits_mlp`` task written in Keras 3 (sklearn digits, MLP 64-64-10
with ReLU, Adam, batch 64, the same train/validation/test split and the same mini-batch order
per seed), trained through lrscope's own Keras adapter (``lrscope.keras.trainer``), so the
benchmark measures the range test users run: the adapter's step loop around the model's
``train_step`` (a ``tf.function`` graph loop on TensorFlow, a jitted ``lax.scan`` on JAX, the
model's train function per step on torch), its snapshot/restore and its ``evaluate()`` (what
``lrscope.verify`` ranks candidates by: ``model.evaluate`` on the validation split).

Keras fixes its backend at import (``KERAS_BACKEND``), so each backend runs in its own
subprocess of the same Python: ``python benchmarks/quality/keras_tasks.py --backend jax
--seeds 3 --json out.json`` runs the harness on ``keras_mlp[jax]`` and writes its rows and
per-seed range tests as JSON; :func:`run_backend` starts that process and rebuilds the rows in
the parent, which never imports Keras. Threads are pinned to 1 (as in bench_keras.py).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # run as a script: make `quality` importable
    sys.path.insert(0, str(HERE.parent))

from machine import THREADS_ENV  # noqa: E402  (benchmarks/machine.py)

from quality.tasks import MAX_STEPS, Task, _digits, batch_schedule, log_grid  # noqa: E402

BACKENDS = ("tensorflow", "jax", "torch")
BATCH = 64
#: Seeds per backend in the full benchmark (the torch backend costs ~3 ms a step in Keras's
#: own train function; 3 seeds x 3 backends add about two and a half minutes).
KERAS_SEEDS = 3
#: Mini-batches laid out per seed, as many as the torch tasks' schedule (both wrap around
#: after it; no run from the start comes near: range tests 100 steps, budgets <= 400).
SCHEDULE_STEPS = MAX_STEPS


class KerasMLP:
    """``lrscope.keras.trainer`` on a fresh Keras MLP, plus ``score()`` on the test split.

    The seed fixes the initial weights, the split and the batch order. The weights are Keras's
    default init (Glorot uniform kernels, zero biases) drawn with NumPy, so a seed starts from
    the same weights on every backend (Keras's own RNG differs per backend) and the backends'
    rows differ only by their arithmetic. The training rows are laid out in the order of the
    torch tasks' batch schedule and given to the adapter with ``shuffle=False``, so batch
    ``t`` is the torch ``digits_mlp`` task's batch ``t`` (full batches of 64).
    """

    def __init__(self, seed: int) -> None:
        import keras

        import lrscope.keras

        x, y = _digits()
        order = np.random.default_rng(1000 + seed).permutation(len(y))  # as tasks._digits_split
        train, val, test = order[:1100], order[1100:1400], order[1400:]
        rows = train[batch_schedule(len(train), BATCH, SCHEDULE_STEPS, seed).reshape(-1)]
        y32 = y.astype(np.int32)
        self.x_val, self.y_val = x[val], y[val]
        self.x_test, self.y_test = x[test], y[test]
        model = keras.Sequential(
            [
                keras.Input((64,)),
                keras.layers.Dense(64, activation="relu"),
                keras.layers.Dense(10),
            ]
        )
        rng = np.random.default_rng(seed)
        model.set_weights(
            [
                rng.uniform(-1, 1, w.shape).astype(np.float32) * math.sqrt(6 / sum(w.shape))
                if w.ndim == 2
                else np.zeros(w.shape, np.float32)
                for w in model.get_weights()
            ]
        )
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        self.model = model
        self.trainer = lrscope.keras.trainer(
            model,
            x[rows],
            y32[rows],
            batch_size=BATCH,
            shuffle=False,
            validation_data=(x[val], y32[val]),  # the adapter's evaluate(); see evaluate()
        )

    def run(self, lrs: np.ndarray) -> np.ndarray:
        return self.trainer.run(lrs)

    def snapshot(self) -> object:
        return self.trainer.snapshot()

    def restore(self, state: object) -> None:
        self.trainer.restore(state)  # type: ignore[arg-type]

    def evaluate(self) -> float:
        """Validation-split loss: what ``lrscope.verify`` and the validation-ranked grid search
        rank by.

        The same number as the adapter's ``evaluate()`` (``model.evaluate`` on
        ``validation_data``) to float32 round-off, computed by one forward pass: on TensorFlow
        ``model.evaluate`` builds a tf.data pipeline per call (~0.1-0.2 s), and the harness
        evaluates after every budget of every grid run (~70 calls a seed)."""
        return self._loss_on(self.x_val, self.y_val)

    def score(self) -> float:
        """Test-split loss (for the oracle and the regret)."""
        return self._loss_on(self.x_test, self.y_test)

    def _loss_on(self, x: np.ndarray, y: np.ndarray) -> float:
        """Mean cross-entropy of the model's logits (float64 on the host); inf if not finite."""
        import keras

        logits = keras.ops.convert_to_numpy(self.model(x, training=False)).astype(np.float64)
        with np.errstate(all="ignore"):
            top = logits.max(axis=1, keepdims=True)
            logp = logits - top - np.log(np.exp(logits - top).sum(axis=1, keepdims=True))
            value = float(-logp[np.arange(len(y)), y].mean())
        return value if math.isfinite(value) else math.inf


def keras_mlp(seed: int) -> KerasMLP:
    """The Keras digits MLP trainer for ``seed`` on the backend this process imported."""
    return KerasMLP(seed)


def task_name(backend: str) -> str:
    return f"keras_mlp[{backend}]"


def keras_task(
    backend: str, grid: np.ndarray | None = None, budgets: tuple[int, int] | None = None
) -> Task:
    """The task for ``backend`` (the grid and budgets can be shrunk for the smoke run)."""
    return Task(
        task_name(backend),
        f"digits MLP 64-64-10, Adam, batch 64, Keras 3 on {backend} via lrscope.keras",
        keras_mlp,
        log_grid(1e-4, 1.0) if grid is None else grid,  # digits_mlp's grid: 17 LRs
        (100, 300) if budgets is None else budgets,
        needs_torch=False,
    )


KERAS_TASKS: dict[str, Task] = {task_name(b): keras_task(b) for b in BACKENDS}
BACKEND_OF = {task_name(b): b for b in BACKENDS}


# -- one backend per subprocess ----------------------------------------------------------------
@dataclass
class RemoteRun:
    """What the table needs of one seed measured in a subprocess (``flag_lines``)."""

    seed: int
    result: Any  # lrscope.RangeTestResult: the 100-step test (retest=False)
    grid_scores: dict[int, np.ndarray]
    default_result: Any  # lrscope.RangeTestResult: range_test's default call


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def worker(argv: list[str] | None = None) -> int:
    """Run the harness on the Keras task in this process's backend; write the rows as JSON."""
    parser = argparse.ArgumentParser(description="one Keras backend of the quality benchmark")
    parser.add_argument("--backend", choices=BACKENDS, required=True)
    parser.add_argument("--seeds", type=int, required=True)
    parser.add_argument("--grid", required=True, help="comma-separated oracle LRs")
    parser.add_argument("--budgets", required=True, help="short,long")
    parser.add_argument("--json", required=True, help="output file")
    args = parser.parse_args(argv)
    for key, value in THREADS_ENV.items():
        os.environ.setdefault(key, value)
    os.environ["KERAS_BACKEND"] = args.backend  # before Keras is imported (run_task does)
    began = time.perf_counter()
    import keras

    if keras.backend.backend() != args.backend:
        raise SystemExit(f"Keras loaded backend {keras.backend.backend()!r}, not {args.backend!r}")
    if args.backend == "torch":
        import torch

        torch.set_num_threads(1)
    from quality.harness import run_task

    budgets = tuple(int(b) for b in args.budgets.split(","))
    task = keras_task(
        args.backend,
        grid=np.array([float(v) for v in args.grid.split(",")]),
        budgets=(budgets[0], budgets[1]),
    )
    rows, stats = run_task(task, list(range(args.seeds)))
    out = {
        "backend": args.backend,
        "keras": keras.__version__,
        "rows": [
            {
                "task": r.task,
                "budget": r.budget,
                "rule": r.rule,
                "best_lr": r.best_lr,
                "lrs": r.lrs,
                "regrets": [_finite_or_none(v) for v in r.regrets],
                "mean_regret": _finite_or_none(r.mean_regret),
                "fixed_lr": _finite_or_none(r.fixed_lr),
            }
            for r in rows
        ],
        "runs": [
            {
                "seed": run.seed,
                "result": run.result.to_dict(),
                "default_result": run.default_result.to_dict(),
                "grid_scores": {
                    str(b): [_finite_or_none(float(v)) for v in s]
                    for b, s in run.grid_scores.items()
                },
            }
            for run in stats["runs"]
        ],
        "seconds": stats["seconds"],
        "process_seconds": time.perf_counter() - began,
        "steps": stats["steps"],
    }
    Path(args.json).write_text(json.dumps(out))
    return 0


def _missing(backend: str) -> str | None:
    """Why ``backend`` cannot run here (None when it can), without importing anything."""
    import importlib.util

    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend]
    for name in ("keras", module, "sklearn"):
        if importlib.util.find_spec(name) is None:
            return f"`{name}` is not installed"
    return None


def run_backend(task: Task, seeds: list[int], timeout: float = 900) -> tuple[list, dict] | str:
    """Measure ``task`` (a :data:`KERAS_TASKS` entry, maybe with a smaller grid) in a
    subprocess with its backend; return ``(rows, stats)`` as :func:`harness.run_task` does,
    or a one-line note saying why there are no rows."""
    import lrscope
    from quality.harness import Row

    backend = BACKEND_OF[task.name]
    why = _missing(backend)
    if why is not None:
        return f"{task.name}: not measured, {why}"
    if list(seeds) != list(range(len(seeds))):
        raise ValueError(f"seeds must be 0..n-1, got {seeds}")
    began = time.perf_counter()
    folder = tempfile.TemporaryDirectory(prefix="lrscope-quality-")
    out = Path(folder.name) / f"{backend}.json"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--backend",
        backend,
        "--seeds",
        str(len(seeds)),
        "--grid",
        ",".join(repr(float(v)) for v in task.grid),
        "--budgets",
        ",".join(str(b) for b in task.budgets),
        "--json",
        str(out),
    ]
    env = {**os.environ, **THREADS_ENV, "KERAS_BACKEND": backend}
    try:
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0 or not out.exists():
            tail = [line for line in done.stderr.strip().splitlines() if line.strip()]
            print(done.stderr[-3000:], file=sys.stderr)
            return (
                f"{task.name}: FAILED (exit {done.returncode}): {tail[-1] if tail else 'no output'}"
            )
        data = json.loads(out.read_text())
    finally:
        folder.cleanup()

    def inf(value: float | None) -> float:
        return math.inf if value is None else float(value)

    rows = [
        Row(
            r["task"],
            int(r["budget"]),
            r["rule"],
            float(r["best_lr"]),
            r["lrs"],
            [inf(v) for v in r["regrets"]],
            inf(r["mean_regret"]),
            math.nan if r["fixed_lr"] is None else float(r["fixed_lr"]),
        )
        for r in data["rows"]
    ]
    runs = [
        RemoteRun(
            int(r["seed"]),
            lrscope.RangeTestResult.from_dict(r["result"]),
            {int(b): np.array([inf(v) for v in s]) for b, s in r["grid_scores"].items()},
            lrscope.RangeTestResult.from_dict(r["default_result"]),
        )
        for r in data["runs"]
    ]
    wall = time.perf_counter() - began
    note = (
        f"{task.name}: Keras {data['keras']}, KERAS_BACKEND={backend}, 1 thread, own "
        f"subprocess, {len(seeds)} seeds: {data['seconds']:.0f} s measuring, {wall:.0f} s "
        "with start-up and imports"
    )
    return rows, {"runs": runs, "seconds": wall, "steps": int(data["steps"]), "note": note}


if __name__ == "__main__":
    raise SystemExit(worker())
