"""Plain-text tables of a sweep for the terminal: one row per run, one row per budget."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lrscope.core.sweep import SweepResult
from lrscope.viz.text import format_table


def default_budgets(steps: int, count: int = 6) -> list[int]:
    """About ``count`` budgets spread evenly in log from 1 to ``steps`` (always ``steps``)."""
    picks = np.unique(np.round(np.geomspace(1, steps, count)).astype(int))
    return [int(b) for b in picks]


def runs_table(result: SweepResult) -> str:
    """Per LR: status (per seed when several), the loss over the last steps, divergence step,
    wall time and the error of a failed run."""
    score = result.score(result.steps, metric="train")
    rows = []
    for r, lr in enumerate(result.lrs.tolist()):
        statuses = sorted(set(result.status[:, r].tolist()))
        diverged = result.diverged_at[:, r]
        errors = [e for e in (row[r] for row in result.errors) if e]
        rows.append(
            [
                f"{lr:.4g}",
                "/".join(statuses),
                f"{score[r]:.6g}" if np.isfinite(score[r]) else "-",
                str(int(diverged[diverged >= 0].min())) if np.any(diverged >= 0) else "-",
                f"{np.nansum(result.wall_s[:, r]):.2f}",
                (errors[0][:70] if errors else ""),
            ]
        )
    return format_table(
        ["lr", "status", "final loss", "diverged at", "wall s", "error"], rows, align="rlrrrl"
    )


def budget_table(
    result: SweepResult, budgets: Sequence[int] | None = None, tol: float = 0.05
) -> str:
    """Per budget: the best LR of the grid, its loss, and the band of LRs within ``tol``."""
    available = result.budgets()
    if budgets is None:
        wanted = default_budgets(result.steps)
        # snap to a budget the metric can answer (evaluation steps for held-out loss)
        budgets = sorted({int(available[np.argmin(np.abs(available - b))]) for b in wanted})
    metric = "held-out" if result.has_val else "training"
    rows = []
    for budget in budgets:
        best = result.best_lr(budget)
        if best is None:
            rows.append([budget, "-", "-", "every LR failed"])
            continue
        score = result.score(budget)
        band = result.lrs[result.band(budget, tol=tol)]
        rows.append(
            [
                budget,
                f"{best:.4g}",
                f"{np.nanmin(score):.6g}",
                f"{band.min():.4g} .. {band.max():.4g}",
            ]
        )
    return format_table(
        ["steps", "best lr", f"{metric} loss", f"lrs within {tol:.0%}"], rows, align="rrrl"
    )
