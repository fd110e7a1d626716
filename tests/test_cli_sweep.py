"""``lrscope find`` and ``lrscope sweep`` on a TARGET file, and their one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lrscope.cli import main
from lrscope.core.sweep import SweepResult

ROOT = Path(__file__).resolve().parents[1]
TARGET = f"{ROOT / 'examples' / 'lesson_target.py'}:trainer"


def test_find_prints_the_suggestions_and_writes_json_and_png(tmp_path, capsys):
    code = main(["find", TARGET, "--start-lr", "1e-4", "--end-lr", "10", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "diverged at step" in out and "min_div10" in out and "suggested lr" in out
    data = json.loads((tmp_path / "range_test.json").read_text())
    assert data["kind"] == "range_test" and data["start_lr"] == 1e-4
    assert data["metadata"]["target"] == TARGET
    assert (tmp_path / "range_test.png").read_bytes().startswith(b"\x89PNG")


def test_find_budget_verifies_and_prints_the_closed_form_best(tmp_path, capsys):
    from lrscope.core.verify import VerifyResult
    from lrscope.lab.linreg import Moments, exact_gd, make_data

    code = main(["find", TARGET, "--budget", "20", "--no-plots", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    check = VerifyResult.load(tmp_path / "verify.json")
    assert check.steps == 20 and not check.at_boundary
    assert f"best LR for 20 steps: {check.best_lr:.4g}" in out
    assert "held-out loss after 20 steps" in out
    # The target's held-out loss is the exact loss: the pick beats every other LR tried in
    # closed form too, and its neighbours are within the default resolution (1.2x).
    moments = Moments.of(make_data(seed=0))
    exact = [exact_gd(moments, lr, 20)[1][-1] for lr in check.lrs]
    assert check.best_lr == check.lrs[int(np.nanargmin(exact))]
    i = check.best_index
    assert check.lrs[i + 1] / check.lrs[i] <= 1.2 + 1e-9
    assert check.lrs[i] / check.lrs[i - 1] <= 1.2 + 1e-9
    # the command it prints for the report works on that folder, verify section included
    assert f"interactive report: lrscope report {tmp_path} -o report.html" in out
    page = tmp_path / "report.html"
    assert main(["report", str(tmp_path), "-o", str(page)]) == 0
    text = page.read_text()
    assert "class='range-test'" in text and "class='verify'" in text
    assert f"Best learning rate for 20 steps: <b>{check.best_lr:.3g}</b>" in text


def test_find_tests_a_curve_that_broke_down_again_unless_told_not_to(tmp_path, capsys):
    target = f"{ROOT / 'tests' / 'sweep_targets.py'}:breaking_down"
    assert main(["find", target, "--no-plots", "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    data = json.loads((tmp_path / "a" / "range_test.json").read_text())
    assert data["steps"] == 400 and data["metadata"]["first_test_steps"] == 100
    assert "over 400 steps" in out and "note: The first test (100 steps) broke down" in out
    assert main(["find", target, "--no-plots", "--no-retest", "--out", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    data = json.loads((tmp_path / "b" / "range_test.json").read_text())
    assert data["steps"] == 100 and "first_test_steps" not in data["metadata"]
    assert "note:" not in out and "retest=True does that by itself" in out


def test_sweep_prints_the_map_writes_files_and_resumes(tmp_path, capsys):
    args = ["sweep", TARGET, "--lrs", "0.01:1:5", "--steps", "60", "--eval-every", "1"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "5 LRs x 60 steps, engine local, 5/5 runs (0 reused" in out
    assert "best lr" in out and "held-out loss" in out and "diverged" in out
    result = SweepResult.load(tmp_path / "sweep.json")
    assert np.allclose(result.lrs, np.geomspace(0.01, 1, 5))
    assert list(result.status[0]) == ["ok", "ok", "ok", "ok", "diverged"]
    assert f"best LR for all 60 steps: {result.best_lr():.4g}" in out
    lines = (tmp_path / "sweep_runs.jsonl").read_text().splitlines()
    assert len(lines) == 6
    for name in ("lr_steps_map.png", "best_lr.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")
    # a second run needs --resume (never silently mixes or overwrites), then reuses every run
    assert main([*args, "--out", str(tmp_path), "--no-plots"]) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path), "--no-plots", "--resume"]) == 0
    assert "(5 reused from the results file)" in capsys.readouterr().out
    assert (tmp_path / "sweep_runs.jsonl").read_text().splitlines() == lines


def test_sweep_with_seeds_runs_each_seed(tmp_path, capsys):
    args = ["sweep", TARGET, "--lrs", "0.1,0.5", "--steps", "10", "--seeds", "2"]
    assert main([*args, "--out", str(tmp_path), "--no-plots"]) == 0
    assert "x 2 seeds" in capsys.readouterr().out
    assert SweepResult.load(tmp_path / "sweep.json").seeds == (0, 1)


@pytest.fixture
def bad_targets(tmp_path):
    (tmp_path / "targets.py").write_text("def not_a_trainer():\n    return 42\nvalue = 3\n")
    (tmp_path / "broken.py").write_text("import no_such_framework_xyz\n")
    (tmp_path / "raises.py").write_text("def trainer():\n    raise RuntimeError('no GPU')\n")
    return tmp_path


@pytest.mark.parametrize("command", ["find", "sweep"])
@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("{dir}/missing.py:trainer", "file {dir}/missing.py not found"),
        ("{dir}/targets.py:absent", "has no function 'absent'"),
        ("{dir}/targets.py:value", "'value' is not callable"),
        ("{dir}/targets.py:not_a_trainer", "must return a Trainer (run, snapshot, restore)"),
        ("no_such_module_xyz:trainer", "module no_such_module_xyz not found"),
        ("{dir}/broken.py:trainer", "failed: ModuleNotFoundError: No module named 'no_such"),
        ("{dir}/raises.py:trainer", "raised while building the trainer: RuntimeError: no GPU"),
        ("{dir}/targets.py", "must look like 'path/to/file.py:function'"),
    ],
)
def test_bad_targets_give_one_line_and_exit_2(bad_targets, capsys, command, target, message):
    target = target.format(dir=bad_targets)
    extra = ["--lrs", "0.1,0.2", "--steps", "5"] if command == "sweep" else []
    code = main([command, target, *extra, "--out", str(bad_targets / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"lrscope {command}: error: ")
    assert message.format(dir=bad_targets) in err
    assert not (bad_targets / "out" / "sweep_runs.jsonl").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lrs", "1:0.1:5"], "argument --lrs: must be START:STOP:N"),
        (["--lrs", "0.1,0.1"], "argument --lrs: must be START:STOP:N"),
        (["--lrs", "a,b"], "argument --lrs: must be START:STOP:N"),
        (["--lrs", "0.1", "--engine", "dask"], "argument --engine: invalid choice"),
    ],
)
def test_bad_sweep_options_give_one_line_and_exit_2(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as stop:
        main(["sweep", TARGET, "--steps", "5", *args, "--out", str(tmp_path)])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
