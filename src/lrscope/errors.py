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


def require(module: str, feature: str, extra: str) -> object:
    """Import an optional dependency or raise MissingDependencyError naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{feature} needs {module}: pip install 'lrscope[{extra}]'"
        ) from exc
