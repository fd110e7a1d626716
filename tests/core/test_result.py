import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrscope import RangeTestResult, ResultFormatError, range_test
from lrscope.lab.linreg import linreg_trainer


@pytest.fixture
def result(lesson_data):
    return range_test(
        linreg_trainer(lesson_data),
        start_lr=1e-4,
        end_lr=10.0,
        steps=100,
        lr_diverge=0.75,
        metadata={"framework": "numpy", "seed": 0},
    )


def test_json_round_trip_is_exact(result, tmp_path):
    back = RangeTestResult.from_json(result.to_json())
    assert back == result
    path = result.save(tmp_path / "r.json")
    assert RangeTestResult.load(path) == result


def test_json_is_strict_and_carries_suggestions(result):
    data = json.loads(result.to_json(), parse_constant=lambda c: pytest.fail(c))
    assert data["schema_version"] == 1 and data["kind"] == "range_test"
    assert set(data["suggestions"]) >= {"minimum", "min_div10", "steepest", "valley"}


def test_non_finite_values_survive_the_round_trip():
    r = RangeTestResult(
        lr=np.array([1e-3, 1e-2, 1e-1]),
        loss=np.array([1.0, np.inf, np.nan]),
        smooth_loss=np.array([1.0, np.nan, np.nan]),
        stop_reason="non_finite",
        stop_step=1,
        start_lr=1e-3,
        end_lr=1e-1,
        steps=3,
    )
    assert RangeTestResult.from_json(r.to_json()) == r
    assert '"inf"' in r.to_json()


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d.update(schema_version=99), "unsupported schema_version=99"),
        (lambda d: d.update(kind="sweep"), "expected kind='range_test'"),
        (lambda d: d.pop("lr"), "missing field `lr`"),
        (lambda d: d.update(loss=d["loss"][:-1]), "equal lengths"),
        (lambda d: d.update(lr="__import__('os')"), "field `lr` has the wrong type"),
        (lambda d: d["loss"].__setitem__(0, {"$ref": 1}), r"`loss\[0\]` must be a number"),
        (lambda d: d.update(stop_reason="exploded"), "`stop_reason` must be one of"),
        (lambda d: d.update(stop_step=10**9), "`stop_step` must be null or an int"),
        (lambda d: d["metadata"].update(x=[1, 2]), r"`metadata.x` must be a string"),
    ],
)
def test_malformed_json_gives_a_clear_error(result, mutate, match):
    data = json.loads(result.to_json())
    mutate(data)
    with pytest.raises(ResultFormatError, match=match):
        RangeTestResult.from_json(json.dumps(data))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "not valid JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"lr": NaN}', "bare NaN is not JSON"),
        ("[" * 100000 + "]" * 100000, "JSON"),
    ],
)
def test_hostile_text_gives_a_clear_error(text, match):
    with pytest.raises(ResultFormatError, match=match):
        RangeTestResult.from_json(text)


@settings(max_examples=50)
@given(st.binary(max_size=200))
def test_random_bytes_never_crash_the_loader(blob):
    try:
        RangeTestResult.from_json(blob)
    except ResultFormatError:
        pass


def test_save_is_atomic_and_leaves_no_temp_files(result, tmp_path):
    result.save(tmp_path / "r.json")
    result.save(tmp_path / "r.json")
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
