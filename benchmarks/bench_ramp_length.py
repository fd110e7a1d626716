"""Range-test length vs suggestion quality: would a slower ramp give a steadier default?

The quality benchmark (bench_quality.py) found the default suggestion's worst cases on the
digits CNN, whose 100-step range test reads an edge that moves with the seed by up to an order
of magnitude, while a 400-step test over the same range reads it within ~0.1 decades but about
2x low. This benchmark measures that trade-off directly: for each task of the quality suite,
each seed, each range-test length (``LENGTHS`` steps over lrscope's default range), each rule
and each multiplier (``FACTORS``), it trains at ``rule's LR x factor`` for the task's two
budgets and scores it against the seed's grid search, as bench_quality.py does.

Run from the repository root::

    .venv/bin/python benchmarks/bench_ramp_length.py           # 4 tasks x 5 seeds
    .venv/bin/python benchmarks/bench_ramp_length.py --smoke   # the lesson, 2 seeds (seconds)

It then fits, for each test length and rule, the one multiplier that would have done best
on these very seeds (scores interpolated on the grids), trains each seed at it and reports
those as the ceiling of every rule of that form.

Writes ``benchmarks/results/ramp_length.md`` (or ``--out``) and prints it.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from machine import cpu_model  # benchmarks/machine.py
from quality.harness import RANGE_TEST, Runner
from quality.tasks import TASKS, Task

import lrscope
from lrscope.core.rules import DEFAULT_RULE

LENGTHS = (100, 200, 400)
RULES = ("blend", "edge", "min_div10")
FACTORS = (1.0, 1.5, 2.0, 3.0)
#: Multipliers tried when each rule's multiplier is fitted to this benchmark itself (the
#: ceiling): 0.1 to 10, 20 per decade.
FIT_FACTORS = tuple(float(10.0 ** (k / 20)) for k in range(-20, 21))
DEFAULT_VARIANT = f"{RANGE_TEST['steps']} steps, {DEFAULT_RULE} x1"
#: The default rule, unchanged, on the longest test: what a user gets from ``steps=400``.
LONG_DEFAULT = f"{LENGTHS[-1]} steps, {DEFAULT_RULE} x1"


def variant(steps: int, rule: str, factor: float) -> str:
    return f"{steps} steps, {rule} x{factor:g}"


def measure_seed(task: Task, seed: int) -> dict:
    """Grid scores and every variant's LR and scores for one seed: ``{"grid": {budget:
    scores per grid LR}, "lr": {variant: LR or None}, "score": {variant: {budget: score}},
    "flags": quality() flags of the default-length test, "runner": the seed's Runner}`` (kept
    to train the fitted multipliers later)."""
    runner = Runner(task, seed)
    grid = {b: np.array([runner.scores(float(lr))[b] for lr in task.grid]) for b in task.budgets}
    options = {**RANGE_TEST, **task.range_test}
    lrs: dict[str, float | None] = {}
    flags: tuple[str, ...] = ()
    for steps in LENGTHS:
        # One test of each length: the variants compare test lengths, so no retest.
        result = lrscope.range_test(runner.trainer, **{**options, "steps": steps}, retest=False)  # type: ignore[arg-type]
        if steps == RANGE_TEST["steps"]:  # what quality() says of the default test
            flags = tuple(result.quality().flags)
        for rule in RULES:
            lr = result.suggest(rule).lr
            for factor in FACTORS:
                lrs[variant(steps, rule, factor)] = None if lr is None else lr * factor
    scores = {
        name: runner.scores(lr) if lr is not None else dict.fromkeys(task.budgets, math.inf)
        for name, lr in lrs.items()
    }
    return {
        "grid": grid,
        "lr": lrs,
        "score": scores,
        "flags": flags,
        "runner": runner,
    }


def interpolated_score(grid: np.ndarray, scores: np.ndarray, lr: float) -> float:
    """A seed's score at ``lr`` read off its grid: log(score) interpolated linearly in log(LR)
    between the two grid LRs around it; inf when either of them diverged (so an LR next to a
    diverged grid point counts as diverged); the end point's score outside the grid."""
    x = np.log10(grid)
    at = math.log10(lr)
    if at <= x[0]:
        return float(scores[0])
    if at >= x[-1]:
        return float(scores[-1])
    i = int(np.searchsorted(x, at, side="right")) - 1
    low, high = float(scores[i]), float(scores[i + 1])
    w = (at - x[i]) / (x[i + 1] - x[i])
    if w == 0.0:  # on a grid point: its own score
        return low
    if not (math.isfinite(low) and math.isfinite(high)):
        return math.inf
    return math.exp((1 - w) * math.log(low) + w * math.log(high))


def fit_multiplier(
    tasks: list[Task], runs: dict[str, list[dict]], steps: int, rule: str
) -> tuple[float, float]:
    """The multiplier from :data:`FIT_FACTORS` that gives ``rule`` on the ``steps``-step test
    the lowest worst mean-score regret over every task and budget, with scores interpolated on
    each seed's grid (:func:`interpolated_score`): ``(multiplier, that regret)``. The fit
    sees the very seeds it is scored on, so its regret is a ceiling, not a forecast."""
    base = variant(steps, rule, 1.0)
    # the best fixed grid LR's mean score per task and budget: the same for every multiplier
    best_mean = {
        (task.name, b): float(np.min(np.mean([s["grid"][b] for s in runs[task.name]], axis=0)))
        for task in tasks
        for b in task.budgets
    }
    best = (math.nan, math.inf)
    for factor in FIT_FACTORS:
        worst = 0.0
        for task in tasks:
            seeds = runs[task.name]
            for b in task.budgets:
                got = [
                    math.inf
                    if s["lr"][base] is None
                    else interpolated_score(task.grid, s["grid"][b], s["lr"][base] * factor)
                    for s in seeds
                ]
                worst = max(worst, float(np.mean(got)) / best_mean[task.name, b])
        if worst < best[1]:
            best = (factor, worst)
    return best


def fitted_variant(steps: int, rule: str, factor: float) -> str:
    return f"{steps} steps, {rule} x{factor:.3g} (fitted)"


def add_fitted(tasks: list[Task], runs: dict[str, list[dict]]) -> dict[str, float]:
    """Fit every rule's multiplier on every test length (:func:`fit_multiplier`), then train
    each seed at the fitted LR for real and add it to the runs as a variant. Returns
    ``{fitted variant name: its interpolated worst mean-score regret}``."""
    fitted: dict[str, float] = {}
    for steps in LENGTHS:
        for rule in RULES:
            factor, predicted = fit_multiplier(tasks, runs, steps, rule)
            if not math.isfinite(factor):  # every multiplier diverged somewhere
                factor = 1.0
            name = fitted_variant(steps, rule, factor)
            fitted[name] = predicted
            base = variant(steps, rule, 1.0)
            for task in tasks:
                for run in runs[task.name]:
                    lr = run["lr"][base]
                    run["lr"][name] = None if lr is None else lr * factor
                    run["score"][name] = (
                        dict.fromkeys(task.budgets, math.inf)
                        if lr is None
                        else run["runner"].scores(lr * factor)
                    )
    return fitted


def summarize(task: Task, seeds: list[dict]) -> dict[str, dict]:
    """Per variant: worst per-seed regret and mean-score regret per budget, the seed spread
    (decades) and the median LR / grid-best LR of the mean scores, per budget."""
    out: dict[str, dict] = {}
    for name in seeds[0]["lr"]:
        lrs = [s["lr"][name] for s in seeds]
        answered = [lr for lr in lrs if lr is not None]
        spread = float(np.ptp(np.log10(answered))) if len(answered) == len(lrs) else math.inf
        median = float(np.exp(np.median(np.log(answered)))) if answered else math.nan
        per_budget = {}
        for b in task.budgets:
            table = np.array([s["grid"][b] for s in seeds])
            mean_scores = table.mean(axis=0)
            best_mean = float(np.min(mean_scores))
            got = np.array([s["score"][name][b] for s in seeds])
            with np.errstate(invalid="ignore"):
                worst = float(np.max(got / table.min(axis=1)))
                mean = float(np.mean(got) / best_mean)
            best_lr = float(task.grid[int(np.argmin(mean_scores))])
            per_budget[b] = {
                "worst": worst,
                "mean": mean,
                "log_ratio": math.log10(median / best_lr),
            }
        out[name] = {"spread": spread, "budgets": per_budget}
    return out


def _num(value: float) -> str:
    if not math.isfinite(value):
        return "diverged"
    return f"{value:.2f}" if value < 1000 else f"{value:.1e}"


def rank(names: list[str], tasks: list[Task], summaries: dict[str, dict]) -> list[tuple]:
    """One row per variant, best worst mean-score regret first: (worst mean-score regret,
    worst per-seed regret, name, task-budgets with mean-score regret <= 1.10, task-budgets,
    task-budgets with the median within x2 of the grid-best, max seed spread)."""
    overall = []
    for name in names:
        cells = [summaries[t.name][name] for t in tasks]
        worst = max(
            c["budgets"][b]["worst"] for c, t in zip(cells, tasks, strict=True) for b in t.budgets
        )
        means = [
            c["budgets"][b]["mean"] for c, t in zip(cells, tasks, strict=True) for b in t.budgets
        ]
        within = [
            abs(c["budgets"][b]["log_ratio"]) <= math.log10(2)
            for c, t in zip(cells, tasks, strict=True)
            for b in t.budgets
        ]
        spread = max(c["spread"] for c in cells)
        overall.append(
            (
                max(means),
                worst,
                name,
                sum(m <= 1.10 for m in means),
                len(means),
                sum(within),
                spread,
            )
        )
    overall.sort(key=lambda row: (row[0], row[1]))
    return overall


def markdown(
    tasks: list[Task],
    summaries: dict[str, dict],
    command: str,
    info: dict,
    fitted: dict[str, float] | None = None,
) -> str:
    fitted = fitted or {}
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    names = [n for n in next(iter(summaries.values())) if n not in fitted]
    overall = rank(names, tasks, summaries)
    lengths = ", ".join(map(str, LENGTHS))
    lines = [
        "# Range-test length vs suggestion quality",
        "",
        f"- date: {now}",
        f"- machine: {os.cpu_count()} CPUs ({cpu_model()}), Python {platform.python_version()}, "
        "torch threads 1",
        f"- command: `{command}`",
        f"- seeds: {info['seeds']} per task; range tests: lrscope's default range "
        f"({RANGE_TEST['start_lr']:g}..{RANGE_TEST['end_lr']:g}) over {lengths} steps "
        "from the same start; a variant = range-test length, rule, and a multiplier on "
        "the rule's LR; scored like bench_quality.py (held-out loss after each budget at that "
        "LR; per-seed regret against that seed's grid-best, mean-score regret against the best "
        "fixed grid LR)",
        f"- wall time: {info['seconds']:.0f} s, {info['steps']} training steps",
        f"- seeds whose default ({RANGE_TEST['steps']}-step) test `quality()` flags "
        "`broke_down`: "
        + ", ".join(f"{name} {n}/{info['seeds']}" for name, n in info["broke_down"].items()),
        "",
        "## Every variant, best worst mean-score regret first",
        "",
        "| variant | worst mean-score regret | worst per-seed regret | task-budgets with "
        "mean-score regret <= 1.10 | median within x2 of grid-best | max seed spread (decades) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for mean, worst, name, ok, total, within, spread in overall:
        label = f"**{name}** (the default)" if name == DEFAULT_VARIANT else name
        lines.append(
            f"| {label} | {_num(mean)} | {_num(worst)} | {ok}/{total} | {within}/{total} | "
            f"{_num(spread)} |"
        )
    shown = [row[2] for row in overall[:5]]
    for name in (DEFAULT_VARIANT, LONG_DEFAULT):  # the default, and its rule on the long test
        if name in names and name not in shown:
            shown.append(name)
    if fitted:  # the fit with the lowest interpolated regret (see the ceiling below)
        shown.append(min(fitted, key=lambda name: fitted[name]))
    lines += [
        "",
        "## Per task and budget: the five best variants, the default, the default rule "
        f"on the {LENGTHS[-1]}-step test, and the best fitted multiplier",
        "",
        "Each cell: mean-score regret / worst per-seed regret / log10(median LR / grid-best LR); "
        "the last column per task is the seed spread in decades.",
        "",
    ]
    header = ["variant"]
    for t in tasks:
        header += [f"{t.name} @{b}" for b in t.budgets] + [f"{t.name} spread"]
    lines += ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for name in shown:
        cells = [name]
        for t in tasks:
            s = summaries[t.name][name]
            for b in t.budgets:
                c = s["budgets"][b]
                cells.append(f"{_num(c['mean'])} / {_num(c['worst'])} / {c['log_ratio']:+.2f}")
            cells.append(_num(s["spread"]))
        lines.append("| " + " | ".join(cells) + " |")
    if fitted:
        lines += [
            "",
            "## Ceiling: each rule with its multiplier fitted to this benchmark",
            "",
            "For each test length and rule, the multiplier (0.1..10, 20 per decade) with the "
            "lowest worst mean-score regret over every task and budget, chosen on scores "
            "interpolated between each seed's grid points (log score vs log LR; next to a "
            "diverged grid point counts as diverged): what one multiplier per test length "
            "could reach if the score were smooth in the LR. The fit sees the seeds it is "
            "scored on, so on new tasks it would do worse. Each seed is then trained at its "
            "fitted LR and scored like every variant above: near the stability edge the score "
            "is not smooth in the LR (a fitted x1.995 and the x2 above can differ), so the "
            "trained regret can be higher than the interpolated one, and a round multiplier "
            "above can beat the fit. Sorted by the interpolated regret.",
            "",
            "| fitted variant | worst mean-score regret (interpolated, at the fit) | worst "
            "mean-score regret (trained) | worst per-seed regret (trained) | task-budgets with "
            "mean-score regret <= 1.10 (trained) | median within x2 of grid-best | max seed "
            "spread (decades) |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        rows = sorted(rank(list(fitted), tasks, summaries), key=lambda row: fitted[row[2]])
        for mean, worst, name, ok, total, within, spread in rows:
            lines.append(
                f"| {name} | {_num(fitted[name])} | {_num(mean)} | {_num(worst)} | {ok}/{total} "
                f"| {within}/{total} | {_num(spread)} |"
            )
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="the lesson only, 2 seeds")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per task (default 5)")
    parser.add_argument("--tasks", default=None, help="comma-separated task names")
    parser.add_argument(
        "--out", default="benchmarks/results/ramp_length.md", help="markdown output"
    )
    args = parser.parse_args(argv)
    seeds = args.seeds or (2 if args.smoke else 5)
    names = args.tasks.split(",") if args.tasks else (["linreg"] if args.smoke else list(TASKS))
    for name in names:
        if name not in TASKS:
            parser.error(f"unknown task {name!r}; choose from {sorted(TASKS)}")
    tasks = [TASKS[name] for name in names]
    began = time.perf_counter()
    runs: dict[str, list[dict]] = {}
    for task in tasks:
        runs[task.name] = [measure_seed(task, seed) for seed in range(seeds)]
        print(f"{task.name}: {time.perf_counter() - began:.0f} s", file=sys.stderr)
    fitted = add_fitted(tasks, runs)
    print(f"fitted multipliers: {time.perf_counter() - began:.0f} s", file=sys.stderr)
    summaries = {task.name: summarize(task, runs[task.name]) for task in tasks}
    info_flags = {
        task.name: sum("broke_down" in run["flags"] for run in runs[task.name]) for task in tasks
    }
    steps = sum(run["runner"].steps_run for task_runs in runs.values() for run in task_runs)
    command = ".venv/bin/python benchmarks/bench_ramp_length.py" + " ".join(
        [""] + (argv if argv is not None else sys.argv[1:])
    )
    info = {
        "seeds": seeds,
        "seconds": time.perf_counter() - began,
        "steps": steps,
        "broke_down": info_flags,
    }
    text = markdown(tasks, summaries, command, info, fitted)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
