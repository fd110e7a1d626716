"""The lesson's LR x steps map against the closed forms, and its place in the demo."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lrscope.cli import main
from lrscope.lab.lesson import LessonResult, run_lesson
from lrscope.lab.lesson_sweep import LESSON_SWEEP_LRS, describe_map, lesson_sweep
from lrscope.lab.linreg import Moments, Stability, exact_gd, make_data


@pytest.fixture(scope="module")
def lesson_map():
    data = make_data(seed=0)
    moments = Moments.of(data)
    return lesson_sweep(data), moments, Stability.of(moments)


def test_map_is_the_closed_form_iteration_and_its_best_lr_never_crosses_the_ceiling(lesson_map):
    result, moments, stability = lesson_map
    exact = np.array([exact_gd(moments, lr, result.steps)[1] for lr in LESSON_SWEEP_LRS])
    measured = np.isfinite(result.val_loss[0])
    np.testing.assert_allclose(result.val_loss[0][measured], exact[:, 1:][measured], rtol=1e-4)
    above = result.lrs > stability.lr_diverge
    assert above.sum() >= 3 and np.all(result.status[0, above] == "diverged")
    assert np.all(result.status[0, ~above] == "ok")
    _, best, _, _ = result.best_lr_curve()
    assert np.all(np.isfinite(best)) and np.all(best < stability.lr_diverge)
    # one step: the grid LR with the lowest exact loss after one step (near 1/lambda_max)
    assert result.best_lr(1) == LESSON_SWEEP_LRS[int(np.argmin(exact[:, 1]))]
    assert abs(np.log(result.best_lr(1) / stability.lr_monotone)) < np.log(1.26)
    # mid budgets: the largest grid LR below 2/(lambda_min + lambda_max)
    below_best = max(lr for lr in LESSON_SWEEP_LRS if lr < stability.lr_best)
    assert result.best_lr(30) == below_best
    text = describe_map(result, stability)
    assert "below the ceiling 2/lambda_max = 0.756" in text and "best for no budget" in text


def test_lesson_json_keeps_the_map_and_reads_files_without_it(tmp_path):
    lesson = run_lesson(lrs=[0.1, 1.0], steps=20, sweep_lrs=[0.1, 0.5, 1.0])
    again = LessonResult.load(lesson.save(tmp_path / "demo.json"))
    assert again.sweep == lesson.sweep and again.sweep.steps == 20
    assert "LR x steps map" in again.reading()
    data = json.loads((tmp_path / "demo.json").read_text())
    del data["sweep"]  # a demo.json written before the map existed
    old = LessonResult.from_dict(data)
    assert old.sweep is None and "LR x steps map" not in old.reading()
    assert run_lesson(lrs=[0.1], steps=5).sweep is None


def test_demo_prints_the_map_and_writes_its_png(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--lr", "0.1", "--steps", "40"]) == 0
    out = capsys.readouterr().out
    assert "LR x steps map: 24 LRs from 0.01 to 2, 40 steps each" in out
    assert "lrs within 5%" in out
    data = json.loads((tmp_path / "demo.json").read_text())
    assert data["sweep"]["kind"] == "sweep" and data["sweep"]["steps"] == 40
    assert (tmp_path / "lr_steps_map.png").read_bytes().startswith(b"\x89PNG")
