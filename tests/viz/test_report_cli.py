"""``lrscope report``: result files of every kind in, one HTML page out; bad files -> one
line on stderr and exit code 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lrscope import range_test, run_lesson, verify
from lrscope.cli import main
from lrscope.lab.linreg import linreg_trainer, make_data
from lrscope.landscape import ArrayLoss, LandscapeResult, plane_slice


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("results")
    lesson = run_lesson(lrs=[0.1, 1.0], steps=50)
    rt = range_test(linreg_trainer(make_data()), start_lr=1e-3, end_lr=10.0, steps=60)
    model = ArrayLoss(lambda p: float((p["w"] ** 2).sum()), {"w": np.ones((2, 2))})
    unit = {"w": np.eye(2)}
    landscape = plane_slice(model, unit, {"w": np.ones((2, 2))}, points=5)
    return {
        "lesson": lesson.save(folder / "lesson.json"),
        "range_test": rt.save(folder / "rt.json"),
        "landscape": landscape.save(folder / "landscape.json"),
    }


def test_report_writes_one_page_with_every_result(files, tmp_path, capsys):
    out = tmp_path / "sub" / "report.html"
    code = main(["report", *map(str, files.values()), "-o", str(out), "--title", "My <run>"])
    assert code == 0
    text = out.read_text()
    assert "<title>My &lt;run&gt;</title>" in text
    for section in ("class='lesson'", "class='range-test'", "class='landscape'"):
        assert section in text
    # lesson (5 plots incl. its range test) + range test (1) + landscape (2)
    assert text.count('class="lrscope-plot') == 8
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "MB" in printed


def test_report_reads_a_sweep_file(tmp_path, capsys):
    sweep_mod = pytest.importorskip("lrscope.core.sweep")
    from test_report import lesson_sweep

    sweep = lesson_sweep()
    assert isinstance(sweep, sweep_mod.SweepResult)
    path = sweep.save(tmp_path / "sweep.json")
    assert main(["report", str(path), "-o", str(tmp_path / "s.html")]) == 0
    assert "class='sweep'" in (tmp_path / "s.html").read_text()


def test_report_reads_a_folder_like_find_writes_it_verify_included(tmp_path, capsys):
    # what `lrscope find --budget N --out run` leaves: range_test.json, verify.json (and a PNG)
    folder = tmp_path / "run"
    folder.mkdir()
    trainer = linreg_trainer(make_data())
    rt = range_test(trainer, start_lr=1e-3, end_lr=10.0, steps=60)
    rt.save(folder / "range_test.json")
    verify(trainer, around=rt, steps=20).save(folder / "verify.json")
    (folder / "range_test.png").write_bytes(b"\x89PNG not read")
    out = tmp_path / "r.html"
    assert main(["report", str(folder), "-o", str(out)]) == 0
    text = out.read_text()
    assert "class='range-test'" in text and "class='verify'" in text
    assert text.index("class='range-test'") < text.index("class='verify'")  # name order
    assert text.count('class="lrscope-plot') == 1 + 2
    # the same page as naming the two files
    again = tmp_path / "again.html"
    files = [str(folder / "range_test.json"), str(folder / "verify.json")]
    assert main(["report", *files, "-o", str(again)]) == 0
    assert again.read_text() == text
    capsys.readouterr()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(empty), "-o", str(tmp_path / "e.html")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a folder with no *.json result file" in err
    assert not (tmp_path / "e.html").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("not json", "not valid JSON"),
        ('{"kind": "pizza"}', "unknown result kind 'pizza'"),
        ("[1, 2]", "unknown result kind None"),
        ('{"kind": "range_test", "schema_version": 1}', "missing field `lr`"),
        ('{"kind": "landscape", "schema_version": 99}', "unsupported schema_version=99"),
        ('{"kind": "verify", "schema_version": 1}', "missing field `lrs`"),
        ('{"kind": "range_test", "lr": [NaN]}', "bare NaN"),
    ],
)
def test_bad_files_give_one_line_and_exit_2(tmp_path, capsys, content, message):
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    code = main(["report", str(path), "-o", str(tmp_path / "r.html")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("lrscope report: error: ") and err.count("\n") == 1, err
    assert message in err
    assert not (tmp_path / "r.html").exists()  # nothing half-written


def test_binary_file_and_bad_output_name_are_one_line_errors(files, tmp_path, capsys):
    binary = tmp_path / "x.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert main(["report", str(binary), "-o", str(tmp_path / "r.html")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["report", str(files["lesson"]), "-o", str(tmp_path / "r.png")]) == 2
    assert "must end in .html" in capsys.readouterr().err


def test_landscape_file_round_trips_through_the_cli_loader(files):
    from lrscope.commands.report import load_result

    loaded = load_result(files["landscape"])
    assert isinstance(loaded, LandscapeResult) and loaded.loss.shape == (5, 5)
    data = json.loads(files["landscape"].read_text())
    assert data["kind"] == "landscape" and data["schema_version"] == 1


def test_demo_writes_the_report_next_to_demo_json(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--steps", "30", "--lr", "0.1", "--lr", "10"]) == 0
    text = (tmp_path / "report.html").read_text()
    assert "class='lesson'" in text and "class='range-test'" in text
    assert "report.html" in capsys.readouterr().out
    assert main(["demo", "--out", str(tmp_path / "quiet"), "--steps", "5", "--no-plots"]) == 0
    assert not (tmp_path / "quiet" / "report.html").exists()
