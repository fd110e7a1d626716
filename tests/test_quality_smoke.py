"""The quality benchmark's smoke mode runs and writes a table with every rule in it."""

import re
from pathlib import Path

import pytest
from conftest import needs, run_benchmark_smoke

from lrscope.core.rules import DEFAULT_RULE, RULES

pytestmark = [pytest.mark.slow, pytest.mark.torch, needs("torch"), needs("sklearn")]

ROOT = Path(__file__).resolve().parents[1]
PEERS = ("fastai_valley", "fastai_minimum", "torch_lr_finder", "lightning")
# The peers' own packages (pkg:* rows, torch tasks only) run when .venv-bench exists.
PACKAGES = ("torch_lr_finder", "fastai", "lightning")
HAS_BENCH_VENV = (ROOT / ".venv-bench" / "bin" / "python").exists()


def rule_name(cell):
    return re.sub(r"\*\*(.*)\*\* \(.*\)", r"\1", cell.strip())


def test_smoke_benchmark_writes_a_table_with_every_rule(tmp_path):
    text = run_benchmark_smoke("bench_quality.py", tmp_path / "quality.md")
    assert "- machine:" in text and "- command:" in text and "- date:" in text
    summary = text.split("## Summary per rule", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in summary.splitlines() if line.startswith("| ") and "---" not in line]
    names = {rule_name(r.split("|")[1]) for r in rows[1:]}
    extra = {
        "verify",
        "grid search (by val)",
        "best fixed LR (oracle)",
        f"{DEFAULT_RULE} (400-step test)",
        "default",
    }
    expected = set(RULES) | {f"peer:{p}" for p in PEERS} | extra
    packaged = {f"pkg:{p}" for p in PACKAGES} if HAS_BENCH_VENV else set()
    assert names == expected | packaged
    header = text.split("\n- peers' own packages (`pkg:*`): ", 1)[1].split("\n- ", 1)[0]
    if HAS_BENCH_VENV:  # every package ran, trained the harness's start, and was checked
        assert header.count("gave the same losses (max rel. diff 0)") == len(PACKAGES)
        assert "no rows" not in header and "noted:" not in header
    else:
        assert "`make bench-peers` builds it" in header
    assert "**default** (blend; 4x-step retest when the curve broke down)" in summary
    for row in rows[1:]:
        cells = [c.strip() for c in row.split("|")[1:-1]]
        for cell in cells[1:3]:  # median and worst regret: a number, or "diverged"
            assert cell == "diverged" or float(cell) > 0
        # worst mean-score regret and how many task-budgets are within 1.10 of the best fixed LR
        assert cells[6] == "diverged" or float(cells[6]) > 0
        within, total = (int(v) for v in cells[7].split("/"))
        assert 0 <= within <= total
        # median within x2 of the best fixed LR; the oracle's own row always is
        near, total = (int(v) for v in cells[8].split("/"))
        assert 0 <= near <= total
        if rule_name(cells[0]) == "best fixed LR (oracle)":
            assert near == total and float(cells[6]) == 1.0
    # The packages against the default and verify on the task-budgets the packages ran.
    if HAS_BENCH_VENV:
        head = text.split("## Head to head with the peers' own packages", 1)[1].split("\n## ")[0]
        names = {rule_name(r.split("|")[1]) for r in head.splitlines() if r.startswith("| ")}
        assert names == {"rule", "default", "verify"} | packaged
    else:
        assert "## Head to head" not in text
    # The benchmark lists the task-budgets where some rule beats the default, or says nowhere.
    loses = text.split("## Where the default loses (per task-budget)", 1)[1].split("\n## ")[0]
    listed = [line for line in loses.splitlines() if line.startswith("- ")]
    assert listed and all(" @" in line or line.startswith("- nowhere") for line in listed)
    # Where each seed's grid-best lies around the default: counts out of every seed-budget.
    coverage = text.split("## Where each seed's grid-best LR lies around the default", 1)[1]
    counts = [tuple(map(int, m)) for m in re.findall(r"(\d+)/(\d+)", coverage)]
    assert len(counts) == 4 and len({total for _, total in counts}) == 1
    assert all(0 <= n <= total for n, total in counts)
    # Every task table has one line per rule per budget.
    for task in ("linreg", "digits_mlp"):
        section = text.split(f"## {task}:", 1)[1].split("\n## ", 1)[0]
        lines = [ln for ln in section.splitlines() if re.match(r"\| \d+ \|", ln)]
        mine = expected | (packaged if task == "digits_mlp" else set())
        rule_lines = [ln for ln in lines if rule_name(ln.split("|")[2]) in mine]
        assert len(rule_lines) == 2 * len(mine)
        assert "Quality flags" in section  # one line per seed follows
        assert len(lines) - len(rule_lines) == 2  # --smoke runs 2 seeds
