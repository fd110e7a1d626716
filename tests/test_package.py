import doctest
import importlib
import subprocess
import sys

import pytest

import lrscope

HEAVY = ["torch", "tensorflow", "keras", "jax", "optax", "ray", "matplotlib", "plotly"]


def test_import_loads_no_framework_and_no_plotting_library():
    code = (
        "import sys, lrscope, lrscope.cli; "
        f"print([m for m in sys.modules if m.split('.')[0] in {HEAVY!r}])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout.strip()
    assert out == "[]"


def test_all_is_complete_without_duplicates():
    # the order itself is enforced by ruff (RUF022)
    assert len(set(lrscope.__all__)) == len(lrscope.__all__)
    public = {
        name
        for name in vars(lrscope)
        if not name.startswith("_") and not type(getattr(lrscope, name)).__name__ == "module"
    }
    public.discard("annotations")
    assert public | {"__version__"} == set(lrscope.__all__)


def test_core_imports_nothing_but_numpy_and_stdlib():
    import pathlib

    core = pathlib.Path(lrscope.__file__).parent / "core"
    for path in core.glob("*.py"):
        text = path.read_text()
        for name in HEAVY:
            assert f"import {name}" not in text and f"from {name}" not in text, path


@pytest.mark.parametrize(
    "module",
    [
        "lrscope.core.ramp",
        "lrscope.core.smoothing",
        "lrscope.adapters.stepfn",
        "lrscope.lab.linreg",
        "lrscope.lab.lesson",
        "lrscope.viz.text",
    ],
)
def test_docstring_examples_run(module):
    mod = importlib.import_module(module)
    failures, _tried = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert failures == 0
