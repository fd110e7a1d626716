"""Strict, versioned JSON for results: exact floats, non-finite values as strings, no pickle.

JSON has no NaN or Infinity; Python's ``json`` writes them anyway and browsers then refuse the
file. We write them as the strings ``"nan"``, ``"inf"``, ``"-inf"`` and read them back. Finite
floats use Python's shortest round-trip repr, so a save/load cycle is bit-exact.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lrscope.errors import ResultFormatError

MAX_BYTES = 256 * 1024 * 1024
MAX_ITEMS = 10_000_000
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def encode_float(value: float | None) -> float | str | None:
    if value is None:
        return None
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def encode_array(values: np.ndarray) -> list[float | str | None]:
    return [encode_float(v) for v in np.asarray(values, dtype=np.float64).reshape(-1).tolist()]


def decode_float(value: object, where: str, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool):
        raise ResultFormatError(f"`{where}` must be a number, got a boolean")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value in _NONFINITE:
        return _NONFINITE[value]
    raise ResultFormatError(
        f"`{where}` must be a number or one of 'nan', 'inf', '-inf'; got {type(value).__name__}"
    )


def decode_array(value: object, where: str) -> np.ndarray:
    if not isinstance(value, list):
        raise ResultFormatError(f"`{where}` must be a list of numbers; got {type(value).__name__}")
    if len(value) > MAX_ITEMS:
        raise ResultFormatError(f"`{where}` has {len(value)} items; at most {MAX_ITEMS} allowed")
    return np.array(
        [decode_float(v, f"{where}[{i}]") for i, v in enumerate(value)], dtype=np.float64
    )


def get(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise ResultFormatError(f"{where}: missing field `{key}`")
    value = data[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        raise ResultFormatError(
            f"{where}: field `{key}` has the wrong type ({type(value).__name__})"
        )
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def check_header(data: object, kind: str, version: int) -> Mapping[str, Any]:
    """Check that ``data`` is an object of the expected ``kind`` and ``schema_version``."""
    if not isinstance(data, dict):
        raise ResultFormatError(f"a {kind} file must hold a JSON object; got {type(data).__name__}")
    if data.get("kind") != kind:
        raise ResultFormatError(f"expected kind={kind!r}, got kind={data.get('kind')!r}")
    found = data.get("schema_version")
    if found != version:
        raise ResultFormatError(
            f"unsupported schema_version={found!r} for {kind}; this lrscope reads {version}"
        )
    return data


def loads(text: str | bytes) -> Any:
    """Parse JSON text with a size cap and a clear error instead of a JSONDecodeError."""
    if len(text) > MAX_BYTES:
        raise ResultFormatError(f"result is {len(text)} bytes; at most {MAX_BYTES} allowed")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultFormatError(f"not valid JSON: {exc}") from None
    except RecursionError:
        raise ResultFormatError("not valid JSON: nested too deeply") from None


def _refuse_constant(name: str) -> float:
    raise ResultFormatError(f"bare {name} is not JSON; lrscope writes it as a string")


def dumps(data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=1, allow_nan=False)


def write_atomic(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temp file + rename: readers never see half a file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def read_text(path: str | os.PathLike[str]) -> str:
    target = Path(path)
    size = target.stat().st_size
    if size > MAX_BYTES:
        raise ResultFormatError(f"{target} is {size} bytes; at most {MAX_BYTES} allowed")
    return target.read_text(encoding="utf-8")


def check_metadata(value: object, where: str) -> dict[str, str | int | float | bool | None]:
    if not isinstance(value, dict):
        raise ResultFormatError(f"`{where}` must be an object")
    out: dict[str, str | int | float | bool | None] = {}
    for key, item in value.items():
        if not isinstance(item, (str, int, float, bool)) and item is not None:
            raise ResultFormatError(f"`{where}.{key}` must be a string, number, bool or null")
        out[str(key)] = item
    return out
