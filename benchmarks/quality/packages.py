"""The peers' own packages (torch-lr-finder, fastai, Lightning) as ``pkg:*`` rows of the table.

``quality/peers.py`` re-implements what those libraries do with a range-test curve; this module
runs the real packages, so the table shows both and any gap between them. The packages live
only in ``.venv-bench`` (``make bench-peers``), never in lrscope's ``.venv``: each runs in one
subprocess (``pkg_runner.py``: one import, every torch task and seed), started in the background
when the benchmark starts. The harness calls :meth:`PackageRuns.add_rows` after measuring a
task; it waits for the subprocesses, checks that each package trained the harness's own start
(replaying the LRs the package used in the harness's trainer gives the losses the package
saw), and hands each package's suggestion to the harness as rule ``pkg:<package>``, scored like
every other rule (regret, log10(sugg/best), seed spread). Without ``.venv-bench`` there are no
``pkg:*`` rows and :meth:`PackageRuns.note` says why.
"""

from __future__ import annotations

import atexit
import json
import math
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from quality.peers import PEERS

ROOT = Path(__file__).resolve().parents[2]
BENCH_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
RUNNER = Path(__file__).with_name("pkg_runner.py")
PACKAGES = ("torch_lr_finder", "fastai", "lightning")
#: Seconds one package's subprocess may take (imports included) before it is stopped.
TIMEOUT_S = 600
#: Relative difference below which a replayed loss, or a re-implementation's LR, is "the same".
RTOL = 1e-5
#: The re-implementation in quality/peers.py of each package's default suggestion.
PEER_OF = {
    "torch_lr_finder": "torch_lr_finder",
    "fastai": "fastai_valley",
    "lightning": "lightning",
}


@dataclass
class Outcome:
    """One package's subprocess: its JSON (None when it failed) and why it failed."""

    package: str
    data: dict[str, Any] | None
    error: str | None
    seconds: float


@dataclass
class Checks:
    """What the harness verified about one package's runs."""

    replayed: int = 0  # (task, seed) runs replayed in the harness's trainer
    steps: int = 0  # their steps
    worst_rtol: float = 0.0  # largest relative loss difference of a replay
    peer_same: int = 0  # runs where our re-implementation, fed the package's curve, agrees
    problems: list[str] = field(default_factory=list)


def run_package(
    package: str, tasks: list[str], seeds: list[int], python: Path = BENCH_PYTHON
) -> Outcome:
    """Run ``pkg_runner.py`` for one package in ``python``'s environment; never raises."""
    command = [
        str(python),
        str(RUNNER),
        "--package",
        package,
        "--tasks",
        ",".join(tasks),
        "--seeds",
        ",".join(map(str, seeds)),
    ]
    began = time.perf_counter()
    try:
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    except OSError as exc:
        return Outcome(package, None, f"could not start {python}: {exc}", 0.0)
    _LIVE.add(process)
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        return Outcome(package, None, f"timed out after {TIMEOUT_S} s", TIMEOUT_S)
    finally:
        _LIVE.discard(process)
    seconds = time.perf_counter() - began
    if process.returncode != 0:
        lines = [line for line in stderr.strip().splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit status {process.returncode}"
        return Outcome(package, None, f"failed ({last.strip()})", seconds)
    try:
        data = json.loads(stdout.strip().splitlines()[-1])
    except (IndexError, ValueError) as exc:
        return Outcome(package, None, f"unreadable output ({exc})", seconds)
    return Outcome(package, data, None, seconds)


# Subprocesses still running when the benchmark exits early (an error, Ctrl-C) are stopped.
_LIVE: set[subprocess.Popen] = set()


@atexit.register
def _stop_live() -> None:
    for process in list(_LIVE):
        process.kill()


def replay_difference(trainer: Any, start: object, lrs: list[float], losses: list[float]) -> float:
    """Largest relative difference between ``losses`` (what a package recorded) and the losses
    of the harness's ``trainer`` run from ``start`` at the same per-step ``lrs``; inf when one
    diverged and the other did not. Restores ``start`` afterwards."""
    recorded = np.asarray(losses, dtype=float)
    trainer.restore(start)
    try:
        replayed = np.asarray(trainer.run(np.asarray(lrs, dtype=float)), dtype=float)
    finally:
        trainer.restore(start)
    # The harness's trainer stops at the first non-finite loss (NaN after it); a package may
    # go on, so compare up to the first non-finite recorded loss, which must be non-finite in
    # the replay too.
    bad = ~np.isfinite(recorded)
    n = int(np.argmax(bad)) if bad.any() else recorded.size
    if not np.isfinite(replayed[:n]).all() or (n < recorded.size and np.isfinite(replayed[n])):
        return math.inf
    if n == 0:
        return 0.0
    scale = np.maximum(np.abs(recorded[:n]), 1e-12)
    return float(np.max(np.abs(replayed[:n] - recorded[:n]) / scale))


class PackageRuns:
    """Every package's subprocess for one benchmark run, and the rows it adds.

    >>> packages = PackageRuns(["digits_mlp"], [0, 1]).start()   # background
    >>> run_task(task, seeds, extra=packages.add_rows)            # waits when first needed
    >>> packages.note()                                           # the table header's line
    """

    def __init__(
        self,
        tasks: list[str],
        seeds: list[int],
        *,
        enabled: bool = True,
        python: Path = BENCH_PYTHON,
        packages: tuple[str, ...] = PACKAGES,
    ) -> None:
        self.tasks, self.seeds, self.python, self.packages = tasks, seeds, python, packages
        self.skipped: str | None = None
        if not enabled:
            self.skipped = "not run (--no-packages)"
        elif not python.exists():
            self.skipped = (
                f"not run: {python.relative_to(ROOT) if python.is_relative_to(ROOT) else python}"
                " not found (`make bench-peers` builds it)"
            )
        elif not tasks:
            self.skipped = "not run: no torch task selected"
        self.outcomes: dict[str, Outcome] = {}
        self.checks: dict[str, Checks] = {package: Checks() for package in packages}
        self.wait_s = 0.0  # how long the harness waited for the subprocesses
        self.check_s = 0.0  # replays in the harness's trainer
        self._thread: threading.Thread | None = None

    def start(self) -> PackageRuns:
        """Start the subprocesses, one package after another, in a background thread: they
        use the second core while the (single-threaded) harness measures the first tasks."""
        if self.skipped is None and self._thread is None:
            self._thread = threading.Thread(target=self._run_all, daemon=True)
            self._thread.start()
        return self

    def _run_all(self) -> None:
        for package in self.packages:
            self.outcomes[package] = run_package(package, self.tasks, self.seeds, self.python)

    def results(self) -> dict[str, Outcome]:
        """Each package's outcome, waiting for the subprocesses if they still run."""
        if self._thread is not None:
            began = time.perf_counter()
            self._thread.join()
            self.wait_s += time.perf_counter() - began
            self._thread = None
        return self.outcomes

    def add_rows(self, task: Any, runs: list[Any]) -> list[str]:
        """``harness.run_task``'s ``extra`` hook: set each seed run's ``pkg:<package>``
        suggestion, score it, and return the rule names to tabulate (none for a task the
        packages did not run, such as the NumPy lesson)."""
        if self.skipped is not None or task.name not in self.tasks:
            return []
        names = []
        for package, outcome in self.results().items():
            if outcome.data is None or task.name not in outcome.data["suggestions"]:
                continue
            began = time.perf_counter()
            rule = f"pkg:{package}"
            by_seed = outcome.data["suggestions"][task.name]
            records = outcome.data["runs"][task.name]
            checks = self.checks[package]
            for run in runs:
                lr = by_seed.get(str(run.seed))
                run.suggestions[rule] = lr
                record = records.get(str(run.seed), {})
                where = f"{task.name} seed {run.seed}"
                if record.get("error"):
                    checks.problems.append(f"{where}: {record['error']}")
                if record.get("lrs"):
                    self._check(package, checks, where, run, lr, record)
                if lr is not None:
                    run.runner.scores(lr)
            self.check_s += time.perf_counter() - began
            names.append(rule)
        return names

    @staticmethod
    def _check(
        package: str, checks: Checks, where: str, run: Any, lr: float | None, record: dict
    ) -> None:
        """Replay the package's steps in the harness's trainer (same start => same losses),
        and feed its recorded curve to our re-implementation (same curve => same LR?)."""
        lrs, losses = record["lrs"], record["losses"]
        diff = replay_difference(run.runner.trainer, run.runner.start, lrs, losses)
        checks.replayed += 1
        checks.steps += len(lrs)
        checks.worst_rtol = max(checks.worst_rtol, diff)
        if not diff <= RTOL:
            checks.problems.append(f"{where}: replay differs (rel. {diff:.2g})")
        _, peer = PEERS[PEER_OF[package]]
        with np.errstate(all="ignore"):
            mine = peer(np.asarray(lrs, dtype=float), np.asarray(losses, dtype=float))
        if (mine is None and lr is None) or (
            mine is not None and lr is not None and math.isclose(mine, lr, rel_tol=RTOL)
        ):
            checks.peer_same += 1
        else:
            checks.problems.append(f"{where}: peer:{PEER_OF[package]} on its curve gives {mine}")

    def note(self) -> str:
        """Markdown for the table header (a line, then one sub-bullet per package): what ran,
        how, how long, what was checked, and why a package has no rows."""
        if self.skipped is not None:
            return self.skipped
        parts = []
        for package in self.packages:
            outcome = self.outcomes.get(package)
            if outcome is None or outcome.data is None:
                why = "not run" if outcome is None else outcome.error
                parts.append(f"`pkg:{package}` has no rows: {why}")
                continue
            checks = self.checks[package]
            text = (
                f"`pkg:{package}` = {package.replace('_', '-')} {outcome.data['version']}, "
                f"{outcome.data['settings']}; {outcome.seconds:.0f} s (subprocess); replaying "
                f"its {checks.steps} steps in the harness's trainer gave the same losses "
                f"(max rel. diff {checks.worst_rtol:.1g}); `peer:{PEER_OF[package]}` fed its "
                f"recorded curve gives the same LR in {checks.peer_same}/{checks.replayed} runs"
            )
            if checks.problems:
                text += f"; noted: {'; '.join(checks.problems)}"
            parts.append(text)
        return (
            "the real packages, run from `.venv-bench` on each seed's own `task.make(seed)` "
            "(model init, torch optimizer, loss, batch order via a DataLoader over the "
            "harness's batch schedule), on the torch tasks only (the lesson is NumPy); the "
            f"harness waited {self.wait_s:.0f} s for them and spent {self.check_s:.0f} s "
            "checking and scoring them" + "".join(f"\n  - {part}" for part in parts)
        )
