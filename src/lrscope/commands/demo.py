"""``lrscope demo``: the lesson "learning rate vs steps" on NumPy (or, with ``--framework``,
TensorFlow, PyTorch or JAX)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from lrscope.commands import check_ramp, integer, positive_float, positive_int

if TYPE_CHECKING:  # pragma: no cover
    from lrscope.core.result import RangeTestResult
    from lrscope.lab.lesson import LessonResult

HELP = "the lesson: GD on noisy linear data, learning rate vs steps"
DESCRIPTION = (
    "Reproduce the lesson 'learning rate vs steps' on NumPy (float32): fixed-LR gradient "
    "descent runs, their closed forms, and an LR range test; writes demo.json and PNGs."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("lrscope-demo"),
        help="folder for demo.json and the PNGs (default: ./lrscope-demo)",
    )
    parser.add_argument("--seed", type=integer, default=0, help="data seed (default 0)")
    parser.add_argument(
        "--lr",
        type=positive_float,
        action="append",
        dest="lrs",
        metavar="LR",
        help="a learning rate to run (repeatable; default: 0.001 0.1 0.5 0.9 1 10)",
    )
    parser.add_argument(
        "--steps", type=positive_int, default=200, help="GD steps per run (default 200)"
    )
    parser.add_argument(
        "--start-lr", type=positive_float, default=1e-4, help="range test start LR (default 1e-4)"
    )
    parser.add_argument(
        "--end-lr", type=positive_float, default=10.0, help="range test end LR (default 10)"
    )
    parser.add_argument(
        "--range-steps", type=positive_int, default=100, help="range test steps (default 100)"
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the PNGs")
    parser.add_argument(
        "--framework",
        choices=("numpy", "tensorflow", "torch", "jax"),
        default="numpy",
        help="run the GD and the range test in this framework (default numpy); "
        "the numbers agree to float32 round-off",
    )


def run(args: argparse.Namespace) -> int:
    from lrscope.lab.lesson import run_lesson
    from lrscope.lab.linreg import LESSON_LRS

    check_ramp(args.start_lr, args.end_lr, args.range_steps, "--range-steps")
    from lrscope.lab.lesson_sweep import LESSON_SWEEP_LRS

    lesson = run_lesson(
        lrs=args.lrs or LESSON_LRS,
        steps=args.steps,
        seed=args.seed,
        range_start_lr=args.start_lr,
        range_end_lr=args.end_lr,
        range_steps=args.range_steps,
        sweep_lrs=LESSON_SWEEP_LRS,
        framework=args.framework,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    written = [lesson.save(args.out / "demo.json")]
    if not args.no_plots:
        from lrscope.viz.lesson_files import write_lesson_pngs

        written += write_lesson_pngs(lesson, args.out)
        if lesson.sweep is not None:
            from lrscope.viz.sweep_plots import write_sweep_pngs

            written += write_sweep_pngs(lesson.sweep, args.out, lesson.stability.lr_diverge)
        lesson.to_html(args.out / "report.html")  # interactive, self-contained
        written.append(args.out / "report.html")
    print(lesson_summary(lesson, args.seed))
    print("\nwrote " + ", ".join(str(p) for p in written))
    return 0


def lesson_summary(lesson: LessonResult, seed: int) -> str:
    """The demo's terminal text: closed forms, the runs table, the range test, a reading."""
    from lrscope.viz.text import describe_stop, format_table, suggestions_table

    s = lesson.stability
    w_star, b_star = lesson.closed_form
    rows = []
    for r in lesson.runs:
        w, b, loss = r.final
        rows.append(
            [f"{r.lr:g}", r.steps, f"{w:.6g}", f"{b:.6g}", f"{loss:.6g}", r.describe_regime()]
        )
    rt = lesson.range_test
    return "\n".join(
        [
            f"lrscope demo: the lesson 'learning rate vs steps' ({_framework_name(rt)}, float32, "
            f"{lesson.data.x.size} points, seed {seed})",
            "",
            f"closed form (least squares): w* = {w_star:.6f}, b* = {b_star:.6f}",
            f"Hessian eigenvalues: lambda_min = {s.lambda_min:.4f}, "
            f"lambda_max = {s.lambda_max:.4f}",
            f"  GD diverges above 2/lambda_max = {s.lr_diverge:.4f}; "
            f"best fixed LR 2/(lambda_min+lambda_max) = {s.lr_best:.4f}",
            "",
            format_table(["lr", "steps", "w", "b", "final loss", "regime"], rows),
            "",
            f"LR range test: {rt.start_lr:g} -> {rt.end_lr:g} over {rt.steps} steps, "
            f"{describe_stop(rt)}",
            suggestions_table(rt),
            *_map_lines(lesson),
            "",
            "In plain words: " + lesson.reading(),
        ]
    )


def _framework_name(test: RangeTestResult) -> str:
    from lrscope.lab.frameworks import DISPLAY_NAMES

    return DISPLAY_NAMES.get(str(test.metadata.get("framework", "numpy")), "NumPy")


def _map_lines(lesson: LessonResult) -> list[str]:
    """The LR x steps map's table: best LR per budget (nothing when the lesson has no map)."""
    if lesson.sweep is None:
        return []
    from lrscope.viz.sweep_text import budget_table

    m = lesson.sweep
    return [
        "",
        f"LR x steps map: {m.lrs.size} LRs from {m.lrs.min():g} to {m.lrs.max():g}, "
        f"{m.steps} steps each; best LR per budget (loss after that many steps):",
        budget_table(m),
    ]
