"""``lrscope report``: one self-contained HTML page from saved result files."""

from __future__ import annotations

import argparse
from pathlib import Path

from lrscope.commands import UsageError

HELP = "write a self-contained HTML report (opens offline) from result JSON files"
DESCRIPTION = (
    "Read one or more result files (range test, lesson, sweep, landscape, verify; the kind is "
    "read from the file), or folders of them (every *.json inside, by name, e.g. the output "
    "folder of `lrscope find`), and write one HTML page with interactive plots. plotly.js is "
    "inlined: the page opens offline and makes no network request."
)

#: JSON ``kind`` -> (module, class) that loads it.
LOADERS = {
    "range_test": ("lrscope.core.result", "RangeTestResult"),
    "lesson": ("lrscope.lab.lesson", "LessonResult"),
    "sweep": ("lrscope.core.sweep", "SweepResult"),
    "landscape": ("lrscope.landscape", "LandscapeResult"),
    "verify": ("lrscope.core.verify", "VerifyResult"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "results",
        nargs="+",
        type=Path,
        metavar="RESULT.json",
        help="result files, or folders whose *.json files are all read (in name order)",
    )
    parser.add_argument(
        "-o",
        "--out",
        type=Path,
        default=Path("report.html"),
        help="the HTML file to write (default: ./report.html)",
    )
    parser.add_argument("--title", default="lrscope report", help="the page title")


def load_result(path: Path) -> object:
    """Read a result file of any known ``kind``; one-line errors for anything else."""
    import importlib

    from lrscope.core import jsonio
    from lrscope.errors import ResultFormatError

    if not path.is_file():
        raise UsageError(f"cannot read {path}: no such file")
    try:
        data = jsonio.loads(jsonio.read_text(path))
    except UnicodeDecodeError:
        raise ResultFormatError(f"{path}: not a JSON text file") from None
    except ResultFormatError as exc:
        raise ResultFormatError(f"{path}: {exc}") from None
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind not in LOADERS:
        raise ResultFormatError(
            f"{path}: unknown result kind {kind!r}; lrscope report reads {sorted(LOADERS)}"
        )
    module_name, class_name = LOADERS[kind]
    cls = getattr(importlib.import_module(module_name), class_name)
    try:
        return cls.from_dict(data)
    except ResultFormatError as exc:
        raise ResultFormatError(f"{path}: {exc}") from None


def expand(paths: list[Path]) -> list[Path]:
    """Each file as it is; each folder as the ``*.json`` files directly inside it, in name
    order (a folder without one is an error: it is almost always the wrong folder)."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.glob("*.json") if p.is_file())
            if not found:
                raise UsageError(f"cannot read {path}: a folder with no *.json result file")
            out += found
        else:
            out.append(path)
    return out


def run(args: argparse.Namespace) -> int:
    from lrscope.viz.report import to_html

    if args.out.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"argument -o/--out: must end in .html (got {str(args.out)!r})")
    results = [load_result(path) for path in expand(args.results)]
    text = to_html(results, args.out, title=args.title)
    size = len(text.encode("utf-8"))
    print(f"wrote {args.out} ({size / 1e6:.1f} MB; plotly.js inlined, opens offline)")
    return 0
