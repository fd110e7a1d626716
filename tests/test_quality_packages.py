"""The quality benchmark's glue for the peers' own packages (benchmarks/quality/packages.py).

The packages themselves live only in .venv-bench; these tests drive the glue with a stand-in
"python" that prints what pkg_runner.py would, on the NumPy lesson's real trainer, so they run
anywhere. The smoke test (test_quality_smoke.py) runs the real packages when .venv-bench exists.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import needs

import lrscope

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from quality import packages, peers  # noqa: E402
from quality.harness import Runner  # noqa: E402
from quality.tasks import TASKS  # noqa: E402


class Lesson:
    """What add_rows needs of a task and its seed runs, on the lesson's trainer."""

    name = "linreg"

    def __init__(self, seeds):
        self.runs = []
        for seed in seeds:
            run = type("SeedRun", (), {})()
            run.seed, run.runner, run.suggestions = seed, Runner(TASKS["linreg"], seed), {}
            self.runs.append(run)


def recorded_curve(runner, lrs):
    """The per-step losses the lesson's trainer gives at ``lrs`` from its start."""
    runner.trainer.restore(runner.start)
    losses = runner.trainer.run(lrs)
    runner.trainer.restore(runner.start)
    return losses


def fake_python(tmp_path, name, stdout="", stderr="", code=0):
    """An executable standing in for .venv-bench/bin/python: ignores its arguments."""
    out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
    out.write_text(stdout)
    err.write_text(stderr)
    script = tmp_path / name
    script.write_text(f"#!/bin/sh\ncat '{out}'\ncat '{err}' >&2\nexit {code}\n")
    script.chmod(0o755)
    return script


def runner_json(package, lesson, lrs, shift=0.0, suggestion=None):
    """pkg_runner.py's output for ``lesson``'s seeds: the true curve (+ ``shift``) and the
    re-implementation's LR on it (or ``suggestion``)."""
    _, peer = peers.PEERS[packages.PEER_OF[package]]
    suggestions, runs = {}, {}
    for run in lesson.runs:
        losses = recorded_curve(run.runner, lrs) + shift
        lr = peer(lrs, losses) if suggestion is None else suggestion
        suggestions[str(run.seed)] = lr
        runs[str(run.seed)] = {"lrs": lrs.tolist(), "losses": losses.tolist(), "error": None}
    return json.dumps(
        {
            "package": package,
            "version": "0.0",
            "settings": "its defaults",
            "seconds": 0.1,
            "suggestions": {"linreg": suggestions},
            "runs": {"linreg": runs},
        }
    )


def test_replay_difference_is_zero_for_the_trainers_own_curve_and_inf_when_it_diverges():
    runner = Runner(TASKS["linreg"], 0)
    lrs = lrscope.lr_ramp(1e-3, 1e3, 60)  # float32 GD overflows after ~48 steps
    losses = recorded_curve(runner, lrs)
    first_bad = int(np.argmax(~np.isfinite(losses)))
    assert first_bad > 0 and not np.isfinite(losses[first_bad])
    weights = runner.trainer.snapshot()
    assert packages.replay_difference(runner.trainer, runner.start, lrs, losses) == 0.0
    # A package that goes on after the first non-finite loss still matches.
    beyond = losses.copy()
    beyond[first_bad + 1 :] = 1.0
    assert packages.replay_difference(runner.trainer, runner.start, lrs, beyond) == 0.0
    shifted = losses.copy()
    shifted[3] *= 1.001
    assert packages.replay_difference(runner.trainer, runner.start, lrs, shifted) == (
        pytest.approx(0.001 / 1.001, rel=1e-6)
    )
    finite = losses.copy()
    finite[first_bad] = 1.0  # the package's run did not diverge, the replay did
    assert packages.replay_difference(runner.trainer, runner.start, lrs, finite) == math.inf
    # The trainer is left at its start.
    assert np.array_equal(runner.trainer.snapshot()["w"], weights["w"])


def test_without_bench_venv_there_are_no_rows_and_the_note_says_why(tmp_path):
    lesson = Lesson([0])
    runs = packages.PackageRuns(["linreg"], [0], python=tmp_path / "missing").start()
    assert runs.add_rows(lesson, lesson.runs) == []
    assert lesson.runs[0].suggestions == {}
    assert "not found (`make bench-peers` builds it)" in runs.note()
    off = packages.PackageRuns(["linreg"], [0], enabled=False)
    assert off.note() == "not run (--no-packages)"


def test_suggestions_become_scored_rows_after_checking_the_replay_and_the_peer(tmp_path):
    lesson = Lesson([0, 1])
    lrs = lrscope.lr_ramp(1e-4, 1.0, 30)
    python = fake_python(tmp_path, "python", runner_json("torch_lr_finder", lesson, lrs))
    runs = packages.PackageRuns(
        ["linreg"], [0, 1], python=python, packages=("torch_lr_finder",)
    ).start()
    assert runs.add_rows(lesson, lesson.runs) == ["pkg:torch_lr_finder"]
    for run in lesson.runs:
        lr = run.suggestions["pkg:torch_lr_finder"]
        expected = peers.torch_lr_finder(lrs, recorded_curve(run.runner, lrs))
        assert lr == expected
        assert lr in run.runner.cache  # scored like every rule
    checks = runs.checks["torch_lr_finder"]
    assert (checks.replayed, checks.steps, checks.peer_same) == (2, 60, 2)
    assert checks.worst_rtol == 0.0 and checks.problems == []
    note = runs.note()
    assert "`pkg:torch_lr_finder` = torch-lr-finder 0.0" in note
    assert "gives the same LR in 2/2 runs" in note and "noted:" not in note
    # A task the packages did not run gets no rows.
    other = Lesson([0])
    other.name = "digits_cnn"
    assert runs.add_rows(other, other.runs) == []


def test_a_package_that_trained_another_start_or_disagrees_is_reported(tmp_path):
    lesson = Lesson([0])
    lrs = lrscope.lr_ramp(1e-4, 1.0, 30)
    text = runner_json("fastai", lesson, lrs, shift=0.5, suggestion=0.123)
    runs = packages.PackageRuns(
        ["linreg"], [0], python=fake_python(tmp_path, "python", text), packages=("fastai",)
    ).start()
    assert runs.add_rows(lesson, lesson.runs) == ["pkg:fastai"]
    assert lesson.runs[0].suggestions["pkg:fastai"] == 0.123
    note = runs.note()
    assert "linreg seed 0: replay differs" in note
    assert "linreg seed 0: peer:fastai_valley on its curve gives" in note


def test_a_package_that_fails_has_no_rows_and_its_error_is_in_the_note(tmp_path):
    lesson = Lesson([0])
    error = "Traceback ...\nModuleNotFoundError: No module named 'fastai'\n"
    python = fake_python(tmp_path, "python", stderr=error, code=1)
    runs = packages.PackageRuns(["linreg"], [0], python=python, packages=("fastai",)).start()
    assert runs.add_rows(lesson, lesson.runs) == []
    assert "`pkg:fastai` has no rows: failed (ModuleNotFoundError: No module named 'fastai')" in (
        runs.note()
    )


@pytest.mark.torch
@needs("torch")
@needs("sklearn")
def test_pkg_runner_loader_yields_the_harness_batches_in_order():
    from quality import pkg_runner

    task = TASKS["digits_mlp"].make(3)
    batches = iter(pkg_runner.loader(task))
    for step in range(3):
        x, y = next(batches)
        rows = task.batches[step]
        assert x.equal(task.x_train[rows]) and y.equal(task.y_train[rows])
