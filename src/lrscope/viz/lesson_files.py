"""Write the lesson's four PNGs (headless; no pyplot state)."""

from __future__ import annotations

import io
from pathlib import Path

from lrscope.core import jsonio
from lrscope.lab.lesson import LessonResult
from lrscope.viz import plots


def _save(fig: object, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)  # type: ignore[attr-defined]
    return jsonio.write_atomic(path, buffer.getvalue())


def write_lesson_pngs(lesson: LessonResult, folder: Path) -> list[Path]:
    """data_fit.png, loss_vs_step.png, range_test.png, loss_bowl.png in ``folder``."""
    written = []
    fig = plots.new_figure()
    plots.plot_lesson_data(lesson, ax=fig.add_subplot())
    written.append(_save(fig, folder / "data_fit.png"))
    fig = plots.new_figure()
    plots.plot_lesson_losses(lesson, ax=fig.add_subplot())
    written.append(_save(fig, folder / "loss_vs_step.png"))
    fig = plots.new_figure()
    plots.plot_range_test(lesson.range_test, ax=fig.add_subplot())
    written.append(_save(fig, folder / "range_test.png"))
    fig = plots.new_figure(7.0, 6.0)
    plots.plot_loss_bowl(lesson, ax=fig.add_subplot(projection="3d"))
    written.append(_save(fig, folder / "loss_bowl.png"))
    return written
