"""Where lrscope.torch.find_lr's time goes beyond a bare PyTorch loop, part by part.

For each task of ``bench_torch.py`` (same data, model, optimizer and loader), ``REPEATS``
pairs of one ``find_lr`` call (with its default suggestion) and one bare loop of the same
steps and the same LRs, on the same model objects, in a random order per pair. Inside the
find_lr call, wrappers time the parts: the training steps (``TorchTrainer``'s step loops,
every chunk, less the hand-overs and the engine's callbacks they make), ``snapshot``,
``restore``, ``suggest()``; the rest is the per-chunk hand-over (one transfer of the chunk's
losses to Python floats) and the engine's bookkeeping and set-up (trainer construction,
ramp, smoothing, stop checks, result). Every part is
measured inside the real loop, where it costs several times what it costs alone (the steps
in between evict its code and data from the CPU caches). The wrappers add well under a
microsecond per call. A second table times each part alone (no find_lr around it), right
after a bare loop of the task's steps and warm, with one NumPy call for scale: how much of
each part's cost is the cold caches rather than its work.

Run from the repo root: ``.venv/bin/python benchmarks/bench_torch_breakdown.py``; writes
``benchmarks/results/torch_breakdown.md``. ``--smoke`` (tested): the linear regression, 3
pairs; ``--out`` writes the table elsewhere.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import pathlib
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from machine import cpu_model, median_interval  # benchmarks/machine.py

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "peers"))
import tasks  # noqa: E402  (benchmarks/peers/tasks.py)

import lrscope  # noqa: E402
import lrscope.adapters.torch as torch_adapter  # noqa: E402
import lrscope.torch  # noqa: E402
from lrscope.adapters.torch import TorchTrainer  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "torch_breakdown.md"
REPEATS = 41
PARTS = ("loop", "snapshot", "restore", "suggest")
#: TorchTrainer methods timed, and the part each one's time goes to
WRAPPED = {
    "_run_plain": "loop",
    "_run_general": "loop",
    "snapshot": "snapshot",
    "restore": "restore",
}


def timed(spent: dict[str, float], key: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[key] += time.perf_counter() - began

    return wrapper


def measure(name: str, repeats: int = REPEATS) -> dict[str, Any]:
    setup = tasks.paired(name)
    task, net, opt, data = setup.task, setup.net, setup.opt, setup.data
    spent = dict.fromkeys(PARTS, 0.0)
    originals = {method: getattr(TorchTrainer, method) for method in WRAPPED}
    for method, fn in originals.items():
        setattr(TorchTrainer, method, timed(spent, WRAPPED[method], fn))
    suggest = timed(spent, "suggest", lambda result: result.suggest())
    # The step loop hands each chunk over and calls the engine back from inside itself: that
    # time is taken out of the loop's (it is the hand-over and the engine's, not the steps').
    spent["inner"] = 0.0
    host_floats = torch_adapter._host_floats
    run_chunks = TorchTrainer.run_chunks

    def run_chunks_timed(self: Any, lrs: Any, chunk: int, on_chunk: Any, quiet: Any = None) -> None:
        run_chunks(self, lrs, chunk, timed(spent, "inner", on_chunk), quiet)

    torch_adapter._host_floats = timed(spent, "inner", host_floats)
    TorchTrainer.run_chunks = run_chunks_timed  # type: ignore[method-assign]

    def find() -> list[float]:
        result = lrscope.torch.find_lr(net, opt, task.loss, data, **setup.options)
        suggest(result)
        return result.loss.tolist()

    rows: dict[str, list[float]] = {key: [] for key in ("find", "bare", *PARTS)}
    same = True
    try:
        for repeat in range(repeats + 1):  # the first pair is the warm-up
            order = [("find", find), ("bare", setup.bare)]
            random.shuffle(order)
            losses = {}
            for key, fn in order:
                setup.reset()
                for part in (*PARTS, "inner"):
                    spent[part] = 0.0
                gc.collect()
                began = time.perf_counter()
                losses[key] = fn()
                if repeat == 0:
                    continue
                rows[key].append(time.perf_counter() - began)
                if key == "find":
                    spent["loop"] -= spent["inner"]
                    for part in PARTS:
                        rows[part].append(spent[part])
            # Both ran the same operations: bitwise the same losses, on every pair.
            same = same and losses["find"] == losses["bare"]
    finally:
        for method, fn in originals.items():
            setattr(TorchTrainer, method, fn)
        TorchTrainer.run_chunks = run_chunks  # type: ignore[method-assign]
        torch_adapter._host_floats = host_floats
    out = {key: statistics.median(values) for key, values in rows.items()}
    out["rest"] = statistics.median(
        f - sum(rows[p][i] for p in PARTS) for i, f in enumerate(rows["find"])
    )
    pairs = list(zip(rows["find"], rows["loop"], rows["bare"], strict=True))
    extra = [r - b for _, r, b in pairs]
    ratios = [f / b for f, _, b in pairs]
    out["steps_extra"] = statistics.median(extra)
    out["steps_extra_interval"] = median_interval(extra)[:2]
    out["ratio"] = statistics.median(ratios)
    out["ratio_interval"] = median_interval(ratios)[:2]
    out["steps"] = setup.steps
    out["same"] = same
    return out


#: What ``alone`` times: each part of a find_lr call by itself, and one NumPy call for scale.
ALONE_PARTS = (
    "TorchTrainer(...)",
    "snapshot()",
    "restore(snapshot)",
    "result.suggest()",
    "np.add.reduce(losses)",
)


def alone(name: str, repeats: int = REPEATS) -> dict[str, tuple[float, float]]:
    """Each part of a find_lr call timed by itself: right after a bare loop of the task's steps
    (as inside find_lr, where training steps come before or between them) and warm (called
    back to back). Medians in seconds, ``{part: (after the steps, warm)}``. The garbage
    collector is off meanwhile (a collection walks every object and would evict the caches
    itself)."""
    setup = tasks.paired(name)
    net, opt, loss, data = setup.net, setup.opt, setup.task.loss, setup.data
    trainer = TorchTrainer(net, opt, loss, data)
    state = trainer.snapshot()
    result = lrscope.torch.find_lr(net, opt, loss, data, **setup.options)
    losses = result.loss
    parts: dict[str, Callable[[], Any]] = {
        "TorchTrainer(...)": lambda: TorchTrainer(net, opt, loss, data),
        "snapshot()": trainer.snapshot,
        "restore(snapshot)": lambda: trainer.restore(state),
        "result.suggest()": result.suggest,
        "np.add.reduce(losses)": lambda: np.add.reduce(losses),
    }
    out = {}
    gc.collect()
    gc.disable()
    try:
        for label in ALONE_PARTS:
            fn = parts[label]
            after, warm = [], []
            for _ in range(repeats):
                setup.reset()
                setup.bare()
                began = time.perf_counter()
                fn()
                after.append(time.perf_counter() - began)
            fn()
            for _ in range(repeats):
                began = time.perf_counter()
                fn()
                warm.append(time.perf_counter() - began)
            out[label] = (statistics.median(after), statistics.median(warm))
    finally:
        gc.enable()
        setup.reset()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="linreg, 3 pairs (the test)")
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS, help="the table's file")
    args = parser.parse_args()
    repeats = 3 if args.smoke else REPEATS
    torch.set_num_threads(1)
    header = (
        "| task | steps | bare loop ms | find_lr + suggest ms | ratio (95% interval) | steps "
        "beyond the bare loop ms (95% interval) | snapshot ms | restore ms | suggest ms | "
        "hand-over, engine and set-up ms | same losses |"
    )
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name in ("linreg",) if args.smoke else ("linreg", "digits_mlp", "digits_cnn"):
        m = measure(name, repeats)
        lines.append(
            f"| {name} | {m['steps']:.0f} | {1e3 * m['bare']:.2f} | {1e3 * m['find']:.2f} | "
            f"{m['ratio']:.3f}x ({m['ratio_interval'][0]:.3f}-{m['ratio_interval'][1]:.3f}) | "
            f"{1e3 * m['steps_extra']:.2f} ({1e3 * m['steps_extra_interval'][0]:.2f} to "
            f"{1e3 * m['steps_extra_interval'][1]:.2f}) | {1e3 * m['snapshot']:.2f} | "
            f"{1e3 * m['restore']:.2f} | {1e3 * m['suggest']:.2f} | {1e3 * m['rest']:.2f} | "
            f"{'yes' if m['same'] else 'NO'} |"
        )
        print(lines[-1], flush=True)
    cold = [
        "| task | part | alone, right after a bare loop us | alone, warm us | ratio |",
        "|---|---|---:|---:|---:|",
    ]
    for name in ("linreg",) if args.smoke else ("linreg", "digits_mlp", "digits_cnn"):
        for part, (after, warm) in alone(name, repeats).items():
            cold.append(
                f"| {name} | {part} | {1e6 * after:.1f} | {1e6 * warm:.1f} | {after / warm:.1f}x |"
            )
            print(cold[-1], flush=True)
    text = "\n".join(
        [
            "# Where find_lr's time goes beyond a bare loop (PyTorch)",
            "",
            f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
            f"- machine: {os.cpu_count()} CPUs, {cpu_model()}, torch {torch.__version__}, "
            "1 torch thread",
            "- command: `.venv/bin/python benchmarks/bench_torch_breakdown.py"
            + (" --smoke`" if args.smoke else "`"),
            f"- medians of {repeats} pairs (find_lr + suggest, and a bare loop of the same "
            "steps at the same LRs on the same objects, random order per pair); ratio = "
            "median of the pairs' ratios; 95% intervals: distribution-free, for those medians "
            "(`median_interval` in benchmarks/machine.py); steps beyond the bare loop = median "
            "over pairs of "
            "(time inside TorchTrainer's step loops, less the hand-overs and engine callbacks made "
            "from inside them, - the paired bare loop); hand-over, engine "
            "and set-up = find_lr + suggest - steps - snapshot - restore - suggest (the "
            "per-chunk transfer of the losses, the engine's bookkeeping, the set-up)",
            "- each part is timed inside the real loop, where it costs several times what it "
            "costs alone",
            "- both runs of a pair start from the same weights, optimizer state and batch order "
            "(the loader's generator is reset before each), so they run the same operations: "
            "same losses = every pair's losses equal bit for bit; a negative steps beyond the "
            "bare loop is this shared machine's noise",
            "",
            *lines,
            "",
            "## Each part alone: right after the training steps, and warm",
            "",
            f"Medians of {repeats} calls of each part by itself (no find_lr around it): right "
            "after a bare loop of the task's steps, as inside find_lr, and warm, called back "
            "to back; the garbage collector off. The training steps evict the part's code "
            "and data from the CPU caches, so right after them it costs several times its "
            "warm cost, and so does one NumPy call (the last row, for scale): that is why the "
            "parts cost more inside the loop (the table above) than any microbenchmark of "
            "them shows.",
            "",
            *cold,
            "",
        ]
    )
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
