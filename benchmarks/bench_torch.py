"""lrscope.torch.find_lr against torch-lr-finder, fastai and Lightning, side by side.

Tasks (benchmarks/peers/tasks.py, same data, weights and loader for every finder):
linear regression with SGD; scikit-learn digits MLP with Adam; digits small CNN with SGD
momentum 0.9. Each finder runs 100 steps of its own ramp (start/end LR per task), stopping on
divergence the way it does by default. "lrscope-adapter" times lrscope's PyTorch adapter
without the engine (snapshot, the ramp's chunks, restore), to separate the two costs.

Each (finder, task) runs in its own process (so peak RSS is that finder's, imports included):
lrscope under this interpreter, the peers under ``.venv-bench`` (create it with
``bash benchmarks/peers/setup.sh`` or ``make bench-peers``; without it they are reported as
"not installed"); ``PROCESSES`` such processes per pair, their calls pooled (one process's
ratio can sit a few percent off the others'). In each process: one warm-up call, then
``REPEATS`` timed calls, each paired with a bare PyTorch loop of the same number of steps
(interleaved, so load on a shared machine hits both alike; which of the pair runs first
alternates, and a ``gc.collect()`` precedes every timed region, so neither pays for the
other's garbage). Every call starts from the same weights and batch order. A finder's timed
call includes its default suggestion (lrscope: ``result.suggest()``); lrscope's second rule in the
table (valley) is computed outside the timing, since no peer computes an extra rule. One torch
thread per process. The table gives medians.

Run from the repo root: ``.venv/bin/python benchmarks/bench_torch.py``; writes
``benchmarks/results/torch.md``. ``--smoke`` (tested): the linear regression, lrscope's two
rows only, 3 repeats, a few seconds; ``--out`` writes the table elsewhere; ``--tasks`` and
``--finders`` (comma-separated) run a subset, ``--processes`` and ``--repeats`` override
PROCESSES and REPEATS, e.g. ``--tasks linreg --finders lrscope`` to re-measure one row.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import statistics
import subprocess
import sys
from collections.abc import Callable

from machine import cpu_model, median_interval  # benchmarks/machine.py

ROOT = pathlib.Path(__file__).resolve().parents[1]
PEERS = ROOT / "benchmarks" / "peers"
BENCH_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
RESULTS = ROOT / "benchmarks" / "results" / "torch.md"
#: Timed calls per process. More on the fast tasks, where a few milliseconds of noise
#: is several percent of a call; the interval in the table says how far that noise reaches.
REPEATS = {"linreg": 41, "digits_mlp": 31, "digits_cnn": 21}
#: Processes per (finder, task), each with its own warm-up and REPEATS pairs, pooled. One
#: process's ratios share its memory layout and its minutes of the machine's load: on the
#: Xeon, five runs of lrscope's linear regression row one after another gave medians from
#: 1.03x to 1.07x with intervals that did not overlap, so a single process can read high or
#: low. The table gives the pooled median and each process's median.
PROCESSES = {"linreg": 5, "digits_mlp": 3, "digits_cnn": 2}
FINDERS = ("lrscope", "lrscope-adapter", "torch-lr-finder", "fastai", "lightning")
TASKS = ("linreg", "digits_mlp", "digits_cnn")
sys.path.insert(0, str(PEERS))


def run_pooled(finder: str, task: str, repeats: int, processes: int) -> dict[str, object]:
    """:func:`run_one` in ``processes`` fresh processes, their pairs pooled; adds
    ``process_ratios``, each process's median ratio. ``iterations`` becomes text: ``"90"``, or
    ``"86-87"`` when the processes' tests stopped at different steps."""
    runs = [run_one(finder, task, repeats) for _ in range(processes)]
    failed = [run for run in runs if "error" in run]
    if failed:
        return failed[0]
    pooled = dict(runs[0])
    # fastai shuffles with its own loader, so its stop can differ by a step between processes;
    # each call is still paired with a bare loop of its own steps.
    steps = sorted({int(run["iterations"]) for run in runs})  # type: ignore[call-overload]
    pooled["iterations"] = str(steps[0]) if len(steps) == 1 else f"{steps[0]}-{steps[-1]}"
    for key in ("times", "bare_times"):
        pooled[key] = [t for run in runs for t in run[key]]  # type: ignore[attr-defined]
    pooled["peak_rss_mb"] = max(run["peak_rss_mb"] for run in runs)  # type: ignore[type-var]
    for key in ("weights_restored", "rng_restored"):
        pooled[key] = all(run[key] for run in runs)
    pooled["process_ratios"] = [
        statistics.median(
            t / b
            for t, b in zip(run["times"], run["bare_times"], strict=True)  # type: ignore[call-overload]
        )
        for run in runs
    ]
    return pooled


def run_one(finder: str, task: str, repeats: int) -> dict[str, object]:
    ours = finder.startswith("lrscope")
    python = sys.executable if ours else str(BENCH_PYTHON)
    if not ours and not BENCH_PYTHON.exists():
        return {"error": "not installed (bash benchmarks/peers/setup.sh)"}
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [python, str(PEERS / "run_finder.py"), finder, task, str(repeats)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=env,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"failed: {tail[:120]}"}
    return json.loads(lines[-1])


def _names(option: str, text: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """``--tasks``/``--finders``: a comma-separated subset of ``allowed``, in its order."""
    names = {name.strip() for name in text.split(",") if name.strip()}
    unknown = sorted(names - set(allowed))
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"{option} must be a comma-separated subset of {','.join(allowed)}; got {text!r}"
        )
    return tuple(name for name in allowed if name in names)


def _count(option: str, least: int) -> Callable[[str], int]:
    """``--repeats``/``--processes``: an integer >= ``least``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = least - 1
        if value < least:
            raise argparse.ArgumentTypeError(
                f"{option} must be an integer >= {least}; got {text!r}"
            )
        return value

    return parse


def fmt_lr(value: object) -> str:
    return "none" if value is None else f"{float(value):.3g}"  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--smoke", action="store_true", help="linreg, lrscope's rows, 3 repeats (the test)"
    )
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS, help="the table's file")
    parser.add_argument(
        "--tasks",
        type=lambda text: _names("--tasks", text, TASKS),
        help=f"comma-separated subset of {','.join(TASKS)} (default: all)",
    )
    parser.add_argument(
        "--finders",
        type=lambda text: _names("--finders", text, FINDERS),
        help=f"comma-separated subset of {','.join(FINDERS)} (default: all)",
    )
    parser.add_argument(
        "--processes",
        type=_count("--processes", 1),
        help="processes per (finder, task) instead of PROCESSES (an integer >= 1)",
    )
    parser.add_argument(
        "--repeats",
        type=_count("--repeats", 3),
        help="timed calls per process instead of REPEATS (an integer >= 3)",
    )
    args = parser.parse_args()
    task_names = args.tasks or (("linreg",) if args.smoke else TASKS)
    finders = args.finders or (FINDERS[:2] if args.smoke else FINDERS)
    repeats = {name: args.repeats or (3 if args.smoke else REPEATS[name]) for name in task_names}
    processes = {
        name: args.processes or (1 if args.smoke else PROCESSES[name]) for name in task_names
    }

    import tasks  # benchmarks/peers/tasks.py
    import torch

    rows = [
        "| task | finder | iterations | wall s | bare loop s | ratio | ratio, 95% interval "
        "| peak RSS MB | suggestion | weights restored | RNG restored | per-process ratios |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---|---|---|",
    ]
    for task in task_names:
        for finder in finders:
            out = run_pooled(finder, task, repeats[task], processes[task])
            if "error" in out:
                rows.append(f"| {task} | {finder} | | | | | | | {out['error']} | | | |")
                print(rows[-1], flush=True)
                continue
            wall = statistics.median(out["times"])  # type: ignore[arg-type]
            bare = statistics.median(out["bare_times"])  # type: ignore[arg-type]
            # The median of each call's ratio to the bare loop it was paired with: a slow
            # stretch of the shared machine slows both halves of a pair, not one median.
            ratios = [
                t / b
                for t, b in zip(out["times"], out["bare_times"], strict=True)  # type: ignore[call-overload]
            ]
            ratio = statistics.median(ratios)
            low, high, _ = median_interval(ratios)
            suggestions = ", ".join(
                f"{name} {fmt_lr(lr)}"
                for name, lr in out["suggestions"].items()  # type: ignore[union-attr]
            )
            rows.append(
                f"| {task} | {finder} | {out['iterations']} | {wall:.3f} | {bare:.3f} | "
                f"{ratio:.2f}x | {low:.2f}-{high:.2f} | {out['peak_rss_mb']:.0f} | {suggestions} | "
                f"{'yes' if out['weights_restored'] else 'NO'} | "
                f"{'yes' if out['rng_restored'] else 'NO'} | "
                + " ".join(f"{r:.2f}" for r in sorted(out["process_ratios"]))  # type: ignore[attr-defined]
                + " |"
            )
            print(rows[-1], flush=True)
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    except OSError:
        nproc = str(os.cpu_count())
    load = os.getloadavg()[0]
    task_lines = [
        f"  - {t.name}: {t.description}; batch {t.batch_size}, LR {t.start_lr:g} -> "
        f"{t.end_lr:g}, {t.steps} steps"
        for t in (tasks.TASKS[name] for name in task_names)
    ]
    text = "\n".join(
        [
            "# lrscope.torch.find_lr vs torch-lr-finder, fastai, Lightning",
            "",
            f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
            f"- machine: {nproc} CPUs (nproc), {cpu_model()}, torch {torch.__version__}, "
            "1 torch thread per process",
            "- command: `.venv/bin/python benchmarks/bench_torch.py"
            + (" --smoke" if args.smoke else "")
            + (f" --tasks {','.join(task_names)}" if args.tasks else "")
            + (f" --finders {','.join(finders)}" if args.finders else "")
            + (f" --processes {args.processes}" if args.processes else "")
            + (f" --repeats {args.repeats}" if args.repeats else "")
            + "` (peers from `.venv-bench`, made by `bash benchmarks/peers/setup.sh`)",
            "- tasks:",
            *task_lines,
            "- wall s / bare loop s: medians of "
            + ", ".join(f"{processes[t]} x {repeats[t]} ({t})" for t in task_names)
            + " repeats (processes x repeats, each process after one warm-up, pooled); the bare "
            "loop is the plain PyTorch loop (set the LR, zero_grad, forward, loss, backward, "
            "step) for the same number of steps, paired with each finder call (alternately "
            "before and after "
            "it; gc.collect() before every timed region); ratio = median over the repeats of "
            "(finder call / its paired bare loop) (target for lrscope: <= 1.05x); its 95% "
            "interval: distribution-free, for the median of the pairs' ratios (order "
            "statistics, exact binomial coverage; `median_interval` in benchmarks/machine.py): "
            "the ratios this shared machine's noise leaves possible (over the pooled pairs: it "
            "does not cover the differences between processes); per-process ratios: each "
            "process's median ratio, sorted (one process's can sit a few percent off the "
            "others')",
            "- every timed call starts from the same weights and the same batch order (the "
            "loader's generator and the global RNGs are put back before it; the torch loaders "
            "then yield the bare loop's batches; fastai shuffles with its own loader)",
            "- timed finder call: the range test and the finder's default suggestion (lrscope: "
            "find_lr + result.suggest(); the valley column is computed untimed)",
            "- lrscope-adapter: the PyTorch adapter alone, built per call as find_lr builds it "
            "(snapshot, every chunk of the ramp through run_chunks, restore) without the "
            "engine's per-chunk smoothing and stop checks or a suggestion, to show which part "
            "of lrscope's cost is which; it always runs all steps",
            "- peak RSS: the finder's own process, imports included",
            "- restored: weights (state_dict) and torch's global RNG equal before and after, "
            "using each tool as documented (torch-lr-finder: `reset()`)",
            f"- load average (1 min) at the end: {load:.1f} on {nproc} CPUs (shared machine: "
            "several percent of noise on every ratio)",
            "",
            *rows,
            "",
        ]
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
