"""benchmarks/compare_revisions.py: HEAD's package imported beside this checkout's, both timed
against the bare loop; the table parses and says both gave the bare loop's losses."""

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import needs

pytestmark = [pytest.mark.torch, needs("torch")]

ROOT = Path(__file__).resolve().parents[1]


def test_compare_with_head_gives_one_row_per_revision_and_the_same_losses(tmp_path):
    out = tmp_path / "compare.md"
    done = subprocess.run(
        [
            sys.executable,
            "benchmarks/compare_revisions.py",
            "HEAD",
            "--repeats",
            "7",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    rows = [
        line.split("|")[1:-1]
        for line in out.read_text().splitlines()
        if line.startswith("| linreg")
    ]
    assert [row[2].strip() for row in rows] == ["this checkout", "HEAD"]
    for row in rows:
        finder_ms, bare_ms, ratio = float(row[3]), float(row[4]), float(row[6].strip().rstrip("x"))
        assert finder_ms > 0 and bare_ms > 0 and ratio > 0
        over, interval = row[5].split("(")
        low, high = (float(v) for v in interval.rstrip(") ").split(" to "))
        assert low <= float(over) <= high  # the median lies inside its own interval
        assert row[8].strip() == "yes"  # both revisions and the bare loop: the same losses
        assert row[9].strip() == "yes"  # and both revisions the same suggestion
    # this checkout - HEAD, repeat by repeat, on the checkout's row only
    change, interval = rows[0][7].split("(")
    low, high = (float(v) for v in interval.rstrip(") ").split(" to "))
    assert low <= float(change) <= high
    assert rows[1][7].strip() == ""
