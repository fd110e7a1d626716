"""Cost of lrscope.jax.find_lr against plain jitted training loops of the same steps.

Task: an MLP (64-256-256-10, tanh) on scikit-learn's bundled digits (1797 x 64; synthetic
data of the same shape if scikit-learn is missing), Adam via optax.inject_hyperparams,
batches of 128 rows cut from device-resident arrays, ``STEPS`` steps. The range test runs
1e-5 -> 1e-2 with ``stop_on_divergence=False`` so every repeat takes all the steps.

Compared (time per step, median of ``REPEATS`` repeats):

- ``find_lr``: ``lrscope.jax.find_lr`` (engine, chunked lax.scan, host sync per chunk, restore);
- ``python loop``: the usual loop, a ``jax.jit`` train step called once per step, the loss
  fetched once at the end;
- ``one scan``: the whole run as one jitted ``lax.scan`` at a fixed LR (the floor: no engine,
  one host sync).

"post-compilation" times reuse compiled code (one warm-up run first); "with compilation"
builds everything afresh in each repeat (new jitted functions, so XLA compiles again).
Run: ``.venv/bin/python benchmarks/bench_jax.py`` from the repo root; writes
``benchmarks/results/jax.md``.
"""

from __future__ import annotations

import datetime
import itertools
import os
import pathlib
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from machine import cpu_model  # noqa: E402  (benchmarks/machine.py)

import lrscope  # noqa: E402
from lrscope.jax import find_lr, trainer  # noqa: E402

STEPS = 400
BIG_CHUNK = 100  # 4 host syncs instead of 20: more overshoot after a divergence
REPEATS = 15
COLD_REPEATS = 5
BATCH = 128
WIDTH = 256
START_LR, END_LR = 1e-5, 1e-2


def load_data() -> tuple[np.ndarray, np.ndarray, str]:
    try:
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = (digits.data / 16.0).astype(np.float32)
        return x, digits.target.astype(np.int32), "sklearn digits (1797 x 64)"
    except ImportError:
        rng = np.random.default_rng(0)
        x = rng.normal(size=(1797, 64)).astype(np.float32)
        y = np.argmax(x @ rng.normal(size=(64, 10)), axis=1).astype(np.int32)
        return x, y, "synthetic (1797 x 64, 10 classes)"


def init_params(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    sizes = [64, WIDTH, WIDTH, 10]
    return {
        f"layer{i}": {
            "w": jnp.asarray(rng.normal(0, 1 / np.sqrt(n_in), (n_in, n_out)), jnp.float32),
            "b": jnp.zeros(n_out, jnp.float32),
        }
        for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes))
    }


def loss_fn(params: dict, batch: tuple) -> jax.Array:
    x, y = batch
    for i in range(3):
        x = x @ params[f"layer{i}"]["w"] + params[f"layer{i}"]["b"]
        if i < 2:
            x = jnp.tanh(x)
    return optax.softmax_cross_entropy_with_integer_labels(x, y).mean()


def optimizer() -> optax.GradientTransformation:
    return optax.inject_hyperparams(optax.adam)(learning_rate=START_LR)


def batch_rows(k: np.ndarray, n_rows: int) -> np.ndarray:
    """Rows of batch k, as lrscope cuts array data (k*BATCH.. modulo the number of rows)."""
    return (k * BATCH + np.arange(BATCH)) % n_rows


# --------------------------------------------------------------------------- runners


def run_find_lr(data, params, warm, chunk_size=None):
    """find_lr afresh (warm=None: compiles), or the engine on an already compiled trainer."""
    if warm is None:
        return find_lr(
            loss_fn,
            params,
            optimizer(),
            data,
            batch_size=BATCH,
            start_lr=START_LR,
            end_lr=END_LR,
            steps=STEPS,
            stop_on_divergence=False,
            chunk_size=chunk_size,
            retest=False,  # one test of STEPS steps: the cost measured here
        ).loss
    return lrscope.range_test(
        warm,
        start_lr=START_LR,
        end_lr=END_LR,
        steps=STEPS,
        stop_on_divergence=False,
        chunk_size=chunk_size,
        retest=False,
    ).loss


def make_python_loop():
    opt = optimizer()

    @jax.jit
    def train_step(params, opt_state, data, k):
        x, y = data
        rows = (k * BATCH + jnp.arange(BATCH)) % x.shape[0]
        loss, grads = jax.value_and_grad(loss_fn)(params, (x[rows], y[rows]))
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    def run(data, params):
        opt_state = opt.init(params)
        losses = []
        for k in range(STEPS):
            params, opt_state, loss = train_step(params, opt_state, data, k)
            losses.append(loss)
        return np.asarray(jnp.stack(losses))

    return run


def make_one_scan():
    opt = optimizer()

    @jax.jit
    def train(params, data):
        x, y = data

        def body(carry, k):
            params, opt_state = carry
            rows = (k * BATCH + jnp.arange(BATCH)) % x.shape[0]
            loss, grads = jax.value_and_grad(loss_fn)(params, (x[rows], y[rows]))
            updates, opt_state = opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        _, losses = jax.lax.scan(body, (params, opt.init(params)), jnp.arange(STEPS))
        return losses

    return lambda data, params: np.asarray(train(params, data))


# --------------------------------------------------------------------------- timing


def interleaved_medians(runners: dict, repeats: int) -> tuple[dict, dict]:
    """Median and minimum seconds per runner; each repeat runs every runner once, in a
    rotating order, so that a shared machine's changing load hits all of them alike."""
    names = list(runners)
    times: dict = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            began = time.perf_counter()
            runners[name]()
            times[name].append(time.perf_counter() - began)
    medians = {name: statistics.median(values) for name, values in times.items()}
    return medians, {name: min(values) for name, values in times.items()}


def main() -> None:
    x, y, source = load_data()
    data = (jnp.asarray(x), jnp.asarray(y))
    params = init_params()

    # Sanity: the three runners take the same steps (same batches, and find_lr's losses
    # follow the same path while its LR is still tiny).
    warm = trainer(loss_fn, params, optimizer(), data, batch_size=BATCH)
    loop, scan = make_python_loop(), make_one_scan()
    first = run_find_lr(data, params, warm)
    assert first.shape == (STEPS,) and np.isfinite(first).all()
    assert np.allclose(loop(data, params)[:1], first[:1], rtol=1e-5)
    assert np.allclose(scan(data, params), loop(data, params), rtol=1e-4, atol=1e-5)

    big = trainer(loss_fn, params, optimizer(), data, batch_size=BATCH, chunk_size=BIG_CHUNK)
    run_find_lr(data, params, big, BIG_CHUNK)
    post, best = interleaved_medians(
        {
            "find_lr": lambda: run_find_lr(data, params, warm),
            f"find_lr, chunk_size={BIG_CHUNK}": lambda: run_find_lr(data, params, big, BIG_CHUNK),
            "python loop": lambda: loop(data, params),
            "one scan": lambda: scan(data, params),
        },
        REPEATS,
    )
    assert warm.compilations == 1 and big.compilations == 1
    cold, _ = interleaved_medians(
        {
            "find_lr": lambda: run_find_lr(data, params, None),
            f"find_lr, chunk_size={BIG_CHUNK}": lambda: run_find_lr(data, params, None, BIG_CHUNK),
            "python loop": lambda: make_python_loop()(data, params),
            "one scan": lambda: make_one_scan()(data, params),
        },
        COLD_REPEATS,
    )
    load = os.getloadavg()[0]

    def ms(seconds: float) -> str:
        return f"{1000 * seconds / STEPS:.3f}"

    rows = [
        "| runner | ms/step (median) | ms/step (min) | vs python loop | vs one scan "
        "| with compilation ms/step | vs python loop | vs one scan |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in post:
        rows.append(
            f"| {name} | {ms(post[name])} | {ms(best[name])} "
            f"| {post[name] / post['python loop']:.3f}x "
            f"| {post[name] / post['one scan']:.3f}x | {ms(cold[name])} "
            f"| {cold[name] / cold['python loop']:.3f}x | {cold[name] / cold['one scan']:.3f}x |"
        )
    chunk = warm.chunk_size
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    except OSError:
        nproc = str(os.cpu_count())
    text = "\n".join(
        [
            "# lrscope.jax.find_lr: cost per step",
            "",
            f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
            f"- machine: {nproc} CPUs (nproc), {cpu_model()}, jax {jax.__version__} "
            f"({jax.default_backend()}), optax {optax.__version__}",
            "- command: `.venv/bin/python benchmarks/bench_jax.py`",
            f"- task: MLP 64-{WIDTH}-{WIDTH}-10 (tanh), Adam, batch {BATCH}, {source}; "
            f"{STEPS} steps, LR {START_LR:g} -> {END_LR:g} (find_lr: chunks of {chunk} steps, "
            "one host sync per chunk)",
            f"- median of {REPEATS} repeats post-compilation, {COLD_REPEATS} with compilation, "
            "runners interleaved; target: find_lr <= 1.05x the plain jitted loop",
            f"- load average (1 min) at the end: {load:.1f} on {nproc} CPUs (a shared machine "
            "adds noise of several percent to every ratio)",
            "",
            *rows,
            "",
            "Ratios are of medians. find_lr includes the engine (smoothing, stop checks, "
            "snapshot and restore). "
            "python loop = a jitted train step called once per step (the usual user loop); "
            "one scan = the whole run as one jitted lax.scan (the floor). With compilation: "
            "every repeat builds and compiles afresh.",
            "",
        ]
    )
    out = ROOT / "benchmarks" / "results" / "jax.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
