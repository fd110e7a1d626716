"""``lrscope sweep TARGET``: the LR x steps map, best LR per budget, locally or on Ray."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from lrscope.commands import UsageError, positive_int

HELP = "LR x steps map on TARGET: the best learning rate for each number of steps"
DESCRIPTION = (
    "Train TARGET (path/to/file.py:function returning a Trainer) for --steps steps at each "
    "LR of --lrs, from the same start; print the best LR per budget and write sweep.json, "
    "sweep_runs.jsonl (resumable with --resume), lr_steps_map.png and best_lr.png."
)
RUNS_FILE = "sweep_runs.jsonl"


def lr_list(text: str) -> list[float]:
    """argparse type: ``START:STOP:N`` (N LRs log-spaced) or ``A,B,C``."""
    from lrscope.core.sweep import check_lrs, lr_grid
    from lrscope.errors import InvalidParameterError

    try:
        if ":" in text:
            start, stop, points = text.split(":")
            return [float(v) for v in lr_grid(float(start), float(stop), int(points))]
        return [float(v) for v in check_lrs([float(v) for v in text.split(",")])]
    except (ValueError, InvalidParameterError):
        raise argparse.ArgumentTypeError(
            "must be START:STOP:N (N >= 2 LRs log-spaced, 0 < START < STOP) or a comma list of "
            f"distinct positive LRs (got {text!r})"
        ) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="TARGET", help="path/to/file.py:function")
    parser.add_argument(
        "--lrs", type=lr_list, required=True, help="START:STOP:N (log-spaced) or A,B,C"
    )
    parser.add_argument("--steps", type=positive_int, required=True, help="steps per run")
    parser.add_argument(
        "--eval-every", type=positive_int, default=None, help="held-out loss every K steps"
    )
    parser.add_argument(
        "--seeds", type=positive_int, default=1, help="repeat each run with seeds 0..N-1"
    )
    parser.add_argument("--engine", choices=("local", "ray"), default="local")
    parser.add_argument(
        "--workers", type=positive_int, default=1, help="local engine: processes (default 1)"
    )
    parser.add_argument(
        "--num-cpus", type=positive_int, default=None, help="ray: CPUs of the local cluster"
    )
    parser.add_argument("--address", default=None, help="ray: address of a running cluster")
    parser.add_argument(
        "--out", type=Path, default=Path("lrscope-sweep"), help="output folder (./lrscope-sweep)"
    )
    parser.add_argument(
        "--resume", action="store_true", help=f"continue the sweep in OUT/{RUNS_FILE}"
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the PNGs")


def run(args: argparse.Namespace) -> int:
    from lrscope.sweeping import sweep
    from lrscope.targets import build_trainer, load_callable
    from lrscope.viz.sweep_text import budget_table, runs_table

    runs_file = args.out / RUNS_FILE
    if runs_file.exists() and not args.resume:
        raise UsageError(
            f"{runs_file} exists: pass --resume to continue that sweep, or choose another --out"
        )
    # Check the target here, in one line, before any worker or cluster starts.
    factory = load_callable(args.target)
    build_trainer(factory, seed=0 if args.seeds > 1 else None)
    result = sweep(
        args.target,
        args.lrs,
        steps=args.steps,
        eval_every=args.eval_every,
        seeds=args.seeds,
        engine=args.engine,
        workers=args.workers,
        num_cpus=args.num_cpus,
        address=args.address,
        results_file=runs_file,
    )
    written = [result.save(args.out / "sweep.json"), runs_file]
    if not args.no_plots:
        from lrscope.viz.sweep_plots import write_sweep_pngs

        written += write_sweep_pngs(result, args.out)
    done = int((result.status != "missing").sum())
    print(
        f"lrscope sweep {args.target}: {result.lrs.size} LRs x {args.steps} steps"
        f"{f' x {args.seeds} seeds' if args.seeds > 1 else ''}, engine {args.engine}, "
        f"{done}/{result.status.size} runs ({result.metadata.get('runs_reused', 0)} reused "
        "from the results file)"
    )
    print(runs_table(result))
    print()
    print(budget_table(result))
    best = result.best_lr()
    if best is not None and math.isfinite(best):
        print(f"\nbest LR for all {args.steps} steps: {best:.4g}")
    if not result.complete:
        print(f"\ninterrupted: rerun with --resume to finish ({runs_file})")
    print("\nwrote " + ", ".join(str(p) for p in written))
    return 0 if result.complete else 130
