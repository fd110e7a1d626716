"""Matplotlib plots of results. Each takes ``ax=None`` (current axes) and returns the axes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from lrscope.errors import require

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from lrscope.core.result import RangeTestResult
    from lrscope.lab.lesson import LessonResult

#: One colour per rule, shared by the matplotlib plots and the HTML report.
RULE_COLOURS = {
    "blend": "#17becf",
    "minimum": "#d62728",
    "min_div10": "#2ca02c",
    "steepest": "#ff7f0e",
    "valley": "#9467bd",
    "edge": "#8c564b",
}


def _axes(ax: Axes | None, projection: str | None = None) -> Axes:
    if ax is not None:
        return ax
    require("matplotlib", "Plotting", "viz")
    import matplotlib.pyplot as plt

    if projection:
        return plt.figure().add_subplot(projection=projection)
    return plt.gca()


def new_figure(width: float = 6.4, height: float = 4.4) -> Figure:
    """A pyplot-free Figure (safe in threads and headless CLIs)."""
    require("matplotlib", "Plotting", "viz")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def plot_range_test(
    result: RangeTestResult,
    ax: Axes | None = None,
    rules: list[str] | None = None,
    show_raw: bool = True,
) -> Axes:
    """LR (log x) vs raw and smoothed loss, each rule's suggestion as a dashed line, and the
    stability ceiling ``lr_diverge`` when the result knows it."""
    ax = _axes(ax)
    finite = np.isfinite(result.loss)
    if show_raw:
        ax.plot(result.lr[finite], result.loss[finite], color="0.7", lw=1, label="loss (raw)")
    ax.plot(result.lr, result.smooth_loss, color="tab:blue", lw=2, label="loss (smoothed)")
    for name, suggestion in result.suggestions(rules).items():
        if suggestion.lr is not None:
            ax.axvline(
                suggestion.lr,
                ls="--",
                lw=1.2,
                color=RULE_COLOURS.get(name, "k"),
                label=f"{name}: {suggestion.lr:.3g}",
            )
    if result.lr_diverge is not None:
        ax.axvline(
            result.lr_diverge,
            color="k",
            lw=1.5,
            ls=":",
            label=f"diverges above {result.lr_diverge:.3g}",
        )
    ax.set_xscale("log")
    shown = result.smooth_loss[np.isfinite(result.smooth_loss)]
    if shown.size:
        # Frame the fall from the start to the minimum; the blow-up after it runs off the top.
        low, high = float(shown.min()), float(shown[0])
        pad = 0.1 * max(high - low, abs(high) * 1e-3, 1e-12)
        ax.set_ylim(low - pad, high + 3 * pad)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title(f"LR range test ({result.stop_reason})")
    ax.legend(fontsize=8)
    return ax


def plot_lesson_data(lesson: LessonResult, ax: Axes | None = None) -> Axes:
    """The data and the line each run ended on (the closed-form fit in black)."""
    ax = _axes(ax)
    ax.scatter(lesson.data.x, lesson.data.y, s=8, color="0.5", label="data")
    grid = np.linspace(0.0, 1.0, 2)
    w_star, b_star = lesson.closed_form
    ax.plot(grid, w_star * grid + b_star, color="k", lw=2, label="least squares")
    for run in lesson.runs:
        w, b, _ = run.final
        if np.isfinite(w) and np.isfinite(b):
            ax.plot(grid, w * grid + b, lw=1, label=f"lr={run.lr:g}")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title("Data and the fitted lines after GD")
    ax.legend(fontsize=8)
    return ax


def plot_lesson_losses(lesson: LessonResult, ax: Axes | None = None) -> Axes:
    """Loss vs step per LR, log y; runs that overflow end with an x at the last finite step."""
    ax = _axes(ax)
    for run in lesson.runs:
        steps = np.arange(run.loss.size)
        ok = np.isfinite(run.loss)
        (line,) = ax.plot(
            steps[ok], run.loss[ok], lw=1.5, label=f"lr={run.lr:g}: {run.describe_regime()}"
        )
        if run.diverged_at_step is not None and ok.any():
            last = int(np.flatnonzero(ok)[-1])
            ax.plot([last], [run.loss[last]], "x", color=line.get_color(), ms=8)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("MSE")
    ax.set_title("Loss vs step: same steps, different learning rates")
    ax.legend(fontsize=7)
    return ax


def loss_surface(
    lesson: LessonResult, points: int = 60, margin: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(W, B, L) grids of the exact loss around the start and the solution."""
    w_star, b_star = lesson.closed_form
    w0, b0 = (float(v) for v in lesson.runs[0].path[0]) if lesson.runs else (0.0, -1.0)
    w_lo, w_hi = min(w0, w_star) - margin, max(w0, w_star) + margin
    b_lo, b_hi = min(b0, b_star) - margin, max(b0, b_star) + margin
    w_grid, b_grid = np.meshgrid(np.linspace(w_lo, w_hi, points), np.linspace(b_lo, b_hi, points))
    return w_grid, b_grid, lesson.moments.loss(w_grid, b_grid)


def plot_loss_bowl(lesson: LessonResult, ax: Axes | None = None, points: int = 60) -> Any:
    """The loss over (w, b) as a 3D bowl with each run's GD path; diverging paths are clipped
    where they leave the drawn region."""
    ax = _axes(ax, projection="3d")
    w_grid, b_grid, loss_grid = loss_surface(lesson, points)
    ax.plot_surface(w_grid, b_grid, loss_grid, cmap="viridis", alpha=0.6, linewidth=0)
    top = float(loss_grid.max())
    inside = (w_grid.min(), w_grid.max(), b_grid.min(), b_grid.max())
    for run in lesson.runs:
        w, b, z = run.path[:, 0], run.path[:, 1], run.loss
        keep = (
            np.isfinite(z)
            & (w >= inside[0])
            & (w <= inside[1])
            & (b >= inside[2])
            & (b <= inside[3])
            & (z <= top)
        )
        cut = int(np.argmin(keep)) if not keep.all() else keep.size
        ax.plot(w[:cut], b[:cut], z[:cut], marker=".", ms=3, lw=1, label=f"lr={run.lr:g}")
    ax.set_xlabel("w")
    ax.set_ylabel("b")
    ax.set_zlabel("MSE")
    ax.set_title("The loss bowl and gradient descent on it")
    ax.legend(fontsize=7)
    return ax
