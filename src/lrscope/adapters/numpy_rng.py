"""An exact, cheap snapshot of NumPy's legacy global RNG (``np.random.seed``, ``np.random.*``).

A training step may draw from it (augmentations, datasets), so a range test must put it back.
``np.random.get_state()`` copies the generator's 624 words one by one (~50-80 us, the largest
part of a small model's snapshot); read as raw bytes the same state costs ~2 us:

- the MT19937 words and position, at the bit generator's public ``ctypes.state_address``
  (NumPy's ``mt19937_state`` struct: ``uint32_t key[624]; int pos``);
- the legacy Gaussian cache (``has_gauss``, ``gauss``) that ``RandomState`` keeps beside it: a
  legacy normal draw takes a cached value without moving the words, so the words alone cannot
  tell whether the state changed. Its byte offset inside a ``RandomState`` is found once, by
  reading a private ``RandomState`` in four known states, and checked against
  ``get_state()`` on the global one before it is trusted.

The two places are read through ctypes arrays made once per process at those addresses (kept
with references to the objects that own the memory, and remade if either object is another):
a copy of such an array skips the foreign-function call of each ``ctypes.string_at``. Only
reads use raw memory; a state that changed is put back through ``np.random.set_state``.
Where a read is not possible (another bit generator, another NumPy layout), the snapshot is
``np.random.get_state()`` and the restore always sets it, as before.
"""

from __future__ import annotations

import ctypes
import struct
import sys
from typing import Any, NamedTuple

import numpy as np

#: Bytes of NumPy's ``mt19937_state`` struct: ``uint32_t key[624]; int pos``.
_MT_WORDS = 624
_MT_BYTES = _MT_WORDS * 4 + 4
#: ``has_gauss`` (int) and ``gauss`` (double) as ``aug_bitgen_t`` lays them out.
_GAUSS = struct.Struct("i4xd")
_UNKNOWN = -1  # the Gaussian cache's offset has not been looked for yet


class RawState(NamedTuple):
    """The legacy global RNG's state as raw values (see the module docstring)."""

    words: bytes  # key[624] and pos, as NumPy's struct holds them
    has_gauss: int
    gauss: float


_gauss_offset = _UNKNOWN  # its byte offset in a RandomState; None: not readable here


class _Views(NamedTuple):
    """ctypes arrays over the global RNG's words and Gaussian cache, with the objects that own
    that memory (held, so the addresses stay valid) and the offset they were made for."""

    rand: Any
    generator: Any
    offset: int
    words: Any
    gauss: Any


_views: _Views | None = None


def _global() -> Any:
    return np.random.mtrand._rand


def _probe_gauss_offset() -> int | None:
    """The one byte offset at which a ``RandomState`` holds ``(has_gauss, gauss)`` in each of
    four known states (no cache, a cached value, none, another value), or None."""
    probe = np.random.RandomState(20261203)  # the layout under test
    size = type(probe).__basicsize__
    offsets = set(range(0, size - _GAUSS.size + 1, 8))
    for _ in range(4):
        state = probe.get_state()
        memory = ctypes.string_at(id(probe), size)
        offsets = {o for o in offsets if _GAUSS.unpack_from(memory, o) == (state[3], state[4])}
        probe.standard_normal()  # takes the cached value, or draws a pair and caches one
    return offsets.pop() if len(offsets) == 1 else None


def _read(rand: Any, offset: int) -> RawState | None:
    global _views
    views = _views
    if (
        views is None
        or views.rand is not rand
        or views.generator is not rand._bit_generator
        or views.offset != offset
    ):
        generator = rand._bit_generator
        if type(generator).__name__ != "MT19937":
            return None
        views = _views = _Views(
            rand,
            generator,
            offset,
            (ctypes.c_char * _MT_BYTES).from_address(generator.ctypes.state_address),
            (ctypes.c_char * _GAUSS.size).from_address(id(rand) + offset),
        )
    has_gauss, gauss = _GAUSS.unpack(views.gauss.raw)
    return RawState(views.words.raw, has_gauss, gauss)


def _raw_state() -> RawState | None:
    """The global RNG's raw state, or None where it cannot be read this way."""
    global _gauss_offset
    rand = _global()
    if type(rand) is not np.random.RandomState:
        return None
    if _gauss_offset == _UNKNOWN:
        try:
            offset = _probe_gauss_offset()
            raw = None if offset is None else _read(rand, offset)
        except Exception:  # another layout: always the public API
            offset, raw = None, None
        if raw is not None and raw != _from_legacy(rand.get_state()):
            offset = None  # the probe found something, but not this: do not trust it
        _gauss_offset = offset
    if _gauss_offset is None:
        return None
    return _read(rand, _gauss_offset)


def _from_legacy(state: tuple[Any, ...]) -> RawState:
    """``get_state()``'s tuple as a :class:`RawState`."""
    _, key, pos, has_gauss, gauss = state
    words = np.asarray(key, dtype=np.uint32).tobytes() + int(pos).to_bytes(
        4, sys.byteorder, signed=True
    )
    return RawState(words, int(has_gauss), float(gauss))


def _to_legacy(raw: RawState) -> tuple[Any, ...]:
    """A :class:`RawState` as the tuple ``np.random.set_state`` takes."""
    key = np.frombuffer(raw.words, dtype=np.uint32, count=_MT_WORDS).copy()
    pos = int.from_bytes(raw.words[_MT_WORDS * 4 :], sys.byteorder, signed=True)
    return ("MT19937", key, pos, raw.has_gauss, raw.gauss)


def snapshot() -> RawState | tuple[Any, ...]:
    """The global legacy RNG's state: raw (~2 us) where readable, else ``get_state()``."""
    raw = _raw_state()
    return np.random.get_state() if raw is None else raw  # noqa: NPY002


def restore(saved: RawState | tuple[Any, ...]) -> None:
    """Put back a :func:`snapshot`; ``np.random.set_state`` (~70 us) only when the state
    changed since."""
    if isinstance(saved, RawState):
        if _raw_state() != saved:
            np.random.set_state(_to_legacy(saved))  # noqa: NPY002
    else:
        np.random.set_state(saved)  # noqa: NPY002
