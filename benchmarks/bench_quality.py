"""Suggestion quality: every rule's LR against the LR a grid search picks, per task and budget.

Run from the repository root::

    .venv/bin/python benchmarks/bench_quality.py            # full: 4 tasks x 2 budgets x 5 seeds
    .venv/bin/python benchmarks/bench_quality.py --smoke    # 3 small tasks, 2 seeds (< 1 min)
    .venv/bin/python benchmarks/bench_quality.py --tasks keras_mlp  # the Keras task, 3 backends

The Keras task (``keras_mlp[<backend>]``, quality/keras_tasks.py) runs each backend in its own
subprocess, with 3 seeds unless ``--seeds`` is given; the smoke run includes its JAX backend.

Writes ``benchmarks/results/quality.md`` (or ``--out``) and prints it. For each task, budget and
rule: the suggested LR (geometric median over seeds), log10(suggested / grid-best LR), regret
(score at the suggested LR after the budget / best score on the grid, same seed; median and
worst over seeds), and the seed spread of the suggestion (max - min of log10 LR, decades).
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
from quality.harness import (
    BEST_FIXED,
    DEFAULT_ROW,
    GRID_BY_VAL,
    NEAR_FACTORS,
    RANGE_TEST,
    VERIFY_ROW,
    VERIFY_SPAN,
    Row,
    best_vs_default,
    coverage_counts,
    run_task,
)
from quality.keras_tasks import BACKEND_OF, KERAS_SEEDS, KERAS_TASKS, run_backend
from quality.packages import PackageRuns
from quality.tasks import TASKS, Task, log_grid

from lrscope.core.rules import DEFAULT_RULE

SMOKE_TASKS = {
    "linreg": {},
    "digits_mlp": {"grid": log_grid(1e-3, 1e-1, 2), "budgets": (30, 60)},
    # One Keras backend (its own subprocess, ~9 s) so the smoke run covers that path too.
    "keras_mlp[jax]": {"grid": log_grid(1e-3, 1e-1, 2), "budgets": (30, 60)},
}


#: The default row's name in the tables.
DEFAULT_NAME = "**default** (blend; 4x-step retest when the curve broke down)"


def _fmt(value: float | None, spec: str) -> str:
    if value is None:
        return "none"
    if math.isinf(value):
        return "diverged"
    return format(value, spec)


def _regret(value: float) -> str:
    return "diverged" if math.isinf(value) else f"{value:.3f}"


def flag_lines(task: Task, runs: list) -> list[str]:
    """What ``RangeTestResult.quality()`` said on each seed's range test, that seed's own
    grid-best LR per budget (so a seed spread of the default can be told apart from a spread
    of the best LR itself), and whether the interval covered it."""
    lines = [
        "| seed | flags (100-step test) | tested again (flags) | default LR | interval "
        "| grid-best LR (short, long) | covers grid-best (short, long) |"
    ]
    lines.append("|---:|---|---|---:|---|---|---|")
    for run in runs:
        quality = run.default_result.quality()
        first = run.result.quality()
        again = (
            f"{run.default_result.steps} steps ({', '.join(quality.flags) or 'none'})"
            if "first_test_steps" in run.default_result.metadata
            else "no"
        )
        cover, bests = [], []
        for budget in task.budgets:
            best = float(task.grid[int(np.argmin(run.grid_scores[budget]))])
            bests.append(f"{best:.3g}")
            inside = quality.interval is not None and (
                quality.interval[0] <= best <= quality.interval[1]
            )
            cover.append("yes" if inside else "no")
        interval = (
            f"{quality.interval[0]:.3g}..{quality.interval[1]:.3g}" if quality.interval else "none"
        )
        lines.append(
            f"| {run.seed} | {', '.join(first.flags) or 'none'} | {again} | "
            f"{_fmt(quality.lr, '.3g')} | {interval} | {', '.join(bests)} | {', '.join(cover)} |"
        )
    return lines


def markdown(
    rows: list[Row], tasks: list[Task], seeds: int, command: str, info: dict, runs: dict
) -> str:
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Suggestion quality: rules vs grid search",
        "",
        f"- date: {now}",
        f"- machine: {os.cpu_count()} CPUs ({cpu_model()}), Python {platform.python_version()}, "
        f"torch threads 1",
        f"- command: `{command}`",
        f"- seeds: {seeds} per task; oracle: every grid LR trained from the same start per seed; "
        "score = held-out loss after the budget (the lesson: its exact training loss); "
        "diverged = inf",
        f"- range test for lrscope's rules: lrscope defaults {RANGE_TEST} (stop on divergence); "
        "peers (`peer:*`): our re-implementations on the same trainer, each with its own ramp, "
        "smoothing, stop and trimming (benchmarks/quality/peers.py)",
        f"- peers' own packages (`pkg:*`): {info.get('packages', 'not run')}",
        f"- lrscope's default (`{DEFAULT_NAME}`): `range_test` as users call it, read by the "
        f"default rule `{DEFAULT_RULE}`; with `retest=True` (its default), a 100-step curve "
        "that broke down (quality flag `broke_down`) is tested again with 4x the steps and "
        "that test is read (checked bit for bit against the rows' own 100- and 400-step "
        f"tests). Every other lrscope row reads one 100-step test (`{DEFAULT_RULE}` is the "
        "default rule on it alone)",
        "- `verify`: lrscope.verify around the "
        "default suggestion (x1/10, x1/3, x1, x3; then 3x steps past an end winner and "
        "bisection to 1.2x, at most 14 runs) at the task's budget, ranked by the trainer's "
        "`evaluate()` (the validation split; for the lesson its full-batch training loss); its "
        "regret is measured like every rule's (test split)",
        "- `grid search (by val)`: the grid LR with the lowest validation loss after the "
        "budget, i.e. a grid search as a user runs it (the oracle's grid-best is picked on the "
        "test split it is scored on). Its regret is the floor that validation noise sets for "
        "anything that ranks LRs by validation loss, verify included",
        "- `best fixed LR (oracle)`: the one grid LR with the lowest score averaged over the "
        "seeds, picked on the test scores it is measured with (no rule can know it). Its "
        "mean-score regret is 1 by definition; its per-seed regret is what the seeds' noise "
        "costs any LR that does not change with the seed (the floor of the per-seed target)",
        f"- wall time: {info['seconds']:.0f} s, {info['steps']} training steps",
        *[f"- {note}" for note in info.get("notes", [])],  # Keras backends (keras_tasks.py)
        "",
        "Regret 1.00 = as good as the best grid LR for that seed (below 1: between grid points). "
        "`none` = the rule gave no LR (counted as diverged). Mean-score regret = the rule's "
        "score averaged over the seeds / the best grid LR's score averaged over the seeds: the "
        "regret against the best fixed LR for the task. Per-seed regret compares with each "
        "seed's own best grid point, picked on the noisy scores it is measured on, so it "
        "charges every rule for that noise too. Grid-best LR = the grid LR with the lowest "
        "median score over the seeds; the best fixed LR = the one with the lowest mean score "
        "(the `best fixed LR (oracle)` row): on a flat bottom the two can lie apart, and the "
        "summary reads the median suggestion against both.",
        "",
    ]
    for task in tasks:
        lines += [f"## {task.name}: {task.description}", ""]
        grid = task.grid
        lines += [
            f"Grid: {grid.size} LRs {grid[0]:.3g}..{grid[-1]:.3g}; budgets {task.budgets[0]} and "
            f"{task.budgets[1]} steps.",
            "",
            "| budget | rule | suggested LR | grid-best LR | log10(sugg/best) | regret median | "
            "regret worst | mean-score regret | seed spread (decades) |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in rows:
            if row.task != task.name:
                continue
            name = DEFAULT_NAME if row.rule == DEFAULT_ROW else row.rule
            missing = sum(lr is None for lr in row.lrs)
            lr_text = _fmt(row.median_lr, ".3g") + (f" ({missing} none)" if missing else "")
            lines.append(
                f"| {row.budget} | {name} | {lr_text} | {row.best_lr:.3g} | "
                f"{_fmt(row.log_ratio, '+.2f')} | {_regret(row.median_regret)} | "
                f"{_regret(row.worst_regret)} | {_regret(row.mean_regret)} | "
                f"{_fmt(row.spread, '.2f')} |"
            )
        lines += ["", "Quality flags of lrscope's range test (`result.quality()`):", ""]
        lines += flag_lines(task, runs[task.name])
        lines.append("")
    lines += ["## Summary per rule (over every task and budget)", ""]
    lines += summary_table(rows, list(dict.fromkeys(row.rule for row in rows)))
    lines.append("")
    lines += head_to_head_lines(rows)
    lines += default_losses_lines(rows)
    lines += coverage_lines(tasks, runs)
    return "\n".join(lines)


#: The summary table's columns (after the rule's name).
SUMMARY_HEADER = [
    "| rule | median regret | worst regret | task-budgets with worst regret <= 1.10 | "
    "median within x2 of grid-best | max seed spread (decades) | worst mean-score regret | "
    "task-budgets with mean-score regret <= 1.10 | median within x2 of the best fixed LR |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
]

#: Rows of the peers' own packages start with this.
PACKAGE_PREFIX = "pkg:"


def summary_table(rows: list[Row], rules: list[str]) -> list[str]:
    """The summary lines of ``rules`` over ``rows`` (every task-budget each rule has there),
    sorted by worst regret, then median."""
    summary = []
    for rule in rules:
        mine = [row for row in rows if row.rule == rule]
        if not mine:
            continue
        regrets = [r for row in mine for r in row.regrets]
        ok = sum(row.worst_regret <= 1.10 for row in mine)
        within = sum(
            row.log_ratio is not None and abs(row.log_ratio) <= math.log10(2) for row in mine
        )
        within_fixed = sum(
            row.median_lr is not None
            and math.isfinite(row.fixed_lr)
            and abs(math.log10(row.median_lr / row.fixed_lr)) <= math.log10(2)
            for row in mine
        )
        spreads = [row.spread for row in mine if row.spread is not None]
        means = [row.mean_regret for row in mine]
        summary.append(
            (
                float(np.median(regrets)),
                float(np.max(regrets)),
                rule,
                ok,
                within,
                len(mine),
                spreads,
                max(means),
                sum(m <= 1.10 for m in means),
                within_fixed,
            )
        )
    lines = list(SUMMARY_HEADER)
    for med, worst, rule, ok, within, total, spreads, mean_worst, mean_ok, fixed_ok in sorted(
        summary, key=lambda s: (s[1], s[0])
    ):
        name = DEFAULT_NAME if rule == DEFAULT_ROW else rule
        lines.append(
            f"| {name} | {_regret(med)} | {_regret(worst)} | {ok}/{total} | {within}/{total} | "
            f"{_fmt(max(spreads) if spreads else None, '.2f')} | {_regret(mean_worst)} | "
            f"{mean_ok}/{total} | {fixed_ok}/{total} |"
        )
    return lines


def head_to_head_lines(rows: list[Row]) -> list[str]:
    """The peers' own packages against lrscope's default and verify on the very task-budgets
    each package ran (the summary above counts lrscope's rows over every task-budget, the
    packages' over the torch tasks only): one table per set of task-budgets. Empty when no
    package ran."""
    runs_on: dict[tuple[tuple[str, int], ...], list[str]] = {}
    for rule in dict.fromkeys(row.rule for row in rows if row.rule.startswith(PACKAGE_PREFIX)):
        cases = tuple(sorted({(row.task, row.budget) for row in rows if row.rule == rule}))
        runs_on.setdefault(cases, []).append(rule)
    lines: list[str] = []
    for cases, packages in runs_on.items():
        where = ", ".join(f"{task} @{budget}" for task, budget in cases)
        subset = [row for row in rows if (row.task, row.budget) in cases]
        lines += [
            "## Head to head with the peers' own packages (the same task-budgets)",
            "",
            f"Only the {len(cases)} task-budgets the packages ran ({where}): each row over "
            "exactly those, so the medians and worst cases compare like with like.",
            "",
            *summary_table(subset, [DEFAULT_ROW, VERIFY_ROW, *packages]),
            "",
        ]
    return lines


#: Reference rows, not rules a user runs before training: left out of "where the default loses".
REFERENCES = (VERIFY_ROW, GRID_BY_VAL, BEST_FIXED)


def default_losses_lines(rows: list[Row]) -> list[str]:
    """Every task-budget where some rule (lrscope's others, the peers' re-implementations and
    their packages; not verify, the grid search or the oracle) has a lower median or a lower
    worst per-seed regret than the default, with both rules' numbers: the cases where the
    default loses, listed by the benchmark itself so the list cannot go stale."""
    lines = [
        "## Where the default loses (per task-budget)",
        "",
        "Each rule with a lower median or a lower worst per-seed regret than the default on a "
        "task-budget, to the 3 decimals shown (mean-score regret in brackets):",
        "",
    ]
    found = 0
    cases = dict.fromkeys((row.task, row.budget) for row in rows)
    for task, budget in cases:
        here = [row for row in rows if (row.task, row.budget) == (task, budget)]
        default = next((row for row in here if row.rule == DEFAULT_ROW), None)
        if default is None:
            continue
        for row in here:
            if row.rule in (DEFAULT_ROW, *REFERENCES):
                continue
            lower = [
                what
                for what, mine, theirs in (
                    ("median", row.median_regret, default.median_regret),
                    ("worst", row.worst_regret, default.worst_regret),
                )
                if round(mine, 3) < round(theirs, 3)  # as printed: no invisible wins
            ]
            if lower:
                found += 1
                lines.append(
                    f"- {task} @{budget}: `{row.rule}` has the lower {' and '.join(lower)}: "
                    f"median / worst {_regret(row.median_regret)} / {_regret(row.worst_regret)} "
                    f"({_regret(row.mean_regret)}) against the default's "
                    f"{_regret(default.median_regret)} / {_regret(default.worst_regret)} "
                    f"({_regret(default.mean_regret)})"
                )
    if not found:
        lines.append("- nowhere: the default has the lowest median and worst regret everywhere")
    return [*lines, ""]


def coverage_lines(tasks: list[Task], runs: dict) -> list[str]:
    """Where each seed's own grid-best LR lay around the default suggestion, over every task,
    budget and seed: how far the default can be trusted, and how often verify's candidates
    bracket the best."""
    counts = coverage_counts([case for t in tasks for case in best_vs_default(t, runs[t.name])])
    total = counts["total"]
    near = ", ".join(f"within x{f:g} of it: {counts[f'x{f:g}']}/{total}" for f in NEAR_FACTORS)
    return [
        "## Where each seed's grid-best LR lies around the default",
        "",
        f"Over every task, budget and seed ({total}): inside the default's `quality()` interval: "
        f"{counts['interval']}/{total}; {near}; inside verify's default candidates "
        f"(x{VERIFY_SPAN[0]:g}..x{VERIFY_SPAN[1]:g} the default): "
        f"{counts['verify_span']}/{total}. Each seed's grid-best is picked on its own noisy "
        "test scores, so part of the distance is that noise.",
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny version for the test suite")
    parser.add_argument(
        "--seeds", type=int, default=None, help="seeds per task (default 5, smoke 2)"
    )
    parser.add_argument("--tasks", default=None, help="comma-separated task names")
    parser.add_argument("--out", default="benchmarks/results/quality.md", help="markdown output")
    parser.add_argument(
        "--no-packages", action="store_true", help="skip the peers' own packages (.venv-bench)"
    )
    args = parser.parse_args(argv)
    seeds = args.seeds or (2 if args.smoke else 5)
    known = {**TASKS, **KERAS_TASKS}
    names = args.tasks.split(",") if args.tasks else list(SMOKE_TASKS if args.smoke else known)
    # "keras_mlp" means every backend: keras_mlp[tensorflow], keras_mlp[jax], keras_mlp[torch].
    names = [k for n in names for k in ([t for t in KERAS_TASKS if t.startswith(f"{n}[")] or [n])]
    tasks = []
    for name in names:
        if name not in known:
            parser.error(f"unknown task {name!r}; choose from {sorted(known)}")
        task = known[name]
        if args.smoke:
            task = Task(**{**task.__dict__, **SMOKE_TASKS.get(name, {})})
        tasks.append(task)
    rows: list[Row] = []
    runs: dict[str, list] = {}
    info: dict = {"seconds": 0.0, "steps": 0, "notes": []}
    packages = PackageRuns(
        [task.name for task in tasks if task.needs_torch],
        list(range(seeds)),
        enabled=not args.no_packages,
    ).start()  # in the background; run_task waits for them when it first needs them
    began = time.perf_counter()
    for task in list(tasks):
        if task.name in BACKEND_OF:  # a Keras backend: measured in its own subprocess
            outcome = run_backend(task, list(range(args.seeds or min(seeds, KERAS_SEEDS))))
            if isinstance(outcome, str):  # Keras or the backend is missing: no rows, a note
                tasks.remove(task)
                info["notes"].append(outcome)
                print(outcome, file=sys.stderr)
                continue
            task_rows, stats = outcome
            info["notes"].append(stats["note"])
        else:
            task_rows, stats = run_task(task, list(range(seeds)), extra=packages.add_rows)
        rows += task_rows
        runs[task.name] = stats["runs"]
        info["steps"] += stats["steps"]
        print(f"{task.name}: {stats['seconds']:.1f} s", file=sys.stderr)
    info["seconds"] = time.perf_counter() - began
    info["packages"] = packages.note()
    command = ".venv/bin/python benchmarks/bench_quality.py" + " ".join(
        [""] + (argv if argv is not None else sys.argv[1:])
    )
    text = markdown(rows, tasks, seeds, command, info, runs)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(out)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
