"""Load a Trainer factory named by a string: ``path/to/file.py:function`` or ``module:function``.

The CLI's TARGET and the picklable factories of process-pool and Ray sweeps use this: a string
travels to another process where a closure or a live model cannot, and each worker builds its
own Trainer from it. Mistakes give one-line errors (missing file, missing function, a function
that does not return a Trainer).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lrscope.core.trainer import Trainer
from lrscope.errors import InvalidParameterError

_LOADED: dict[tuple[str, int], Any] = {}


def parse_target(spec: str) -> tuple[str, str]:
    """Split ``"file.py:function"`` / ``"module:function"`` into (location, function name)."""
    if not isinstance(spec, str) or ":" not in spec:
        raise InvalidParameterError(
            f"target {spec!r} must look like 'path/to/file.py:function' or 'module:function'"
        )
    location, _, name = spec.rpartition(":")
    if not location or not name.isidentifier():
        raise InvalidParameterError(
            f"target {spec!r} must look like 'path/to/file.py:function' or 'module:function'"
        )
    return location, name


def is_file_target(location: str) -> bool:
    return location.endswith(".py") or "/" in location or "\\" in location


def absolute_target(spec: str) -> str:
    """The same target with a file path made absolute (for workers with another cwd)."""
    location, name = parse_target(spec)
    if is_file_target(location):
        return f"{Path(location).resolve()}:{name}"
    return spec


def load_callable(spec: str) -> Callable[..., Any]:
    """Import the function a target names (a file is loaded once per process and mtime)."""
    location, name = parse_target(spec)
    if is_file_target(location):
        path = Path(location).resolve()
        if not path.is_file():
            raise InvalidParameterError(f"target {spec!r}: file {location} not found")
        key = (str(path), path.stat().st_mtime_ns)
        module = _LOADED.get(key)
        if module is None:
            digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
            module_name = f"lrscope_target_{path.stem}_{digest}"
            loader = importlib.util.spec_from_file_location(module_name, path)
            if loader is None or loader.loader is None:
                raise InvalidParameterError(f"target {spec!r}: cannot load {location} as Python")
            module = importlib.util.module_from_spec(loader)
            sys.modules[module_name] = module  # dataclasses and pickling look modules up here
            try:
                loader.loader.exec_module(module)
            except Exception as exc:
                sys.modules.pop(module_name, None)
                raise InvalidParameterError(
                    f"target {spec!r}: running {location} failed: {type(exc).__name__}: {exc}"
                ) from exc
            _LOADED[key] = module
    else:
        try:
            module = importlib.import_module(location)
        except ModuleNotFoundError as exc:
            raise InvalidParameterError(f"target {spec!r}: module {location} not found") from exc
    function = getattr(module, name, None)
    if function is None:
        raise InvalidParameterError(f"target {spec!r}: {location} has no function {name!r}")
    if not callable(function):
        raise InvalidParameterError(f"target {spec!r}: {name!r} is not callable")
    return function  # type: ignore[no-any-return]


def accepts_seed(function: Callable[..., Any]) -> bool:
    """True when ``function(seed=...)`` is a valid call."""
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return "seed" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


def build_trainer(factory: str | Callable[..., Any], seed: int | None = None) -> Trainer:
    """Call a factory (a target string or a callable), with ``seed=`` when given, and check
    that it returned a Trainer."""
    function = load_callable(factory) if isinstance(factory, str) else factory
    label = factory if isinstance(factory, str) else describe_callable(factory)
    if seed is not None and not accepts_seed(function):
        raise InvalidParameterError(
            f"target {label!r} must accept a `seed` keyword to run several seeds"
        )
    try:
        trainer = function() if seed is None else function(seed=seed)
    except Exception as exc:
        raise InvalidParameterError(
            f"target {label!r} raised while building the trainer: {type(exc).__name__}: {exc}"
        ) from exc
    missing = [n for n in ("run", "snapshot", "restore") if not callable(getattr(trainer, n, None))]
    if missing:
        raise InvalidParameterError(
            f"target {label!r} must return a Trainer (run, snapshot, restore); it returned "
            f"{type(trainer).__name__}, which lacks {', '.join(missing)}"
        )
    return trainer  # type: ignore[no-any-return]


def describe_callable(function: Callable[..., Any]) -> str:
    """``module:qualname`` of a callable: its identity in a results file's fingerprint."""
    module = getattr(function, "__module__", None) or "?"
    name = getattr(function, "__qualname__", None) or type(function).__name__
    return f"{module}:{name}"
