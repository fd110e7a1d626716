"""Plots of a sweep: the LR x steps heat map and the best LR per budget (matplotlib, ax=)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lrscope.viz.plots import _axes

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from lrscope.core.sweep import SweepResult


def _edges(values: np.ndarray, log: bool) -> np.ndarray:
    """Cell edges around sorted centres (geometric midpoints on a log axis)."""
    v = np.log10(values) if log else values.astype(np.float64)
    if v.size == 1:
        mids = np.array([v[0] - 0.5, v[0] + 0.5])
    else:
        inner = (v[:-1] + v[1:]) / 2
        mids = np.concatenate([[2 * v[0] - inner[0]], inner, [2 * v[-1] - inner[-1]]])
    return 10.0**mids if log else mids


def plot_sweep_heatmap(
    result: SweepResult, ax: Axes | None = None, metric: str = "train", log_loss: bool = True
) -> Axes:
    """Loss (median over seeds) over steps (x) and log LR (y); cells after a run diverged,
    raised or never ran are grey; the best LR per budget is drawn on top."""
    ax = _axes(ax)
    order = np.argsort(result.lrs)
    lrs = result.lrs[order]
    if metric == "val":
        steps = result.eval_step.astype(np.float64)
        values = result.val_loss
    else:
        steps = np.arange(1, result.steps + 1, dtype=np.float64)
        values = result.loss
    with np.errstate(invalid="ignore", over="ignore"):
        grid = np.median(values, axis=0)[order]  # (R, T); NaN where any seed has no value
    failed = ~np.isfinite(grid)
    shown = np.where(failed, np.nan, grid)
    if log_loss:
        positive = shown[np.isfinite(shown) & (shown > 0)]
        floor = float(positive.min()) if positive.size else 1.0
        with np.errstate(invalid="ignore", divide="ignore"):
            shown = np.log10(np.where(failed, np.nan, np.maximum(shown, floor)))
    x_edges, y_edges = _edges(steps, log=False), _edges(lrs, log=True)
    if failed.any():
        from matplotlib.colors import ListedColormap

        ax.pcolormesh(
            x_edges,
            y_edges,
            np.ma.masked_where(~failed, np.ones_like(grid)),
            cmap=ListedColormap(["0.8"]),
        )
        ax.fill_between([], [], color="0.8", label="diverged / failed / not run")
    mesh = ax.pcolormesh(x_edges, y_edges, np.ma.masked_invalid(shown), cmap="viridis_r")
    label = "log10 " if log_loss else ""
    ax.figure.colorbar(
        mesh, ax=ax, label=f"{label}{'held-out' if metric == 'val' else 'training'} loss"
    )
    budgets, best, _, _ = result.best_lr_curve(metric=metric)
    ok = np.isfinite(best)
    ax.plot(budgets[ok], best[ok], color="tab:red", lw=1.5, label="best LR per budget")
    ax.set_yscale("log")
    ax.set_xlabel("steps (budget)")
    ax.set_ylabel("learning rate")
    ax.set_title("LR x steps map")
    ax.legend(fontsize=8, loc="lower right")
    return ax


def plot_sweep_best_lr(
    result: SweepResult,
    ax: Axes | None = None,
    metric: str = "auto",
    tol: float = 0.05,
    lr_diverge: float | None = None,
) -> Axes:
    """Best LR vs budget (log-log), the band of LRs within ``tol`` of the best, and the
    stability ceiling when known."""
    ax = _axes(ax)
    budgets, best, low, high = result.best_lr_curve(metric=metric, tol=tol)
    ok = np.isfinite(best)
    ax.fill_between(
        budgets[ok],
        low[ok],
        high[ok],
        color="tab:blue",
        alpha=0.2,
        step="mid",
        label=f"within {tol:.0%} of the best",
    )
    ax.step(budgets[ok], best[ok], where="mid", color="tab:blue", lw=2, label="best LR")
    ax.scatter(
        np.full(result.lrs.size, budgets[0] if budgets.size else 1),
        result.lrs,
        marker="_",
        color="0.5",
        label="grid",
    )
    if lr_diverge is not None:
        ax.axhline(lr_diverge, color="k", ls=":", lw=1.5, label=f"diverges above {lr_diverge:.3g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("steps (budget)")
    ax.set_ylabel("best learning rate")
    ax.set_title("Best learning rate for a given number of steps")
    ax.legend(fontsize=8)
    return ax


def save_png(fig: object, path: Path, dpi: int = 110) -> Path:
    """Render a Figure to PNG and write it atomically."""
    import io

    from lrscope.core import jsonio

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)  # type: ignore[attr-defined]
    return jsonio.write_atomic(path, buffer.getvalue())


def write_sweep_pngs(
    result: SweepResult, folder: Path, lr_diverge: float | None = None
) -> list[Path]:
    """lr_steps_map.png (heat map) and best_lr.png (best LR per budget) in ``folder``."""
    from lrscope.viz.plots import new_figure

    fig = new_figure(7.0, 4.8)
    plot_sweep_heatmap(result, ax=fig.add_subplot())
    written = [save_png(fig, folder / "lr_steps_map.png")]
    fig = new_figure()
    plot_sweep_best_lr(result, ax=fig.add_subplot(), lr_diverge=lr_diverge)
    written.append(save_png(fig, folder / "best_lr.png"))
    return written
