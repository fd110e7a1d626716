"""The ``lrscope`` command. Subcommands live in :mod:`lrscope.commands` (one module each).

User mistakes (bad options, bad files) print one line on stderr and exit with code 2, never a
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from lrscope import __version__
from lrscope.commands import UsageError
from lrscope.errors import LRScopeError

#: Subcommands, in the order ``--help`` lists them; each is a module in lrscope.commands.
COMMANDS = ("demo", "find", "sweep", "report")


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line: ``lrscope demo: error: ...`` and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lrscope",
        description="Find a learning rate you can trust for the "
        "number of steps you can afford, and see why.",
    )
    parser.add_argument("--version", action="version", version=f"lrscope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        module = importlib.import_module(f"lrscope.commands.{name}")
        command = sub.add_parser(
            name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP)
        )
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lrscope`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    prog = f"lrscope {args.command}"
    try:
        return int(args.run(args))
    except (UsageError, LRScopeError, OSError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
