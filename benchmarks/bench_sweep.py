"""Speed of a 12-LR sweep on Ray (2 workers) against the local engine, and Ray's per-run cost.

Task (heavy enough per run to matter): an MLP (64-128-128-10, tanh) on scikit-learn's bundled
digits (1797 x 64), plain SGD, minibatches of 64 from a fixed shuffled order, ``STEPS`` steps
per LR, 12 LRs log-spaced 1e-3 .. 1. Each process runs PyTorch on ONE thread
(``torch.set_num_threads(1)``) so that "2 workers" means 2 cores, not 2 x N threads; a
"local, torch 2 threads" row shows the other way to use both cores.

The Trainer is written by hand here (snapshot = state_dict + optimizer state + data position
+ torch RNG), so the benchmark does not depend on lrscope's torch adapter.

Rows (wall time of the whole sweep, median of ``REPEATS``):

- local: sequential in one process (the default engine);
- local, torch 2 threads: the same, PyTorch using both cores inside each step;
- process pool: ``workers=2`` (spawned processes, trainers built once per worker);
- Ray: ``engine="ray"`` on a local cluster with ``num_cpus=2`` (started once, before; its
  start-up time is reported on its own; the first sweep pays worker start-up and imports).

Ray overhead: ``OVERHEAD_RUNS`` runs of one step of a trivial NumPy trainer, so the time per run
is dispatch + (de)serialisation + bookkeeping; compared with the same runs in process.

Run: ``.venv/bin/python benchmarks/bench_sweep.py`` from the repo root; writes
``benchmarks/results/sweep.md``.
"""

from __future__ import annotations

import datetime
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from machine import cpu_model  # noqa: E402  (benchmarks/machine.py)

import lrscope  # noqa: E402

STEPS = 300
LRS = [float(v) for v in np.geomspace(1e-3, 1.0, 12)]
REPEATS = 3
OVERHEAD_RUNS = 60
HERE = pathlib.Path(__file__).resolve()


# -- the task (top-level: workers build it from "bench_sweep.py:digits_trainer") -------------
class DigitsTrainer:
    """A hand-written lrscope Trainer: MLP + SGD on digits, minibatches in a fixed order."""

    def __init__(self, threads: int = 1, seed: int = 0) -> None:
        import torch
        from sklearn.datasets import load_digits

        torch.set_num_threads(threads)
        digits = load_digits()
        self.x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
        self.y = torch.tensor(digits.target, dtype=torch.long)
        generator = torch.Generator().manual_seed(seed)
        self.order = torch.randperm(len(self.x), generator=generator)
        torch.manual_seed(seed)
        self.model = torch.nn.Sequential(
            torch.nn.Linear(64, 128),
            torch.nn.Tanh(),
            torch.nn.Linear(128, 128),
            torch.nn.Tanh(),
            torch.nn.Linear(128, 10),
        )
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1)
        self.position = 0
        self.batch = 64
        self.torch = torch

    def run(self, lrs: np.ndarray) -> np.ndarray:
        torch = self.torch
        out = np.empty(len(lrs))
        for i, lr in enumerate(lrs):
            for group in self.optimizer.param_groups:
                group["lr"] = float(lr)
            if self.position + self.batch > len(self.order):
                self.position = 0
            index = self.order[self.position : self.position + self.batch]
            self.position += self.batch
            loss = torch.nn.functional.cross_entropy(self.model(self.x[index]), self.y[index])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            out[i] = float(loss.detach())
        return out

    def snapshot(self) -> dict:
        import copy

        return {
            "model": copy.deepcopy(self.model.state_dict()),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "position": self.position,
            "rng": self.torch.get_rng_state(),
        }

    def restore(self, state: dict) -> None:
        import copy

        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        self.position = state["position"]
        self.torch.set_rng_state(state["rng"])


def digits_trainer() -> DigitsTrainer:
    return DigitsTrainer(threads=1)


def digits_trainer_2_threads() -> DigitsTrainer:
    return DigitsTrainer(threads=2)


class NoWork:
    """One float per step, nothing else: a run's cost is the engine's cost."""

    def run(self, lrs: np.ndarray) -> np.ndarray:
        return np.zeros(len(lrs))

    def snapshot(self) -> int:
        return 0

    def restore(self, state: int) -> None:
        pass


def no_work() -> NoWork:
    return NoWork()


# -- measuring -------------------------------------------------------------------------------
def timed(fn) -> tuple[float, object]:
    began = time.perf_counter()
    out = fn()
    return time.perf_counter() - began, out


def main() -> None:
    import ray

    target = f"{HERE}:digits_trainer"
    rows = []
    load_before = os.getloadavg()

    def sweep_row(name: str, call) -> None:
        times, result = [], None
        for _ in range(REPEATS):
            seconds, result = timed(call)
            times.append(seconds)
        run_s = np.nansum(result.wall_s)
        rows.append((name, statistics.median(times), min(times), run_s))
        print(f"{name:34s} median {statistics.median(times):7.2f} s  (min {min(times):.2f})")
        return result

    local = sweep_row(
        "local (1 process, torch 1 thread)", lambda: lrscope.sweep(target, LRS, steps=STEPS)
    )
    sweep_row(
        "local (1 process, torch 2 threads)",
        lambda: lrscope.sweep(f"{HERE}:digits_trainer_2_threads", LRS, steps=STEPS),
    )
    sweep_row(
        "process pool (workers=2)",
        lambda: lrscope.sweep(target, LRS, steps=STEPS, workers=2),
    )
    init_s, _ = timed(
        lambda: ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    )
    try:
        first_s, first = timed(lambda: lrscope.sweep(target, LRS, steps=STEPS, engine="ray"))
        same = np.array_equal(first.loss, local.loss, equal_nan=True)
        print(f"ray init {init_s:.2f} s; first (cold) ray sweep {first_s:.2f} s; equal={same}")
        sweep_row(
            "ray (2 workers, warm)", lambda: lrscope.sweep(target, LRS, steps=STEPS, engine="ray")
        )
        # dispatch overhead: runs of ~0 work
        lrs = [float(v) for v in np.geomspace(1e-3, 1.0, OVERHEAD_RUNS)]
        nothing = f"{HERE}:no_work"
        lrscope.sweep(nothing, lrs[:4], steps=1, engine="ray")  # warm the workers
        ray_none = [
            timed(lambda: lrscope.sweep(nothing, lrs, steps=1, engine="ray"))[0]
            for _ in range(REPEATS)
        ]
    finally:
        ray.shutdown()
    local_none = [timed(lambda: lrscope.sweep(NoWork(), lrs, steps=1))[0] for _ in range(REPEATS)]
    load_after = os.getloadavg()

    base = rows[0][1]
    table = [
        f"| engine | sweep wall time (median of {REPEATS}) | min | sum of per-run times "
        "| speed-up vs local |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, median, best, run_s in rows:
        table.append(
            f"| {name} | {median:.2f} s | {best:.2f} s | {run_s:.2f} s | {base / median:.2f}x |"
        )
    per_ray = statistics.median(ray_none) / OVERHEAD_RUNS * 1e3
    per_local = statistics.median(local_none) / OVERHEAD_RUNS * 1e3
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    text = "\n".join(
        [
            "# Sweep engines: local vs Ray",
            "",
            f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}; "
            f"commit {commit}",
            f"- machine: {os.cpu_count()} CPUs (`nproc`), {cpu_model()}; Python "
            f"{platform.python_version()}; load average before {load_before[0]:.1f}, after "
            f"{load_after[0]:.1f} (the machine is shared: other jobs ran during the measurement)",
            f"- task: 12 LRs (1e-3..1, log) x {STEPS} SGD steps, MLP 64-128-128-10 on sklearn "
            "digits, batch 64, torch 1 thread per process unless said",
            "- command: `.venv/bin/python benchmarks/bench_sweep.py`",
            "",
            *table,
            "",
            f"- Ray local cluster start (`ray.init(num_cpus=2)`): {init_s:.2f} s; first sweep on "
            f"the fresh cluster (worker start-up + imports): {first_s:.2f} s; Ray results equal "
            f"the local engine's bit for bit: {same}",
            f"- per-run overhead, runs of ~0 work ({OVERHEAD_RUNS} runs of 1 step, median of "
            f"{REPEATS}): Ray {per_ray:.1f} ms per run, in process {per_local:.2f} ms per run",
            "",
        ]
    )
    out = ROOT / "benchmarks" / "results" / "sweep.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
