"""benchmarks/bench_torch.py --smoke: the peer benchmark's own code path (run_finder.py in a
subprocess, the pairing with the bare loop, the table) on the linear regression, lrscope's
rows only (the peers need .venv-bench, which CI does not build)."""

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import needs

pytestmark = [pytest.mark.torch, needs("torch")]

ROOT = Path(__file__).resolve().parents[1]


def run_script(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``benchmarks/<script> args...`` from the repo root, its output captured."""
    return subprocess.run(
        [sys.executable, f"benchmarks/{script}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def smoke_rows(script: str, out: Path) -> list[list[str]]:
    """Run ``benchmarks/<script> --smoke``; the cells of its table's linreg rows."""
    done = run_script(script, "--smoke", "--out", str(out))
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert f"- command: `.venv/bin/python benchmarks/{script} --smoke`" in text
    assert "- machine:" in text and "- date:" in text
    rows = [
        [c.strip() for c in line.split("|")[1:-1]]
        for line in text.splitlines()
        if line.startswith("| linreg")
    ]
    return rows


def test_smoke_run_writes_a_table_whose_rows_parse_and_say_restored(tmp_path):
    rows = {cells[1]: cells for cells in smoke_rows("bench_torch.py", tmp_path / "torch.md")}
    assert set(rows) == {"lrscope", "lrscope-adapter"}
    for cells in rows.values():
        iterations, wall, bare = int(cells[2]), float(cells[3]), float(cells[4])
        ratio = float(cells[5].rstrip("x"))
        low, high = (float(v) for v in cells[6].split("-"))
        assert iterations > 0 and wall > 0 and bare > 0
        assert low <= ratio <= high  # the median inside its own interval
        assert cells[9] == "yes" and cells[10] == "yes"  # weights and RNG restored
    # find_lr stops at the divergence (it has fewer steps than the 100 of the ramp); the
    # adapter row runs the whole ramp; the suggestion is a number
    assert int(rows["lrscope"][2]) < int(rows["lrscope-adapter"][2]) == 100
    assert float(rows["lrscope"][8].split("lrscope default ")[1].split(",")[0]) > 0


def test_a_subset_of_finders_and_a_repeat_count_run_only_those_rows_and_say_so(tmp_path):
    out = tmp_path / "torch.md"
    options = ["--smoke", "--finders", "lrscope", "--processes", "2", "--repeats", "4"]
    done = run_script("bench_torch.py", *options, "--out", str(out))
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert "benchmarks/bench_torch.py --smoke --finders lrscope --processes 2 --repeats 4`" in text
    assert "medians of 2 x 4 (linreg) repeats" in text
    finders = [line.split("|")[2].strip() for line in text.splitlines() if line.startswith("| ")]
    assert finders == ["finder", "lrscope"]  # the header, then the one row
    (row,) = [
        [cell.strip() for cell in line.split("|")[1:-1]]
        for line in text.splitlines()
        if line.startswith("| linreg")
    ]
    per_process = [float(r) for r in row[11].split()]
    low, high = (float(v) for v in row[6].split("-"))
    assert len(per_process) == 2 and per_process == sorted(per_process)
    # the pooled median lies between the two processes' medians
    assert per_process[0] - 0.005 <= float(row[5].rstrip("x")) <= per_process[1] + 0.005
    assert low <= float(row[5].rstrip("x")) <= high


@pytest.mark.parametrize(
    ("option", "value", "allowed"),
    [
        ("--tasks", "linreg,resnet", "a comma-separated subset of "),
        ("--finders", "", "a comma-separated subset of "),
        ("--tasks", ",", "a comma-separated subset of "),
        ("--repeats", "2", "an integer >= 3"),
        ("--repeats", "many", "an integer >= 3"),
        ("--processes", "0", "an integer >= 1"),
    ],
)
def test_an_unknown_task_finder_or_repeat_count_is_refused_in_one_line(
    tmp_path, option, value, allowed
):
    done = run_script("bench_torch.py", option, value, "--out", str(tmp_path / "t"))
    assert done.returncode == 2 and not (tmp_path / "t").exists()
    assert f"{option} must be {allowed}" in done.stderr.splitlines()[-1]


def test_breakdown_smoke_run_parts_add_up_and_the_losses_match_the_bare_loop(tmp_path):
    rows = smoke_rows("bench_torch_breakdown.py", tmp_path / "breakdown.md")
    (row,) = [cells for cells in rows if len(cells) == 11]  # the first table's linreg row
    # the second table: each part alone, right after a bare loop and warm, in microseconds
    alone = {cells[1]: cells for cells in rows if len(cells) == 5}
    assert set(alone) == {
        "TorchTrainer(...)",
        "snapshot()",
        "restore(snapshot)",
        "result.suggest()",
        "np.add.reduce(losses)",
    }
    for cells in alone.values():
        after, warm, ratio = float(cells[2]), float(cells[3]), float(cells[4].rstrip("x"))
        assert after > 0 and warm > 0 and ratio > 0  # (the ratio of the unrounded medians)
    ratio, interval = row[4].split(" (")
    low, high = (float(v) for v in interval.rstrip(")").split("-"))
    assert low <= float(ratio.rstrip("x")) <= high
    snapshot, restore, suggest = float(row[6]), float(row[7]), float(row[8])
    assert snapshot > 0 and restore > 0 and suggest > 0  # each part was timed, in ms
    # the parts are a share of the whole find_lr call, not more
    assert snapshot + restore + suggest < float(row[3])
    assert row[10] == "yes"  # find_lr's steps gave the bare loop's losses bit for bit


def test_pooled_processes_keep_every_pair_and_each_process_median(monkeypatch):
    """run_pooled on made-up process outputs: every pair kept, the per-process medians, the
    worst restore flag and peak RSS, and a stop that differs between processes shown as a
    range; a failed process fails the row."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import bench_torch

    def process(steps, times, bare, rss, rng_restored):
        return {
            "iterations": steps,
            "times": times,
            "bare_times": bare,
            "peak_rss_mb": rss,
            "weights_restored": True,
            "rng_restored": rng_restored,
        }

    outputs = iter(
        [
            process(87, [1.1, 1.3, 1.2], [1.0, 1.0, 1.0], 300.0, True),
            process(86, [2.0, 2.2, 2.1], [2.0, 2.0, 2.0], 310.0, False),
        ]
    )
    monkeypatch.setattr(bench_torch, "run_one", lambda finder, task, repeats: next(outputs))
    pooled = bench_torch.run_pooled("fastai", "linreg", 3, 2)
    assert pooled["times"] == [1.1, 1.3, 1.2, 2.0, 2.2, 2.1]
    assert pooled["bare_times"] == [1.0] * 3 + [2.0] * 3
    assert pooled["process_ratios"] == pytest.approx([1.2, 1.05])
    assert pooled["iterations"] == "86-87"
    assert pooled["peak_rss_mb"] == 310.0
    assert pooled["weights_restored"] is True and pooled["rng_restored"] is False

    failing = iter([{"iterations": 90, "times": [1.0], "bare_times": [1.0]}, {"error": "boom"}])
    monkeypatch.setattr(bench_torch, "run_one", lambda finder, task, repeats: next(failing))
    assert bench_torch.run_pooled("lrscope", "linreg", 3, 2) == {"error": "boom"}
