"""``lrscope find TARGET``: an LR range test on the Trainer a function returns."""

from __future__ import annotations

import argparse
from pathlib import Path

from lrscope.commands import UsageError, check_ramp, positive_float, positive_int

HELP = "LR range test on TARGET (path/to/file.py:function returning a Trainer)"
DESCRIPTION = (
    "Run an LR range test on the Trainer that TARGET returns (TARGET = path/to/file.py:function "
    "or module:function); print every rule's suggestion and write range_test.json and "
    "range_test.png. With --budget N, then train N steps at the default suggestion and its "
    "neighbours from the same start (lrscope.verify) and print the best LR for N steps "
    "(verify.json)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="TARGET", help="path/to/file.py:function")
    parser.add_argument(
        "--start-lr", type=positive_float, default=1e-7, help="first LR (default 1e-7)"
    )
    parser.add_argument("--end-lr", type=positive_float, default=10.0, help="last LR (default 10)")
    parser.add_argument("--steps", type=positive_int, default=100, help="steps (default 100)")
    parser.add_argument(
        "--mode", choices=("exp", "linear"), default="exp", help="LR ramp (default exp)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("lrscope-find"), help="output folder (./lrscope-find)"
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG")
    parser.add_argument(
        "--no-retest",
        action="store_true",
        help="run exactly one test, even when its curve broke down (by default such a test "
        "runs again with 4x the steps, whose reading is steadier)",
    )
    parser.add_argument(
        "--budget",
        type=positive_int,
        default=None,
        metavar="N",
        help="also verify: the best LR for N training steps, searched around the suggestion",
    )


def run(args: argparse.Namespace) -> int:
    from lrscope.core.rangetest import range_test
    from lrscope.targets import build_trainer
    from lrscope.viz.text import describe_stop, suggestions_table

    check_ramp(args.start_lr, args.end_lr, args.steps)
    trainer = build_trainer(args.target)
    result = range_test(
        trainer,
        start_lr=args.start_lr,
        end_lr=args.end_lr,
        steps=args.steps,
        mode=args.mode,
        metadata={"target": args.target},
        retest=not args.no_retest,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    written = [result.save(args.out / "range_test.json")]
    if not args.no_plots:
        from lrscope.viz.plots import new_figure, plot_range_test
        from lrscope.viz.sweep_plots import save_png

        fig = new_figure()
        plot_range_test(result, ax=fig.add_subplot())
        written.append(save_png(fig, args.out / "range_test.png"))
    print(
        f"lrscope find {args.target}: {result.start_lr:g} -> {result.end_lr:g} over "
        f"{result.steps} steps ({args.mode}), {describe_stop(result)}"
    )
    print(suggestions_table(result))
    if args.budget is not None:
        from lrscope.core.verify import verify
        from lrscope.viz.text import verify_table

        if result.suggest().lr is None:
            raise UsageError(
                "argument --budget: the range test gave no suggestion to verify around "
                f"({result.suggest().reason})"
            )
        check = verify(trainer, around=result, steps=args.budget)
        written.append(check.save(args.out / "verify.json"))
        print()
        print(verify_table(check))
    print("\nwrote " + ", ".join(str(p) for p in written))
    print(f"interactive report: lrscope report {args.out} -o report.html")
    return 0
