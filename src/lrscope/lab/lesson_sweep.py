"""The lesson's LR x steps map: which learning rate is best for each number of steps.

The lesson says LR and steps are independent knobs. The map makes it concrete: one GD run per
LR of a log grid, the loss after every step measured exactly (the model's own loss on the
data after k steps), and for each budget k the LR of the grid that got lowest. On this
quadratic the answer has closed forms to check against: one step wants about 1/lambda_max (the
exact line-search step along the steep direction), the best LR then rises toward
2/(lambda_min + lambda_max) as the budget grows, and it never crosses the ceiling
2/lambda_max (LRs above it diverge, so no budget wants them).
"""

from __future__ import annotations

import numpy as np

from lrscope.adapters.stepfn import FunctionTrainer
from lrscope.core.sweep import SweepResult, lr_grid
from lrscope.lab.linreg import (
    B0,
    LESSON_STEPS,
    W0,
    LinRegData,
    Stability,
    linreg_trainer,
    mse,
)

#: A log grid from crawling (0.01) to well past the ceiling (2.0): 24 LRs, ~10 per decade.
LESSON_SWEEP_LRS = tuple(float(v) for v in lr_grid(0.01, 2.0, 24))


def lesson_trainer(data: LinRegData, w0: float = W0, b0: float = B0) -> FunctionTrainer:
    """The lesson's trainer with ``evaluate()`` = the loss at the current (w, b), i.e. the
    loss after the steps taken (``run`` reports each step's loss before its update)."""
    trainer = linreg_trainer(data, w0, b0)
    state = trainer.state  # type: ignore[attr-defined]

    def evaluate() -> float:
        with np.errstate(over="ignore", invalid="ignore"):
            return float(mse(state["w"], state["b"], data.x, data.y))

    trainer.evaluate = evaluate  # type: ignore[attr-defined]
    return trainer


def lesson_sweep(
    data: LinRegData,
    lrs: tuple[float, ...] | list[float] | np.ndarray = LESSON_SWEEP_LRS,
    steps: int = LESSON_STEPS,
) -> SweepResult:
    """GD at each LR for ``steps`` steps, the loss after every step: the lesson's map."""
    from lrscope.sweeping import sweep

    return sweep(
        lesson_trainer(data),
        lrs,
        steps=steps,
        eval_every=1,
        trainer_id="lesson linear regression",
        metadata={
            "framework": "numpy",
            "problem": "lesson linear regression",
            "optimizer": "full-batch GD",
            "seed": data.seed,
            "dtype": "float32",
        },
    )


def describe_map(result: SweepResult, stability: Stability) -> str:
    """The map in plain words, with the closed-form landmarks it is read against."""
    budgets = [b for b in (1, 10, result.steps // 4, result.steps) if 1 <= b <= result.steps]
    budgets = sorted(set(budgets))
    said = ", ".join(_pick(result, b) for b in budgets)
    _, best, _, _ = result.best_lr_curve()
    top = float(np.nanmax(best)) if np.any(np.isfinite(best)) else float("nan")
    above = [lr for lr in result.lrs if lr > stability.lr_diverge]
    text = (
        f"The LR x steps map ({result.lrs.size} LRs, one run each) gives the best LR for every "
        f"budget at once. Best LR by budget (with the LRs within 5% of it): {said}. "
        f"One step wants about 1/lambda_max = {stability.lr_monotone:.3g} (the line-search step "
        f"along the steep direction); larger budgets move toward 2/(lambda_min+lambda_max) = "
        f"{stability.lr_best:.3g}. The largest best LR of any budget is {top:.3g}, "
        f"{'below' if top < stability.lr_diverge else 'NOT below'} the ceiling "
        f"2/lambda_max = {stability.lr_diverge:.3g}"
    )
    if above:
        text += f": the {len(above)} LRs above it diverge and are best for no budget."
    else:
        text += "."
    return text


def _pick(result: SweepResult, budget: int) -> str:
    best = result.best_lr(budget)
    name = f"{budget} step{'s' if budget > 1 else ''}"
    if best is None:
        return f"{name}: none"
    band = result.lrs[result.band(budget)]
    if band.size == 1:
        return f"{name}: {best:.3g}"
    return f"{name}: {best:.3g} ({band.min():.3g}-{band.max():.3g})"
