"""Sweep plots draw what the result holds (best LR line, failed cells, ceiling)."""

from __future__ import annotations

import numpy as np
import pytest
import sweep_targets

import lrscope
from lrscope.viz.plots import new_figure


@pytest.fixture(scope="module")
def result():
    return lrscope.sweep(sweep_targets.lesson(), [0.05, 0.2, 0.5, 1.0], steps=30, eval_every=5)


def test_heatmap_marks_failed_cells_and_draws_the_best_lr_per_budget(result):
    fig = new_figure()
    ax = result.plot_heatmap(ax=fig.add_subplot())
    assert ax.get_yscale() == "log"
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == "best LR per budget"]
    budgets, best, _, _ = result.best_lr_curve(metric="train")
    np.testing.assert_array_equal(line.get_xdata(), budgets)
    np.testing.assert_array_equal(line.get_ydata(), best)
    grey, colour = ax.collections[0], ax.collections[-1]
    failed = ~np.isfinite(result.loss[0])  # lr=1.0 after it stopped
    assert failed[3].any() and not failed[:3].any()
    assert np.array_equal(~np.ma.getmaskarray(grey.get_array()).reshape(failed.shape), failed)
    assert np.array_equal(np.ma.getmaskarray(colour.get_array()).reshape(failed.shape), failed)
    fig.canvas.draw()


def test_best_lr_plot_shows_band_grid_and_ceiling(result):
    fig = new_figure()
    ax = result.plot_best_lr(ax=fig.add_subplot(), lr_diverge=0.756)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["within 5% of the best", "best LR", "grid", "diverges above 0.756"]
    budgets, best, _, _ = result.best_lr_curve()
    (step_line, ceiling) = ax.get_lines()
    np.testing.assert_array_equal(step_line.get_ydata(), best)
    assert list(budgets) == [5, 10, 15, 20, 25, 30]  # held-out loss: the evaluation steps
    assert ceiling.get_ydata()[0] == 0.756
    fig.canvas.draw()
