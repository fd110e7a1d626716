"""RangeTestResult: the measured curve of a range test, its suggestions, and its JSON form."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lrscope.core import jsonio
from lrscope.core.rules import DEFAULT_RULE, RULES, Suggestion, apply_rule
from lrscope.errors import ResultFormatError

SCHEMA_VERSION = 1
KIND = "range_test"
Metadata = dict[str, "str | int | float | bool | None"]


@dataclass(frozen=True, eq=False)
class RangeTestResult:
    """The outcome of one LR range test.

    Attributes:
        lr: LR used at each executed step, shape ``(n,)``.
        loss: raw training loss of each step, shape ``(n,)``; NaN/inf kept as measured.
        smooth_loss: debiased EMA of ``loss`` (NaN from the first non-finite loss on).
        stop_reason: ``"completed"``, ``"diverged"``, ``"non_finite"`` or ``"interrupted"``.
        stop_step: step at which the stop condition first held (None when completed).
        start_lr, end_lr, steps, mode: the requested ramp (``steps`` requested, ``n`` run).
        beta, diverge_factor: smoothing and stopping knobs used.
        lr_diverge: a known stability ceiling (e.g. 2/lambda_max for the lesson), or None.
        val_step, val_loss: held-out loss at some steps, when the trainer can evaluate.
        elapsed_s: wall time of the test.
        metadata: framework, optimizer, batch size, seed, versions... (JSON scalars).
    """

    lr: np.ndarray
    loss: np.ndarray
    smooth_loss: np.ndarray
    stop_reason: str
    stop_step: int | None
    start_lr: float
    end_lr: float
    steps: int
    mode: str = "exp"
    beta: float = 0.98
    diverge_factor: float = 3.0
    lr_diverge: float | None = None
    val_step: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    val_loss: np.ndarray = field(default_factory=lambda: np.zeros(0))
    elapsed_s: float = 0.0
    metadata: Metadata = field(default_factory=dict)

    # -- suggestions -------------------------------------------------------------------
    def suggest(self, rule: str | None = None) -> Suggestion:
        """The suggestion of ``rule`` (default: :data:`lrscope.core.rules.DEFAULT_RULE`).

        >>> result.suggest("min_div10").lr  # doctest: +SKIP
        0.0316
        """
        return apply_rule(rule or DEFAULT_RULE, self.lr, self.smooth_loss, self.loss)

    def suggestions(self, rules: list[str] | None = None) -> dict[str, Suggestion]:
        """Every rule's suggestion (or those named), keyed by rule name."""
        return {name: self.suggest(name) for name in (rules or list(RULES))}

    def quality(self) -> Any:
        """Quality flags and an interval for the default suggestion
        (:class:`lrscope.core.confidence.Quality`): how far to trust this curve."""
        from lrscope.core.confidence import assess

        return assess(self)

    @property
    def n_steps(self) -> int:
        """Number of steps actually run."""
        return int(self.lr.size)

    # -- plotting ----------------------------------------------------------------------
    def plot(self, ax: Any = None, rules: list[str] | None = None, show_raw: bool = True) -> Any:
        """LR (log x) vs loss, raw and smoothed, with each rule's suggestion marked.

        ``ax`` is a matplotlib Axes (default: the current one); returns the Axes drawn on.
        """
        from lrscope.viz.plots import plot_range_test

        return plot_range_test(self, ax=ax, rules=rules, show_raw=show_raw)

    def to_html(self, path: str | os.PathLike[str] | None = None) -> str:
        """The self-contained HTML report (plotly.js inlined, opens offline); written
        atomically to ``path`` when given. Returns the HTML text."""
        from lrscope.viz.report import to_html

        return to_html(self, path)

    def _repr_html_(self) -> str:
        """Notebook display: the interactive curve and the rules table (see
        :func:`lrscope.viz.report.repr_html` for the size)."""
        from lrscope.viz.report import repr_html

        return repr_html(self)

    def __repr__(self) -> str:
        """One line: what ran, how it ended and the default suggestion (the dataclass repr
        printed every array, hundreds of numbers, at a REPL prompt)."""
        if self.n_steps:
            ran = f"lr {self.lr[0]:.3g} -> {self.lr[-1]:.3g} ({self.mode})"
        else:
            ran = f"lr {self.start_lr:.3g} -> {self.end_lr:.3g} ({self.mode}), no step ran"
        ending = self.stop_reason
        if self.stop_reason == "non_finite":
            ending = "non-finite loss"
        if self.stop_reason != "completed" and self.stop_step is not None:
            ending += f" at step {self.stop_step}"
        parts = [f"{self.n_steps} of {self.steps} steps", ran, ending]
        meta = self.metadata or {}
        if meta.get("retest_reason") == "broke_down":
            parts.append(f"retested: the {meta.get('first_test_steps')}-step test broke down")
        try:
            found = self.suggest()
            parts.append(
                f"suggest(): {found.rule} {found.lr:.3g}"
                if found.lr is not None
                else f"suggest(): {found.rule} none"
            )
        except Exception:  # a repr never raises; the suggestion is left out
            pass
        return f"RangeTestResult({', '.join(parts)})"

    # -- equality ----------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RangeTestResult):
            return NotImplemented
        arrays = ("lr", "loss", "smooth_loss", "val_step", "val_loss")
        scalars = (
            "stop_reason",
            "stop_step",
            "start_lr",
            "end_lr",
            "steps",
            "mode",
            "beta",
            "diverge_factor",
            "lr_diverge",
            "elapsed_s",
            "metadata",
        )
        return all(
            np.array_equal(getattr(self, a), getattr(other, a), equal_nan=True) for a in arrays
        ) and all(getattr(self, s) == getattr(other, s) for s in scalars)

    __hash__ = None  # type: ignore[assignment]

    # -- JSON --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (schema ``range_test`` v1), suggestions included for readers."""
        return {
            "kind": KIND,
            "schema_version": SCHEMA_VERSION,
            "lr": jsonio.encode_array(self.lr),
            "loss": jsonio.encode_array(self.loss),
            "smooth_loss": jsonio.encode_array(self.smooth_loss),
            "stop_reason": self.stop_reason,
            "stop_step": self.stop_step,
            "start_lr": self.start_lr,
            "end_lr": self.end_lr,
            "steps": self.steps,
            "mode": self.mode,
            "beta": self.beta,
            "diverge_factor": self.diverge_factor,
            "lr_diverge": jsonio.encode_float(self.lr_diverge),
            "val_step": [int(s) for s in self.val_step],
            "val_loss": jsonio.encode_array(self.val_loss),
            "elapsed_s": self.elapsed_s,
            "metadata": dict(self.metadata),
            "default_rule": DEFAULT_RULE,
            "suggestions": {name: s.lr for name, s in self.suggestions().items()},
            "suggestion_reasons": {name: s.reason for name, s in self.suggestions().items()},
        }

    def to_json(self) -> str:
        return jsonio.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: object) -> RangeTestResult:
        """Rebuild a result from :meth:`to_dict` output, validating every field."""
        data = jsonio.check_header(data, KIND, SCHEMA_VERSION)
        where = "range_test"
        lr = jsonio.decode_array(jsonio.get(data, "lr", list, where), "lr")
        loss = jsonio.decode_array(jsonio.get(data, "loss", list, where), "loss")
        smooth = jsonio.decode_array(jsonio.get(data, "smooth_loss", list, where), "smooth_loss")
        if not lr.size == loss.size == smooth.size:
            raise ResultFormatError(
                f"`lr`, `loss` and `smooth_loss` must have equal lengths; got "
                f"{lr.size}, {loss.size}, {smooth.size}"
            )
        stop_reason = jsonio.get(data, "stop_reason", str, where)
        from lrscope.core.stopping import STOP_REASONS

        if stop_reason not in STOP_REASONS:
            raise ResultFormatError(
                f"`stop_reason` must be one of {STOP_REASONS}; got {stop_reason!r}"
            )
        stop_step = data.get("stop_step")
        if stop_step is not None and (
            not isinstance(stop_step, int)
            or isinstance(stop_step, bool)
            or not 0 <= stop_step <= lr.size
        ):
            raise ResultFormatError(f"`stop_step` must be null or an int in [0, {lr.size}]")
        val_step_raw = jsonio.get(data, "val_step", list, where) if "val_step" in data else []
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in val_step_raw):
            raise ResultFormatError("`val_step` must be a list of integers")
        val_loss = jsonio.decode_array(data.get("val_loss", []), "val_loss")
        if len(val_step_raw) != val_loss.size:
            raise ResultFormatError("`val_step` and `val_loss` must have equal lengths")
        steps = jsonio.get(data, "steps", int, where)
        mode = jsonio.get(data, "mode", str, where)
        return cls(
            lr=lr,
            loss=loss,
            smooth_loss=smooth,
            stop_reason=stop_reason,
            stop_step=stop_step,
            start_lr=float(jsonio.get(data, "start_lr", (int, float), where)),
            end_lr=float(jsonio.get(data, "end_lr", (int, float), where)),
            steps=steps,
            mode=mode,
            beta=float(jsonio.get(data, "beta", (int, float), where)),
            diverge_factor=float(jsonio.get(data, "diverge_factor", (int, float), where)),
            lr_diverge=jsonio.decode_float(data.get("lr_diverge"), "lr_diverge", optional=True),
            val_step=np.array(val_step_raw, dtype=np.int64),
            val_loss=val_loss,
            elapsed_s=float(jsonio.get(data, "elapsed_s", (int, float), where)),
            metadata=jsonio.check_metadata(data.get("metadata", {}), "metadata"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> RangeTestResult:
        """Parse :meth:`to_json` output; malformed or hostile input raises ResultFormatError."""
        return cls.from_dict(jsonio.loads(text))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the JSON atomically to ``path`` and return it."""
        return jsonio.write_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RangeTestResult:
        """Read a result saved with :meth:`save`."""
        return cls.from_json(jsonio.read_text(path))
