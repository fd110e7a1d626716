"""The raw snapshot of NumPy's legacy global RNG: read from memory, checked against the public
``get_state()`` in every state it can be in, and put back only through ``set_state``."""

import numpy as np
import pytest

from lrscope.adapters import numpy_rng


def _legacy() -> tuple:
    """``np.random.get_state()`` with the key as bytes, comparable with ==."""
    name, key, pos, has_gauss, gauss = np.random.get_state()  # noqa: NPY002
    return name, key.tobytes(), pos, has_gauss, gauss


def _draw(kind: str) -> None:
    if kind == "uniform":
        np.random.random(3)  # noqa: NPY002
    elif kind == "one normal":  # takes a cached value, or draws a pair and caches one
        np.random.standard_normal()  # noqa: NPY002


@pytest.fixture
def fresh_probe(monkeypatch):
    """The Gaussian cache's offset looked for again, as on the first snapshot of a process."""
    monkeypatch.setattr(numpy_rng, "_gauss_offset", numpy_rng._UNKNOWN)


@pytest.mark.parametrize("normals_before", [0, 1, 2, 3])
def test_raw_state_is_get_state_read_from_memory(fresh_probe, normals_before):
    np.random.seed(7)  # noqa: NPY002
    for _ in range(normals_before):
        _draw("one normal")
    raw = numpy_rng._raw_state()
    assert raw is not None  # readable on the NumPy this project pins
    assert raw == numpy_rng._from_legacy(np.random.get_state())  # noqa: NPY002
    assert raw.has_gauss == normals_before % 2


@pytest.mark.parametrize("cached_before", [False, True])
@pytest.mark.parametrize("during", ["nothing", "uniform", "one normal", "normals then seed"])
def test_restore_puts_back_every_state_bit_for_bit(cached_before, during):
    np.random.seed(3)  # noqa: NPY002
    if cached_before:
        _draw("one normal")
    before = _legacy()
    saved = numpy_rng.snapshot()
    assert isinstance(saved, numpy_rng.RawState)
    if during == "normals then seed":
        for _ in range(5):
            _draw("one normal")
        np.random.seed(99)  # noqa: NPY002
    else:
        _draw(during)
    numpy_rng.restore(saved)
    assert _legacy() == before
    # and the generator goes on as it would have
    expected = np.random.standard_normal(4)  # noqa: NPY002
    numpy_rng.restore(saved)
    assert np.random.standard_normal(4).tobytes() == expected.tobytes()  # noqa: NPY002


@pytest.mark.parametrize(
    ("cached_before", "during", "sets"),
    [
        (False, "nothing", 0),
        (True, "nothing", 0),  # a pending cached value that nobody took: nothing to put back
        (True, "one normal", 1),  # took the cached value: the words did not move
        (False, "uniform", 1),
    ],
)
def test_restore_calls_set_state_only_when_the_state_changed(
    monkeypatch, cached_before, during, sets
):
    np.random.seed(5)  # noqa: NPY002
    if cached_before:
        _draw("one normal")
    calls = []
    set_state = np.random.set_state
    monkeypatch.setattr(np.random, "set_state", lambda state: calls.append(set_state(state)))
    saved = numpy_rng.snapshot()
    _draw(during)
    numpy_rng.restore(saved)
    assert len(calls) == sets


def test_the_views_follow_a_replaced_global_generator(monkeypatch):
    """The ctypes arrays are made for one RandomState; if the global one is another object
    (replaced, or its bit generator swapped), they are made again for it."""
    np.random.seed(4)  # noqa: NPY002
    first = numpy_rng.snapshot()
    other = np.random.RandomState(8)
    other.standard_normal()  # a cached Gaussian, unlike the global one
    monkeypatch.setattr(np.random.mtrand, "_rand", other)
    raw = numpy_rng._raw_state()
    assert raw == numpy_rng._from_legacy(other.get_state()) != first
    assert numpy_rng._views is not None and numpy_rng._views.rand is other
    other._bit_generator = np.random.MT19937(9)
    assert numpy_rng._raw_state() == numpy_rng._from_legacy(other.get_state())
    assert numpy_rng._views.generator is other._bit_generator
    # another RandomState over the same bit generator: same words, its own Gaussian cache
    sharing = np.random.RandomState(other._bit_generator)
    monkeypatch.setattr(np.random.mtrand, "_rand", sharing)
    assert numpy_rng._raw_state() == numpy_rng._from_legacy(sharing.get_state())
    assert numpy_rng._raw_state().has_gauss == 0 != numpy_rng._from_legacy(other.get_state())[1]


def test_an_offset_that_does_not_read_the_global_state_is_not_trusted(fresh_probe, monkeypatch):
    """If the probe finds the wrong place (another layout), the check against get_state() on
    the global RNG refuses it and the public API is used instead."""
    monkeypatch.setattr(numpy_rng, "_probe_gauss_offset", lambda: 0)  # the object's header
    np.random.seed(1)  # noqa: NPY002
    _draw("one normal")
    saved = numpy_rng.snapshot()
    assert numpy_rng._gauss_offset is None
    assert isinstance(saved, tuple) and not isinstance(saved, numpy_rng.RawState)
    before = _legacy()
    _draw("one normal")
    numpy_rng.restore(saved)
    assert _legacy() == before


def test_without_a_readable_layout_the_snapshot_is_get_state(monkeypatch):
    monkeypatch.setattr(numpy_rng, "_gauss_offset", None)
    np.random.seed(2)  # noqa: NPY002
    saved = numpy_rng.snapshot()
    assert saved[0] == "MT19937" and len(saved) == 5
    before = _legacy()
    _draw("uniform")
    numpy_rng.restore(saved)
    assert _legacy() == before
