"""Cost of lrscope.keras.find_lr against plain ``model.fit`` of the same steps, per backend.

Task: an MLP (64-256-256-10, relu) on scikit-learn's bundled digits (1797 x 64, tiled to
``STEPS * BATCH`` rows; synthetic data of that shape if scikit-learn is missing), Adam,
sparse categorical cross-entropy, batches of 64, no shuffling, ``STEPS`` steps. The range test
runs 1e-6 -> 1e-1 with ``stop_on_divergence=False``, so it takes every step, like ``fit``.

Compared, each backend in its own subprocess (KERAS_BACKEND is fixed at import):

- ``fit``: ``model.fit(x, y, epochs=1, batch_size=64)`` (exactly ``STEPS`` batches);
- ``find_lr``: ``lrscope.keras.find_lr`` (own step loop, per-batch loss, snapshot + restore);
- ``fit + LRRangeTest``: ``fit`` driving the test through lrscope's callback (on JAX each
  batch callback forces a full state sync).

"cold" is the first call on a fresh model (tracing/compiling included); "warm" is the median of
``REPEATS`` later calls. Threads are pinned to 1 (OMP/TF/XLA) so that the numbers mean the same
on a shared machine. Run ``.venv/bin/python benchmarks/bench_keras.py`` from the repo root;
writes ``benchmarks/results/keras.md``. Target: find_lr / fit <= 1.10 warm.

Also measured: one ``KerasTrainer.evaluate()`` (what ``eval_every`` and ``lrscope.verify`` call
many times) against ``model.evaluate(x_val, y_val)`` (what it called before it prepared the
validation set once): ``EVAL_ROWS`` rows, MLP 8-32-32-1, MSE, median of ``EVAL_CALLS`` calls
after warm-up. ``--evaluate-only`` runs just that part and prints its table (writes nothing).
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

import numpy as np
from machine import THREADS_ENV, cpu_model  # benchmarks/machine.py

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "keras.md"
BACKENDS = ("tensorflow", "jax", "torch")
STEPS = 200
BATCH = 64
REPEATS = 7
EVAL_ROWS = 300
EVAL_CALLS = 30


def load_data() -> tuple[np.ndarray, np.ndarray, str]:
    rows = STEPS * BATCH
    try:
        from sklearn.datasets import load_digits

        digits = load_digits()
        reps = -(-rows // len(digits.target))
        x = np.tile((digits.data / 16.0).astype(np.float32), (reps, 1))[:rows]
        y = np.tile(digits.target.astype(np.int32), reps)[:rows]
        return x, y, "sklearn digits (tiled)"
    except ImportError:  # pragma: no cover - the bench extra installs scikit-learn
        rng = np.random.default_rng(0)
        x = rng.uniform(0, 1, (rows, 64)).astype(np.float32)
        return x, rng.integers(0, 10, rows).astype(np.int32), "synthetic 64-d"


def evaluate_timings() -> dict[str, float]:
    """Median seconds per call: model.evaluate (the previous evaluate()) and evaluate()."""
    import keras

    import lrscope.keras as lk

    rng = np.random.default_rng(0)
    x = rng.normal(size=(EVAL_ROWS, 8)).astype(np.float32)
    y = rng.normal(size=(EVAL_ROWS, 1)).astype(np.float32)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    trainer = lk.trainer(model, x, y, batch_size=32, validation_data=(x, y))
    calls = {
        "model.evaluate": lambda: model.evaluate(x, y, verbose=0, return_dict=True)["loss"],
        "evaluate()": trainer.evaluate,
    }
    times: dict[str, list[float]] = {name: [] for name in calls}
    values = {name: call() for name, call in calls.items()}  # warm-up (traces, prepares)
    for _ in range(EVAL_CALLS):  # interleaved, so load changes hit both alike
        for name, call in calls.items():
            began = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - began)
    assert abs(values["evaluate()"] - values["model.evaluate"]) <= 1e-6 * abs(
        values["model.evaluate"]
    )
    return {name: statistics.median(t) for name, t in times.items()}


def evaluate_table(rows: list[dict]) -> list[str]:
    lines = [
        f"## KerasTrainer.evaluate(): {EVAL_ROWS} rows, MLP 8-32-32-1, median of {EVAL_CALLS} "
        "calls after warm-up",
        "",
        "| backend | model.evaluate (before) ms | evaluate() (after) ms | speed-up |",
        "|---|---|---|---|",
    ]
    for r in rows:
        e = r["evaluate"]
        before, after = e["model.evaluate"], e["evaluate()"]
        lines.append(
            f"| {r['backend']} | {before * 1e3:.2f} | {after * 1e3:.2f} | {before / after:.1f}x |"
        )
    return lines


def worker_evaluate() -> None:
    sys.path.insert(0, str(ROOT / "src"))
    import keras

    print(json.dumps({"backend": keras.backend.backend(), "evaluate": evaluate_timings()}))


def worker() -> None:
    sys.path.insert(0, str(ROOT / "src"))
    import keras

    import lrscope.keras as lk

    x, y, data_name = load_data()

    def model() -> keras.Model:
        keras.utils.set_random_seed(0)
        m = keras.Sequential(
            [
                keras.Input((64,)),
                keras.layers.Dense(256, activation="relu"),
                keras.layers.Dense(256, activation="relu"),
                keras.layers.Dense(10),
            ]
        )
        m.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        return m

    def timed(fn) -> float:
        began = time.perf_counter()
        fn()
        return time.perf_counter() - began

    fit_model, test_model = model(), model()

    def fit() -> None:
        fit_model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)

    def find() -> None:
        result = lk.find_lr(
            test_model,
            x,
            y,
            batch_size=BATCH,
            steps=STEPS,
            start_lr=1e-6,
            end_lr=0.1,
            shuffle=False,
            stop_on_divergence=False,
            retest=False,  # one test of STEPS steps: the cost measured here
        )
        assert result.n_steps == STEPS

    def fit_callback() -> None:
        test = lk.LRRangeTest(start_lr=1e-6, end_lr=0.1, steps=STEPS, stop_on_divergence=False)
        fit_model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0, callbacks=[test])
        assert test.result.n_steps == STEPS

    cold = {"fit": timed(fit), "find_lr": timed(find)}
    warm: dict[str, list[float]] = {"fit": [], "find_lr": [], "fit + LRRangeTest": []}
    for _ in range(REPEATS):  # interleaved, so load changes hit all three alike
        warm["fit"].append(timed(fit))
        warm["find_lr"].append(timed(find))
        warm["fit + LRRangeTest"].append(timed(fit_callback))
    print(
        json.dumps(
            {
                "backend": keras.backend.backend(),
                "keras": keras.__version__,
                "data": data_name,
                "cold": cold,
                "warm": {k: statistics.median(v) for k, v in warm.items()},
                "evaluate": evaluate_timings(),
            }
        )
    )


def main() -> int:
    only_evaluate = "--evaluate-only" in sys.argv
    rows = []
    for backend in BACKENDS:
        env = {**os.environ, **THREADS_ENV, "KERAS_BACKEND": backend}
        proc = subprocess.run(
            [sys.executable, __file__, "--worker-evaluate" if only_evaluate else "--worker"],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            cwd=ROOT,
        )
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    if only_evaluate:
        print("\n".join(evaluate_table(rows)))
        return 0
    lines = [
        "# lrscope.keras.find_lr vs model.fit (same steps)",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {os.cpu_count()} CPUs (`nproc`), {cpu_model()}; threads pinned to 1",
        f"- Keras {rows[0]['keras']}; MLP 64-256-256-10, Adam, {rows[0]['data']}, "
        f"{STEPS} steps of {BATCH} rows, warm = median of {REPEATS}",
        "- command: `.venv/bin/python benchmarks/bench_keras.py`",
        "",
        "| backend | fit cold s | find_lr cold s | cold ratio | fit warm s | find_lr warm s "
        "| **warm ratio** | fit + LRRangeTest warm s | callback ratio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        c, w = r["cold"], r["warm"]
        lines.append(
            f"| {r['backend']} | {c['fit']:.3f} | {c['find_lr']:.3f} | "
            f"{c['find_lr'] / c['fit']:.2f}x | {w['fit']:.3f} | {w['find_lr']:.3f} | "
            f"**{w['find_lr'] / w['fit']:.2f}x** | {w['fit + LRRangeTest']:.3f} | "
            f"{w['fit + LRRangeTest'] / w['fit']:.2f}x |"
        )
    lines += [
        "",
        "Ratios are find_lr (or fit with the callback) over plain fit; the target is <= 1.10x "
        "warm. find_lr includes its snapshot and restore.",
        "",
        *evaluate_table(rows),
    ]
    text = "\n".join(lines) + "\n"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    if "--worker-evaluate" in sys.argv:
        worker_evaluate()
    elif "--worker" in sys.argv:
        worker()
    else:
        sys.exit(main())
