"""Run the oracle grid, the range tests, every rule, the regret runs and verify mode."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

import lrscope
from lrscope.core.rules import DEFAULT_RULE, RULES
from quality.peers import PEERS, RAMPS
from quality.tasks import Task

RANGE_TEST = {"start_lr": 1e-7, "end_lr": 10.0, "steps": 100}
#: A longer range test over the same LR range (4x the steps, 4x the cost): the default rule
#: on it, to measure how much of the seed spread is the 100-step test's noise.
LONG_STEPS = 400
LONG_RULE = f"{DEFAULT_RULE} ({LONG_STEPS}-step test)"
#: lrscope's default as users get it: ``range_test`` with its defaults (``retest=True``: a
#: curve that broke down is tested again with 4x the steps), read by the default rule. Every
#: other lrscope row reads one 100-step test (``retest=False``), so the rules compare on the
#: same curve.
DEFAULT_ROW = "default"


@dataclass
class SeedRun:
    """Everything measured for one task and one seed."""

    seed: int
    result: lrscope.RangeTestResult  # lrscope's 100-step range test (retest=False)
    raw: dict[str, tuple[np.ndarray, np.ndarray]]  # un-stopped curves per peer ramp
    grid_scores: dict[int, np.ndarray]  # budget -> score per grid LR
    suggestions: dict[str, float | None] = field(default_factory=dict)
    verified: dict[int, float | None] = field(default_factory=dict)  # budget -> verify's pick


class Runner:
    """Trains one seed's trainer from its initial snapshot; memoises (lr -> scores)."""

    def __init__(self, task: Task, seed: int) -> None:
        self.task = task
        self.trainer = task.make(seed)
        self.start = self.trainer.snapshot()  # type: ignore[attr-defined]
        self.cache: dict[float, dict[int, float]] = {}
        # lr -> budget -> validation loss (``evaluate()``): what a real grid search ranks by.
        self.val_cache: dict[float, dict[int, float]] = {}
        self.steps_run = 0

    def scores(self, lr: float) -> dict[int, float]:
        """Held-out (or exact) loss after each budget at a constant ``lr``, same start."""
        if lr not in self.cache:
            trainer = self.trainer
            trainer.restore(self.start)  # type: ignore[attr-defined]
            out: dict[int, float] = {}
            val: dict[int, float] = {}
            done = 0
            for budget in sorted(self.task.budgets):
                losses = trainer.run(np.full(budget - done, lr))  # type: ignore[attr-defined]
                self.steps_run += budget - done
                done = budget
                diverged = not np.all(np.isfinite(losses))
                out[budget] = math.inf if diverged else trainer.score()  # type: ignore[attr-defined]
                val[budget] = math.inf if diverged else trainer.evaluate()  # type: ignore[attr-defined]
                if diverged:
                    out.update({b: math.inf for b in self.task.budgets if b > budget})
                    val.update({b: math.inf for b in self.task.budgets if b > budget})
                    break
            trainer.restore(self.start)  # type: ignore[attr-defined]
            self.cache[lr] = out
            self.val_cache[lr] = val
        return self.cache[lr]


Suggester = Callable[[SeedRun], "float | None"]


def default_test(
    trainer: object,
    options: dict,
    single: lrscope.RangeTestResult,
    long: lrscope.RangeTestResult,
) -> lrscope.RangeTestResult:
    """``lrscope.range_test`` as users call it (``retest=True``), checked against the tests
    the rules read: it must be the 100-step test bit for bit, or, when that one broke down,
    the 400-step test (every task here is deterministic and restored exactly)."""
    from lrscope.core.rangetest import RETEST_FACTOR

    result = lrscope.range_test(trainer, **options)  # type: ignore[arg-type]
    retested = "first_test_steps" in result.metadata
    same_as = long if retested else single
    if retested and LONG_STEPS != RETEST_FACTOR * single.steps:
        raise RuntimeError(f"the retest has {result.steps} steps, the long test {LONG_STEPS}")
    if not np.array_equal(result.loss, same_as.loss, equal_nan=True):
        raise RuntimeError(
            f"range_test's default call differs from the {same_as.steps}-step test it should "
            "repeat: the task is not deterministic, or its trainer does not restore exactly"
        )
    return result


def lrscope_rule(name: str) -> Suggester:
    return lambda run: run.result.suggest(name).lr


def peer_rule(name: str) -> Suggester:
    ramp, fn = PEERS[name]
    return lambda run: fn(*run.raw[ramp])


def all_rules() -> dict[str, Suggester]:
    rules: dict[str, Suggester] = {name: lrscope_rule(name) for name in RULES}
    rules.update({f"peer:{name}": peer_rule(name) for name in PEERS})
    rules[LONG_RULE] = lambda run: run.long_result.suggest().lr  # type: ignore[attr-defined]
    rules[DEFAULT_ROW] = lambda run: run.default_result.suggest().lr  # type: ignore[attr-defined]
    return rules


def measure_seed(task: Task, seed: int, rules: dict[str, Suggester], verify: bool) -> SeedRun:
    runner = Runner(task, seed)
    trainer = runner.trainer
    options = {**RANGE_TEST, **task.range_test}
    result = lrscope.range_test(trainer, **options, retest=False)  # type: ignore[arg-type]
    raw = {}
    for ramp, (start, end, steps) in RAMPS.items():
        full = lrscope.range_test(
            trainer,  # type: ignore[arg-type]
            start_lr=start,
            end_lr=end,
            steps=steps,
            stop_on_divergence=False,
            retest=False,
        )
        loss = np.full(steps, np.nan)
        loss[: full.loss.size] = full.loss
        raw[ramp] = (lrscope.lr_ramp(start, end, steps), loss)
    grid_scores = {b: np.empty(task.grid.size) for b in task.budgets}
    for i, lr in enumerate(task.grid):
        scores = runner.scores(float(lr))
        for b in task.budgets:
            grid_scores[b][i] = scores[b]
    run = SeedRun(seed, result, raw, grid_scores)
    run.long_result = lrscope.range_test(  # type: ignore[attr-defined]
        trainer,  # type: ignore[arg-type]
        **{**options, "steps": LONG_STEPS},
        retest=False,
    )
    run.default_result = default_test(trainer, options, result, run.long_result)  # type: ignore[attr-defined]
    for name, rule in rules.items():
        lr = rule(run)
        run.suggestions[name] = None if lr is None or not math.isfinite(lr) else float(lr)
        if run.suggestions[name] is not None:
            runner.scores(run.suggestions[name])  # type: ignore[arg-type]
    if verify:
        from lrscope.core.verify import verify as run_verify

        for budget in task.budgets:
            outcome = run_verify(trainer, around=run.default_result, steps=budget)  # type: ignore[arg-type,attr-defined]
            run.verified[budget] = outcome.best_lr
            if outcome.best_lr is not None:
                runner.scores(outcome.best_lr)
    run.runner = runner  # type: ignore[attr-defined]
    return run


@dataclass
class Row:
    """One (task, budget, rule) line of the table."""

    task: str
    budget: int
    rule: str
    best_lr: float
    lrs: list[float | None]
    regrets: list[float]
    #: Mean over seeds of the score at this rule's LRs / the best grid LR's mean score over
    #: seeds: the regret against the best *fixed* LR for the task, which does not pick each
    #: seed's luckiest grid point (inf when a seed diverged or got no LR).
    mean_regret: float = math.nan
    #: The best fixed LR: the grid LR with the lowest score averaged over the seeds (what
    #: ``mean_regret`` divides by; NaN when every grid LR diverged on some seed). On a flat
    #: bottom it can lie far from ``best_lr``, the grid LR with the lowest *median* score.
    fixed_lr: float = math.nan

    @property
    def answered(self) -> list[float]:
        return [lr for lr in self.lrs if lr is not None]

    @property
    def median_lr(self) -> float | None:
        got = self.answered
        return float(np.exp(np.median(np.log(got)))) if got else None

    @property
    def log_ratio(self) -> float | None:
        lr = self.median_lr
        return None if lr is None else math.log10(lr / self.best_lr)

    @property
    def spread(self) -> float | None:
        got = self.answered
        return float(np.ptp(np.log10(got))) if len(got) >= 2 else None

    @property
    def median_regret(self) -> float:
        return float(np.median(self.regrets))

    @property
    def worst_regret(self) -> float:
        return float(np.max(self.regrets))


#: The row of a grid search as a user would run it: the grid LR with the lowest *validation*
#: loss after the budget (the oracle's grid-best is picked on the test split it is scored on,
#: which no user can do). Its regret is the floor set by validation noise: verify, which also
#: ranks by validation loss, cannot be expected to beat it.
GRID_BY_VAL = "grid search (by val)"

#: The row of the best *fixed* LR: the one grid LR with the lowest score averaged over the
#: seeds, picked on the test scores it is measured with (an oracle no rule can beat on
#: mean-score regret, which is 1 by definition). Its per-seed regret is what the seeds' own
#: noise costs any LR that does not change with the seed: the floor of the per-seed target.
BEST_FIXED = "best fixed LR (oracle)"


def grid_by_validation(task: Task, run: SeedRun, budget: int) -> float | None:
    """The grid LR a validation-ranked grid search picks for ``budget`` on this seed."""
    runner = run.runner  # type: ignore[attr-defined]
    vals = np.array([runner.val_cache[float(lr)][budget] for lr in task.grid])
    if not np.isfinite(vals).any():
        return None
    return float(task.grid[int(np.argmin(vals))])


#: Where each seed's own grid-best LR lies around the default suggestion: the interval of
#: ``quality()``, a factor of the default either way, and verify's default candidates' span.
NEAR_FACTORS = (2.0, 3.0)
VERIFY_SPAN = (0.1, 3.0)
#: The verify row's name: lrscope.verify around the default, at the budget.
VERIFY_ROW = "verify"


def best_vs_default(task: Task, runs: list) -> list[tuple[float | None, tuple | None, float]]:
    """Per seed and budget: (default LR, quality() interval, that seed's grid-best LR)."""
    out = []
    for run in runs:
        quality = run.default_result.quality()
        for budget in task.budgets:
            best = float(task.grid[int(np.argmin(run.grid_scores[budget]))])
            out.append((quality.lr, quality.interval, best))
    return out


def coverage_counts(cases: list[tuple[float | None, tuple | None, float]]) -> dict[str, int]:
    """How many grid-best LRs lie inside the interval, within each of :data:`NEAR_FACTORS`
    of the default, and inside :data:`VERIFY_SPAN` times the default (no default: none)."""
    counts = {"total": len(cases), "interval": 0, "verify_span": 0}
    counts.update({f"x{factor:g}": 0 for factor in NEAR_FACTORS})
    for default, interval, best in cases:
        if default is None:
            continue
        if interval is not None and interval[0] <= best <= interval[1]:
            counts["interval"] += 1
        for factor in NEAR_FACTORS:
            if default / factor <= best <= default * factor:
                counts[f"x{factor:g}"] += 1
        if default * VERIFY_SPAN[0] <= best <= default * VERIFY_SPAN[1]:
            counts["verify_span"] += 1
    return counts


def rows_for(task: Task, runs: list[SeedRun], rules: list[str]) -> list[Row]:
    rows = []
    for budget in task.budgets:
        table = np.array([run.grid_scores[budget] for run in runs])  # seeds x grid
        best_per_seed = table.min(axis=1)
        mean_scores = table.mean(axis=0)  # inf where any seed diverged
        best_mean = float(np.min(mean_scores))
        with np.errstate(invalid="ignore"):
            median = np.median(table, axis=0)
        best_lr = float(task.grid[int(np.nanargmin(np.where(np.isfinite(median), median, np.inf)))])
        # None when every grid LR diverged on some seed: there is no best fixed LR then.
        fixed = float(task.grid[int(np.argmin(mean_scores))]) if np.isfinite(best_mean) else None
        for rule in [*rules, VERIFY_ROW, GRID_BY_VAL, BEST_FIXED]:
            lrs: list[float | None] = []
            regrets = []
            scores = []
            for run, best in zip(runs, best_per_seed, strict=True):
                if rule == GRID_BY_VAL:
                    lr = grid_by_validation(task, run, budget)
                elif rule == BEST_FIXED:
                    lr = fixed
                else:
                    lr = (
                        run.verified.get(budget)
                        if rule == VERIFY_ROW
                        else run.suggestions.get(rule)
                    )
                if rule == VERIFY_ROW and budget not in run.verified:
                    break
                lrs.append(lr)
                score = math.inf if lr is None else run.runner.scores(lr)[budget]  # type: ignore[attr-defined]
                regrets.append(score / best if math.isfinite(score) else math.inf)
                scores.append(score)
            if lrs:
                mean = float(np.mean(scores))
                mean_regret = mean / best_mean if math.isfinite(mean) else math.inf
                rows.append(
                    Row(
                        task.name,
                        budget,
                        rule,
                        best_lr,
                        lrs,
                        regrets,
                        mean_regret,
                        math.nan if fixed is None else fixed,
                    )
                )
    return rows


def run_task(
    task: Task,
    seeds: list[int],
    verify: bool = True,
    extra: Callable[[Task, list[SeedRun]], list[str]] | None = None,
) -> tuple[list[Row], dict]:
    """``extra(task, runs)`` may add suggestions to each run and returns their rule names
    (the peers' own packages, quality/packages.py)."""
    rules = all_rules()
    began = time.perf_counter()
    runs = [measure_seed(task, seed, rules, verify) for seed in seeds]
    names = list(rules) + (extra(task, runs) if extra is not None else [])
    stats = {
        "seconds": time.perf_counter() - began,
        "steps": sum(run.runner.steps_run for run in runs),  # type: ignore[attr-defined]
    }
    return rows_for(task, runs, names), {"runs": runs, **stats}
