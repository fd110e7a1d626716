import json
import os
import subprocess
import sys

import pytest

from lrscope.cli import main


def run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "lrscope.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


@pytest.mark.slow
def test_demo_subprocess_prints_the_table_and_writes_the_files(tmp_path):
    proc = run_cli("demo", "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for expected in (
        "crawling",
        "converging",
        "oscillating-converging",
        "overflowed to NaN at",
        "2/lambda_max",
        "min_div10",
        "In plain words",
    ):
        assert expected in out
    assert proc.stderr == ""  # no warning spam from the overflowing runs
    data = json.loads((tmp_path / "out" / "demo.json").read_text())
    assert {"runs", "closed_form", "stability", "range_test"} <= set(data)
    for run in data["runs"]:
        assert {"lr", "steps", "w", "b", "final_loss", "regime", "diverged_at_step"} <= set(run)
    assert set(data["closed_form"]) == {"w", "b"}
    assert {"lambda_max", "lambda_min", "lr_diverge", "lr_best"} <= set(data["stability"])
    rt = data["range_test"]
    assert {"lr", "loss", "smooth_loss", "stop_reason", "suggestions"} <= set(rt)
    assert data["runs"][-1]["regime"] == "overflowed" and data["runs"][-1]["diverged_at_step"] > 0
    for name in ("data_fit", "loss_vs_step", "range_test", "loss_bowl"):
        png = (tmp_path / "out" / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_demo_options_change_the_runs(tmp_path, capsys):
    assert (
        main(
            [
                "demo",
                "--out",
                str(tmp_path),
                "--lr",
                "0.2",
                "--lr",
                "2",
                "--steps",
                "30",
                "--seed",
                "3",
                "--no-plots",
            ]
        )
        == 0
    )
    data = json.loads((tmp_path / "demo.json").read_text())
    assert [r["lr"] for r in data["runs"]] == [0.2, 2.0]
    assert all(r["steps"] == 30 for r in data["runs"])
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demo", "--lr", "-1"], "argument --lr: must be a positive finite number (got '-1')"),
        (["demo", "--steps", "0"], "argument --steps: must be an integer >= 1 (got '0')"),
        (["demo", "--start-lr", "1", "--end-lr", "0.1"], "must be greater than --start-lr"),
        (["demo", "--lr", "abc"], "argument --lr: must be a positive number (got 'abc')"),
        (["demo", "--range-steps", "1"], "argument --range-steps: must be >= 2"),
        (["nonsense"], "invalid choice: 'nonsense'"),
    ],
)
def test_bad_options_give_one_line_and_exit_2(args, message, tmp_path):
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_unwritable_out_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = run_cli("demo", "--out", str(blocker / "sub"), "--no-plots")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


def test_version_and_help():
    from lrscope import __version__

    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"lrscope {__version__}"
    proc = run_cli("--help")
    assert proc.returncode == 0 and "demo" in proc.stdout


def test_console_script_is_installed():
    exe = os.path.join(os.path.dirname(sys.executable), "lrscope")
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
