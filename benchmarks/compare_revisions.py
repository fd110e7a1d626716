"""find_lr's cost beyond a bare PyTorch loop: this checkout against an earlier git revision,
interleaved in one process.

Two runs of ``bench_torch.py`` minutes apart differ by more than a small change saves on a
shared machine, so a before/after claim needs both versions timed side by side. This copies
``REV``'s ``src/lrscope`` (``git archive``) into a temporary folder as the package
``lrscope_rev`` (every ``lrscope.`` renamed), imports both, and for each repeat times, in a
random order: ``find_lr`` + ``suggest()`` of this checkout, the same of ``REV``, and the bare
loop of ``bench_torch.py`` (same steps, LRs and batches). Every call starts from the same
weights, optimizer state and batch order; the table says whether both revisions and the bare
loop gave the same losses bit for bit, and both revisions the same suggestion.

Run from the repo root (not part of ``make bench``: it needs a revision)::

    .venv/bin/python benchmarks/compare_revisions.py 9190a7b --task linreg --repeats 101

writes ``benchmarks/results/compare_revisions.md`` (the latest comparison). This checkout's
``find_lr`` runs one test (``retest=False``, as ``bench_torch.py`` times it); ``--retest``
times it with its default ``retest=True`` instead (the ``broke_down`` check after the test;
on a task whose curve breaks down, such as the CNN, the steps then differ from the bare loop's).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import inspect
import io
import os
import pathlib
import random
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch
from machine import cpu_model, median_interval  # benchmarks/machine.py

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "peers"))
import tasks  # noqa: E402  (benchmarks/peers/tasks.py)

import lrscope  # noqa: E402
import lrscope.torch  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "compare_revisions.md"


def import_revision(rev: str, folder: pathlib.Path) -> Any:
    """``REV``'s lrscope package, importable next to this checkout's as ``lrscope_rev``."""
    archive = subprocess.run(
        ["git", "archive", rev, "src/lrscope"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    package = folder / "lrscope_rev"
    (folder / "src" / "lrscope").rename(package)
    for path in package.rglob("*.py"):
        text = path.read_text()
        text = re.sub(r"\blrscope\.", "lrscope_rev.", text)
        text = re.sub(r"\bfrom lrscope import\b", "from lrscope_rev import", text)
        text = re.sub(r"^import lrscope$", "import lrscope_rev", text, flags=re.MULTILINE)
        path.write_text(text)
    sys.path.insert(0, str(folder))
    import lrscope_rev
    import lrscope_rev.torch  # the adapter, as find_lr's users import it

    return lrscope_rev


def compare(rev: str, name: str, repeats: int, package: Any, retest: bool = False) -> list[str]:
    setup = tasks.paired(name)
    if retest:
        setup.options["retest"] = True

    def finder(module: Any) -> Callable[[], tuple[list[float], float | None]]:
        # A revision from before `retest` existed ran one test anyway: leave the option out.
        accepted = inspect.signature(module.torch.find_lr).parameters
        options = {key: value for key, value in setup.options.items() if key in accepted}

        def call() -> tuple[list[float], float | None]:
            result = module.torch.find_lr(
                setup.net, setup.opt, setup.task.loss, setup.data, **options
            )
            return result.loss.tolist(), result.suggest().lr

        return call

    runners = {
        "this checkout": finder(lrscope),
        rev: finder(package),
        "bare loop": lambda: (setup.bare(), None),
    }
    times: dict[str, list[float]] = {key: [] for key in runners}
    same_losses = same_suggestion = True
    for repeat in range(repeats + 1):  # the first round is the warm-up
        order = list(runners.items())
        random.shuffle(order)
        out = {}
        for key, call in order:
            setup.reset()
            gc.collect()
            began = time.perf_counter()
            out[key] = call()
            if repeat:
                times[key].append(time.perf_counter() - began)
        losses = [out[key][0] for key in runners]
        same_losses = same_losses and losses[0] == losses[1] == losses[2]
        same_suggestion = same_suggestion and out["this checkout"][1] == out[rev][1]
    bare = times["bare loop"]
    lines = []
    for key in ("this checkout", rev):
        over = [1e3 * (t - b) for t, b in zip(times[key], bare, strict=True)]
        low, high, _ = median_interval(over)
        if key == rev:
            change = ""
        else:  # this checkout - REV, repeat by repeat: what the change itself costs or saves
            diff = [1e3 * (t - r) for t, r in zip(times[key], times[rev], strict=True)]
            d_low, d_high, _ = median_interval(diff)
            change = f"{statistics.median(diff):+.2f} ({d_low:+.2f} to {d_high:+.2f})"
        lines.append(
            f"| {name} | {setup.steps} | {key} | {1e3 * statistics.median(times[key]):.2f} | "
            f"{1e3 * statistics.median(bare):.2f} | "
            f"{statistics.median(over):.2f} ({low:.2f} to {high:.2f}) | "
            f"{statistics.median(t / b for t, b in zip(times[key], bare, strict=True)):.3f}x | "
            f"{change} | "
            f"{'yes' if same_losses else 'NO'} | {'yes' if same_suggestion else 'NO'} |"
        )
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the git revision to compare with (e.g. a commit hash)")
    parser.add_argument("--task", action="append", choices=sorted(tasks.TASKS))
    parser.add_argument("--repeats", type=int, default=101)
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS, help="the table's file")
    parser.add_argument(
        "--retest",
        action="store_true",
        help="time this checkout's find_lr with its default retest=True (the broke_down check "
        "after every test, and a 4x retest where the curve broke down: only on tasks whose "
        "curve does not, such as linreg, is the bare loop then the same steps)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        package = import_revision(args.rev, pathlib.Path(folder))
        lines = [
            "| task | steps | code | find_lr + suggest ms | bare loop ms | over the bare loop "
            f"ms (95% interval) | ratio | this checkout - {args.rev} ms (95% interval) "
            "| same losses | same suggestion |",
            "|---|---:|---|---:|---:|---:|---:|---:|---|---|",
        ]
        for name in args.task or ["linreg"]:
            lines += compare(args.rev, name, args.repeats, package, args.retest)
    text = "\n".join(
        [
            f"# find_lr's cost beyond a bare loop: this checkout against {args.rev}",
            "",
            f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
            f"- machine: {os.cpu_count()} CPUs, {cpu_model()}, torch {torch.__version__}, "
            "1 torch thread",
            f"- command: `.venv/bin/python benchmarks/compare_revisions.py {args.rev} "
            + " ".join(f"--task {name}" for name in args.task or ["linreg"])
            + f" --repeats {args.repeats}"
            + (" --retest" if args.retest else "")
            + "`",
            "- both revisions and the bare loop in one process, in a random order per repeat, "
            "each from the same weights, optimizer state and batch order; medians over the "
            "repeats; over the bare loop, ratio and this checkout - REV are medians of each "
            "repeat's difference or ratio; their 95% intervals are distribution-free intervals "
            "for those medians (`median_interval` in benchmarks/machine.py): a change is "
            "measured only when its interval excludes 0",
            "- this checkout's find_lr "
            + (
                "with its default `retest=True` (the `broke_down` check after the test)"
                if args.retest
                else "with `retest=False`: one test, as bench_torch.py times it"
            ),
            "",
            *lines,
            "",
        ]
    )
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
