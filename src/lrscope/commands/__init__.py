"""One module per ``lrscope`` subcommand.

Each module has ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``. Heavy
imports (frameworks, matplotlib) happen inside ``run`` so that ``lrscope --help`` stays fast.
User mistakes raise :class:`UsageError` (or an ``LRScopeError``): the CLI prints one line and
exits with code 2.
"""

from __future__ import annotations

import argparse
import math


class UsageError(Exception):
    """A bad combination of options found after parsing: one line, exit 2."""


def positive_float(text: str) -> float:
    """argparse type: a positive finite float, with a one-line reason when it is not."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number (got {text!r})") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive finite number (got {text!r})")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1 (got {text!r})") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1 (got {text!r})")
    return value


def integer(text: str) -> int:
    """argparse type: any integer."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer (got {text!r})") from None


def check_ramp(start_lr: float, end_lr: float, steps: int, steps_flag: str = "--steps") -> None:
    """The range-test options every subcommand checks alike: a rising LR range, >= 2 steps."""
    if start_lr >= end_lr:
        raise UsageError(
            f"argument --end-lr: must be greater than --start-lr "
            f"(got --start-lr {start_lr:g}, --end-lr {end_lr:g})"
        )
    if steps < 2:
        raise UsageError(f"argument {steps_flag}: must be >= 2 (got {steps})")
