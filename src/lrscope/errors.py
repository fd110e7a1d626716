"""The exceptions lrscope raises.

Exception tree::

    LRScopeError                      base of everything lrscope raises on purpose
    ├── InvalidParameterError         a bad argument (also a ValueError)
    ├── ResultFormatError             a result file that is malformed or hostile (also a ValueError)
    ├── TrainerError                  a Trainer broke the protocol (wrong shape, wrong type)
    └── MissingDependencyError        an optional framework is not installed (also an ImportError)

Divergence is not an exception: it is ``RangeTestResult.stop_reason == "diverged"`` (or
``"non_finite"``), unless the caller opts in with ``raise_on_divergence=True``, which raises
:class:`DivergenceError` (a ``LRScopeError``) after the state has been restored.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any


class LRScopeError(Exception):
    """Base class of every error lrscope raises on purpose."""


class InvalidParameterError(LRScopeError, ValueError):
    """An argument is outside what is allowed; the message names it and the allowed values."""


class ResultFormatError(LRScopeError, ValueError):
    """A result file (JSON) is malformed, of an unknown schema version, or hostile."""


class TrainerError(LRScopeError):
    """A Trainer broke the protocol (e.g. ``run`` returned the wrong number of losses)."""


class DivergenceError(LRScopeError):
    """Raised only with ``raise_on_divergence=True``; carries the (restored-from) result."""

    def __init__(self, message: str, result: object) -> None:
        super().__init__(message)
        self.result = result


class MissingDependencyError(LRScopeError, ImportError):
    """An optional dependency is needed for a feature; the message names the pip extra."""


def invalid(argument: str, requirement: str, **received: object) -> InvalidParameterError:
    """Build the house-style error: ``Argument `x` must be ... Received: x=...``."""
    got = ", ".join(f"{name}={value!r}" for name, value in received.items())
    return InvalidParameterError(f"Argument `{argument}` {requirement}. Received: {got}")


def wrong_call(
    argument: str, fn: Callable[..., Any], count: int, requirement: str
) -> InvalidParameterError | None:
    """The house-style error, with ``fn``'s signature, when ``fn`` cannot be called with
    ``count`` positional arguments; None when it can, or when its signature cannot be read
    (some builtins: the call decides). Checked before a test runs: inside it, Python's own
    "takes 0 positional arguments" names neither the argument nor what it should be."""
    try:
        signature = inspect.signature(fn)
        signature.bind(*([None] * count))
    except TypeError:
        name = getattr(fn, "__name__", type(fn).__name__)
        return invalid(argument, requirement, signature=f"{name}{signature}")
    except ValueError:
        return None
    return None


def require(module: str, feature: str, extra: str) -> object:
    """Import an optional dependency or raise MissingDependencyError naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{feature} needs {module}: pip install 'lrscope[{extra}]'"
        ) from exc
