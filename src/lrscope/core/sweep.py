"""The LR x steps map: one fixed-LR run per candidate LR, every step budget read off at once.

A range test answers "where does training blow up?"; it does not answer "which LR for MY
number of steps?". A sweep does, at the cost of one run per candidate LR: run ``i`` trains
``steps`` steps at ``lrs[i]`` from the same initial state, and its loss-vs-step curve gives
the loss reached for every budget ``1..steps``. :class:`SweepResult` holds the curves and
answers ``best_lr(budget)``.

This module is NumPy + stdlib only. The driver that dispatches runs to engines (in process,
process pool, Ray) is :func:`lrscope.sweep`; this module holds what one run does
(:func:`run_one`), what it produces (:class:`RunRecord`) and the assembled result.
"""

from __future__ import annotations

import math
import os
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lrscope.core import jsonio
from lrscope.core.rangetest import _as_losses, _check_trainer_shape, auto_chunk
from lrscope.core.smoothing import smooth_loss
from lrscope.core.stopping import check_stop
from lrscope.core.trainer import NEEDS_EVALUATE, Trainer
from lrscope.errors import ResultFormatError, invalid

SCHEMA_VERSION = 1
KIND = "sweep"

#: How a run ended: trained every step, stopped after diverging, raised, or never ran
#: (the sweep was interrupted first).
RUN_STATUSES = ("ok", "diverged", "error", "missing")

#: Default number of trailing training-loss steps averaged by :meth:`SweepResult.best_lr`.
DEFAULT_WINDOW = 5

#: Default relative tolerance of the "as good as the best" band.
DEFAULT_TOL = 0.05

Metadata = dict[str, "str | int | float | bool | None"]


# -- candidate LRs ---------------------------------------------------------------------------
def lr_grid(start: float, stop: float, points: int) -> np.ndarray:
    """``points`` LRs evenly spaced in log10 from ``start`` to ``stop`` (both included).

    >>> lr_grid(1e-3, 1e-1, 3)
    array([0.001, 0.01 , 0.1  ])
    """
    if not (math.isfinite(start) and start > 0):
        raise invalid("start", "must be a positive finite number", start=start)
    if not (math.isfinite(stop) and stop > start):
        raise invalid("stop", "must be finite and greater than `start`", start=start, stop=stop)
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        raise invalid("points", "must be an integer >= 2", points=points)
    return np.geomspace(start, stop, points)


def lr_grid_around(center: Any, decades: float = 1.0, points: int = 7) -> np.ndarray:
    """A log grid ``center x 10^[-decades .. +decades]`` (``points`` LRs, center included
    when ``points`` is odd).

    ``center`` is a float or a range-test result (anything with ``.suggest().lr``, e.g. a
    :class:`~lrscope.RangeTestResult`; its default rule's suggestion is used). A sweep after
    ``find_lr`` therefore costs a handful of runs around the LR the range test pointed at.
    """
    value = center
    if hasattr(center, "suggest"):
        suggestion = center.suggest()
        if suggestion.lr is None:
            raise invalid(
                "around",
                "must be a range-test result with a suggestion (its default rule found none: "
                f"{suggestion.reason})",
                around=type(center).__name__,
            )
        value = suggestion.lr
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise invalid("around", "must be a positive float or a RangeTestResult", around=center)
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise invalid("around", "must be a positive finite LR", around=value)
    if not (math.isfinite(decades) and decades > 0):
        raise invalid("decades", "must be a positive finite number", decades=decades)
    return lr_grid(value * 10.0**-decades, value * 10.0**decades, points)


def check_lrs(lrs: object) -> np.ndarray:
    """Validate candidate LRs: a non-empty 1-D sequence of distinct positive finite floats."""
    try:
        values = np.asarray(lrs, dtype=np.float64)
    except (TypeError, ValueError):
        raise invalid("lrs", "must be a sequence of positive numbers", lrs=lrs) from None
    if values.ndim != 1 or values.size == 0:
        raise invalid("lrs", "must be a non-empty 1-D sequence of learning rates", lrs=lrs)
    if not (np.all(np.isfinite(values)) and np.all(values > 0)):
        raise invalid("lrs", "must hold positive finite learning rates only", lrs=values.tolist())
    if np.unique(values).size != values.size:
        raise invalid("lrs", "must not repeat a learning rate", lrs=values.tolist())
    return values


# -- one run ---------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class RunRecord:
    """What one fixed-LR run produced; the unit an engine returns and the results file stores.

    Attributes:
        lr_index, seed_index: position in the sweep's ``lrs`` and ``seeds``.
        lr: the learning rate (equal to ``lrs[lr_index]``).
        seed: the seed the trainer factory got (None when the trainer was not seeded).
        loss: training loss of each executed step, shape ``(n,)``, ``n <= steps``.
        eval_step, val_loss: held-out loss after ``eval_step[j]`` steps, when evaluated.
        diverged_at: first step index at which the run counted as diverged, or None.
        wall_s: wall time of the run (training + evaluation; not trainer construction).
        error: ``"ExceptionType: message"`` when the run raised, else None.
    """

    lr_index: int
    seed_index: int
    lr: float
    seed: int | None
    loss: np.ndarray
    eval_step: np.ndarray
    val_loss: np.ndarray
    diverged_at: int | None
    wall_s: float
    error: str | None = None

    @property
    def status(self) -> str:
        if self.error is not None:
            return "error"
        return "diverged" if self.diverged_at is not None else "ok"

    def to_dict(self) -> dict[str, Any]:
        return {
            "lr_index": self.lr_index,
            "seed_index": self.seed_index,
            "lr": self.lr,
            "seed": self.seed,
            "loss": jsonio.encode_array(self.loss),
            "eval_step": [int(s) for s in self.eval_step],
            "val_loss": jsonio.encode_array(self.val_loss),
            "diverged_at": self.diverged_at,
            "wall_s": jsonio.encode_float(self.wall_s),
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: object) -> RunRecord:
        if not isinstance(data, dict):
            raise ResultFormatError(f"a run record must be a JSON object; got {type(data)}")
        where = "run"
        eval_step = _int_list(jsonio.get(data, "eval_step", list, where), "eval_step")
        val_loss = jsonio.decode_array(jsonio.get(data, "val_loss", list, where), "val_loss")
        if eval_step.size != val_loss.size:
            raise ResultFormatError("a run's `eval_step` and `val_loss` must have equal lengths")
        seed = data.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ResultFormatError("a run's `seed` must be null or an integer")
        diverged = data.get("diverged_at")
        if diverged is not None and (not isinstance(diverged, int) or isinstance(diverged, bool)):
            raise ResultFormatError("a run's `diverged_at` must be null or an integer")
        error = data.get("error")
        if error is not None and not isinstance(error, str):
            raise ResultFormatError("a run's `error` must be null or a string")
        return cls(
            lr_index=int(jsonio.get(data, "lr_index", int, where)),
            seed_index=int(jsonio.get(data, "seed_index", int, where)),
            lr=float(jsonio.get(data, "lr", (int, float), where)),
            seed=seed,
            loss=jsonio.decode_array(jsonio.get(data, "loss", list, where), "loss"),
            eval_step=eval_step,
            val_loss=val_loss,
            diverged_at=diverged,
            wall_s=float(
                jsonio.decode_float(jsonio.get(data, "wall_s", (int, float, str), where), "wall_s")
                or 0.0
            ),
            error=error,
        )


@dataclass(frozen=True)
class RunOptions:
    """How every run of a sweep trains (the same for all runs, so they are comparable)."""

    steps: int
    eval_every: int | None = None
    chunk_size: int | None = None
    diverge_factor: float = 3.0
    stop_on_divergence: bool = True
    beta: float = 0.98

    def check(self) -> RunOptions:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise invalid("steps", "must be an integer >= 1", steps=self.steps)
        for name in ("eval_every", "chunk_size"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise invalid(name, "must be None or an integer >= 1", **{name: value})
        if not (self.diverge_factor > 0 and math.isfinite(self.diverge_factor)):
            raise invalid(
                "diverge_factor",
                "must be a positive finite number",
                diverge_factor=self.diverge_factor,
            )
        if not 0.0 <= self.beta < 1.0:
            raise invalid("beta", "must be in [0, 1)", beta=self.beta)
        return self


def run_one(
    trainer: Trainer,
    lr: float,
    options: RunOptions,
    *,
    lr_index: int = 0,
    seed_index: int = 0,
    seed: int | None = None,
) -> RunRecord:
    """Train ``options.steps`` steps at the fixed ``lr`` and record the curve; restore after.

    The trainer is snapshotted before the first step and restored in ``finally`` (also after
    an exception or Ctrl-C), so the caller can run the next LR from the same state. Steps go
    through ``Trainer.run`` in chunks (one host sync per chunk); chunk boundaries fall on
    multiples of ``eval_every`` so that ``evaluate()`` sees the state after exactly that many
    steps. The run stops at the first non-finite loss (the state is garbage from there) and,
    with ``stop_on_divergence``, when the smoothed loss blows up (the range test's rule,
    :func:`lrscope.core.stopping.check_stop`); it may overshoot the stop by one chunk. An
    exception from the trainer is recorded in ``error`` with what was measured before it;
    KeyboardInterrupt propagates (after the restore).
    """
    _check_trainer_shape(trainer)
    steps = options.steps
    chunk = options.chunk_size or auto_chunk(steps)
    evaluate = getattr(trainer, "evaluate", None) if options.eval_every else None
    if options.eval_every and not callable(evaluate):
        raise invalid(
            "eval_every",
            NEEDS_EVALUATE,
            eval_every=options.eval_every,
        )
    losses: list[np.ndarray] = []
    eval_step: list[int] = []
    val_loss: list[float] = []
    diverged_at: int | None = None
    error: str | None = None
    done = 0
    began = time.perf_counter()
    snapshot = trainer.snapshot()
    try:
        while done < steps:
            end = min(done + chunk, steps)
            if options.eval_every:
                end = min(end, (done // options.eval_every + 1) * options.eval_every)
            lrs = np.full(end - done, float(lr))
            losses.append(_as_losses(trainer.run(lrs), lrs.size))
            done = end
            if evaluate is not None and options.eval_every and done % options.eval_every == 0:
                eval_step.append(done)
                val_loss.append(float(evaluate()))
            raw = np.concatenate(losses)
            reason, index = check_stop(smooth_loss(raw, options.beta), raw, options.diverge_factor)
            if reason == "non_finite" or (reason == "diverged" and options.stop_on_divergence):
                diverged_at = index
                break
    except Exception as exc:  # recorded, not dropped: the sweep goes on with the next run
        error = f"{type(exc).__name__}: {exc}"
        last = traceback.extract_tb(exc.__traceback__)[-1:]
        if last:
            error += f" (at {Path(last[0].filename).name}:{last[0].lineno})"
    finally:
        trainer.restore(snapshot)
    return RunRecord(
        lr_index=lr_index,
        seed_index=seed_index,
        lr=float(lr),
        seed=seed,
        loss=np.concatenate(losses) if losses else np.zeros(0),
        eval_step=np.array(eval_step, dtype=np.int64),
        val_loss=np.array(val_loss, dtype=np.float64),
        diverged_at=diverged_at,
        wall_s=time.perf_counter() - began,
        error=error,
    )


# -- the result ------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class SweepResult:
    """The LR x steps map of a sweep: one training curve per (seed, LR).

    Shapes: ``S`` seeds, ``R`` LRs, ``T = steps``, ``E`` evaluation points.

    Attributes:
        lrs: candidate LRs, shape ``(R,)`` (in the order given).
        steps: steps per run (every budget ``1..steps`` is read off the curves).
        seeds: seed per repeat, length ``S`` (``(None,)`` when the trainer was not seeded).
        loss: training loss, shape ``(S, R, T)``; ``loss[s, r, t]`` is the loss the trainer
            reported for step ``t + 1`` (most trainers compute it before that step's update).
            NaN where the step was not run: after a run stopped on divergence, raised, or
            never ran.
        eval_step: steps after which held-out loss was measured, shape ``(E,)``.
        val_loss: held-out loss after ``eval_step[e]`` steps, shape ``(S, R, E)`` (NaN where
            not measured).
        diverged_at: step index at which each run counted as diverged, shape ``(S, R)``,
            ``-1`` when it did not.
        status: per run, one of :data:`RUN_STATUSES`, shape ``(S, R)``.
        wall_s: wall time per run, shape ``(S, R)`` (NaN for missing runs).
        errors: per run, the error text of a run that raised, else None; ``S`` tuples of ``R``.
        diverge_factor: the divergence rule's factor the runs used.
        metadata: trainer identity, engine, framework... (JSON scalars).
    """

    lrs: np.ndarray
    steps: int
    seeds: tuple[int | None, ...]
    loss: np.ndarray
    eval_step: np.ndarray
    val_loss: np.ndarray
    diverged_at: np.ndarray
    status: np.ndarray
    wall_s: np.ndarray
    errors: tuple[tuple[str | None, ...], ...]
    diverge_factor: float = 3.0
    metadata: Metadata = field(default_factory=dict)

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_records(
        cls,
        records: Iterable[RunRecord],
        lrs: Sequence[float] | np.ndarray,
        steps: int,
        seeds: Sequence[int | None],
        eval_every: int | None = None,
        diverge_factor: float = 3.0,
        metadata: Mapping[str, str | int | float | bool | None] | None = None,
    ) -> SweepResult:
        """Assemble the map from run records (any order; missing runs stay "missing")."""
        grid = np.asarray(lrs, dtype=np.float64)
        n_seed, n_lr = len(seeds), grid.size
        eval_step = (
            np.arange(eval_every, steps + 1, eval_every, dtype=np.int64)
            if eval_every
            else np.zeros(0, dtype=np.int64)
        )
        loss = np.full((n_seed, n_lr, steps), np.nan)
        val = np.full((n_seed, n_lr, eval_step.size), np.nan)
        diverged = np.full((n_seed, n_lr), -1, dtype=np.int64)
        status = np.full((n_seed, n_lr), "missing", dtype="<U8")
        wall = np.full((n_seed, n_lr), np.nan)
        errors: list[list[str | None]] = [[None] * n_lr for _ in range(n_seed)]
        for rec in records:
            s, r = rec.seed_index, rec.lr_index
            if not (0 <= s < n_seed and 0 <= r < n_lr) or rec.lr != grid[r]:
                raise ResultFormatError(
                    f"run record (seed_index={s}, lr_index={r}, lr={rec.lr!r}) does not belong "
                    f"to this sweep ({n_seed} seeds, lrs={grid.tolist()})"
                )
            n = min(rec.loss.size, steps)
            loss[s, r, :n] = rec.loss[:n]
            for step, value in zip(rec.eval_step.tolist(), rec.val_loss.tolist(), strict=True):
                hits = np.flatnonzero(eval_step == step)
                if hits.size:
                    val[s, r, hits[0]] = value
            diverged[s, r] = -1 if rec.diverged_at is None else rec.diverged_at
            status[s, r] = rec.status
            wall[s, r] = rec.wall_s
            errors[s][r] = rec.error
        return cls(
            lrs=grid,
            steps=int(steps),
            seeds=tuple(seeds),
            loss=loss,
            eval_step=eval_step,
            val_loss=val,
            diverged_at=diverged,
            status=status,
            wall_s=wall,
            errors=tuple(tuple(row) for row in errors),
            diverge_factor=float(diverge_factor),
            metadata=dict(metadata or {}),
        )

    # -- reading the map ---------------------------------------------------------------
    @property
    def complete(self) -> bool:
        """True when every run finished (ok, diverged or error); False after an interrupt."""
        return not bool(np.any(self.status == "missing"))

    @property
    def has_val(self) -> bool:
        """True when held-out loss was measured (the default metric then)."""
        return bool(self.eval_step.size) and bool(np.any(np.isfinite(self.val_loss)))

    def _metric(self, metric: str) -> str:
        if metric == "auto":
            return "val" if self.has_val else "train"
        if metric not in ("train", "val"):
            raise invalid("metric", "must be 'auto', 'train' or 'val'", metric=metric)
        if metric == "val" and not self.has_val:
            raise invalid(
                "metric", "can be 'val' only when the sweep measured held-out loss", metric=metric
            )
        return metric

    def budgets(self, metric: str = "auto") -> np.ndarray:
        """The budgets (step counts) a metric can answer: ``1..steps`` for training loss, the
        evaluation steps for held-out loss."""
        if self._metric(metric) == "val":
            return self.eval_step.copy()
        return np.arange(1, self.steps + 1, dtype=np.int64)

    def score(self, budget: int, metric: str = "auto", window: int = DEFAULT_WINDOW) -> np.ndarray:
        """The loss each LR reached with ``budget`` steps, shape ``(R,)``, median over seeds.

        ``metric="train"``: the mean training loss of the last ``min(window, budget)`` steps
        up to ``budget`` (a single step's loss is noisy with minibatches). ``"val"``: the
        held-out loss after ``budget`` steps (``budget`` must be an evaluation step).
        ``"auto"``: held-out when measured, else training. An LR that diverged, raised or did
        not run in ANY seed by ``budget`` scores NaN: one failed seed makes an LR unsafe.
        """
        metric = self._metric(metric)
        if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)):
            raise invalid("budget", "must be an integer number of steps", budget=budget)
        budget = int(budget)
        if not 1 <= budget <= self.steps:
            raise invalid("budget", f"must be in [1, {self.steps}]", budget=budget)
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise invalid("window", "must be an integer >= 1", window=window)
        if metric == "val":
            hits = np.flatnonzero(self.eval_step == budget)
            if not hits.size:
                raise invalid(
                    "budget",
                    f"must be one of the evaluation steps {self.eval_step.tolist()} with "
                    "metric='val'",
                    budget=budget,
                )
            per_seed = self.val_loss[:, :, hits[0]]
        else:
            start = budget - min(window, budget)
            with np.errstate(invalid="ignore", over="ignore"):
                per_seed = self.loss[:, :, start:budget].mean(axis=2)
        failed = (self.diverged_at >= 0) & (self.diverged_at < budget)
        failed |= self.status == "missing"
        failed |= self.status == "error"
        with np.errstate(invalid="ignore", over="ignore"):
            values = np.where(failed | ~np.isfinite(per_seed), np.nan, per_seed)
        bad = np.any(np.isnan(values), axis=0)
        out = np.full(self.lrs.size, np.nan)
        if np.any(~bad):
            out[~bad] = np.median(values[:, ~bad], axis=0)
        return out

    def best_lr(
        self, budget: int | None = None, metric: str = "auto", window: int = DEFAULT_WINDOW
    ) -> float | None:
        """The LR of the grid with the lowest :meth:`score` after ``budget`` steps (default:
        all of them); None when every LR failed. Exact on the sampled grid: refine the grid
        around the answer for more digits.

        >>> result.best_lr(100)  # doctest: +SKIP
        0.0316
        """
        score = self.score(self.steps if budget is None else budget, metric, window)
        if not np.any(np.isfinite(score)):
            return None
        return float(self.lrs[int(np.nanargmin(score))])

    def band(
        self,
        budget: int | None = None,
        tol: float = DEFAULT_TOL,
        metric: str = "auto",
        window: int = DEFAULT_WINDOW,
    ) -> np.ndarray:
        """The LRs as good as the best within ``tol``: boolean mask, shape ``(R,)``.

        "As good" means ``score <= best + tol * |best|`` (relative, so it works for any loss
        scale; a best loss of exactly 0 keeps only the LRs that also reach 0, up to round-off
        of the score spread).
        """
        if not (math.isfinite(tol) and tol >= 0):
            raise invalid("tol", "must be a finite number >= 0", tol=tol)
        score = self.score(self.steps if budget is None else budget, metric, window)
        finite = np.isfinite(score)
        if not finite.any():
            return np.zeros(self.lrs.size, dtype=bool)
        best = float(np.min(score[finite]))
        spread = float(np.max(score[finite]) - best)
        limit = best + tol * abs(best) + float(np.finfo(np.float64).eps) * spread
        return np.asarray(finite & (score <= limit))

    def best_lr_curve(
        self, metric: str = "auto", window: int = DEFAULT_WINDOW, tol: float = DEFAULT_TOL
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The best LR as a function of the budget, with its tolerance band.

        Returns ``(budgets, best, low, high)``, each shape ``(B,)``: for each budget the best
        LR (NaN when every LR failed) and the smallest / largest LR of :meth:`band`.
        """
        budgets = self.budgets(metric)
        best = np.full(budgets.size, np.nan)
        low = np.full(budgets.size, np.nan)
        high = np.full(budgets.size, np.nan)
        for i, budget in enumerate(budgets.tolist()):
            lr = self.best_lr(budget, metric, window)
            if lr is None:
                continue
            mask = self.band(budget, tol, metric, window)
            best[i], low[i], high[i] = lr, self.lrs[mask].min(), self.lrs[mask].max()
        return budgets, best, low, high

    # -- plotting ----------------------------------------------------------------------
    def plot_heatmap(self, ax: Any = None, metric: str = "train", log_loss: bool = True) -> Any:
        """Loss over (log LR, step) as a heat map; cells after a run diverged or failed grey."""
        from lrscope.viz.sweep_plots import plot_sweep_heatmap

        return plot_sweep_heatmap(self, ax=ax, metric=metric, log_loss=log_loss)

    def plot_best_lr(
        self,
        ax: Any = None,
        metric: str = "auto",
        tol: float = DEFAULT_TOL,
        lr_diverge: float | None = None,
    ) -> Any:
        """Best LR vs budget (log-log) with the tolerance band; ``lr_diverge`` as a line."""
        from lrscope.viz.sweep_plots import plot_sweep_best_lr

        return plot_sweep_best_lr(self, ax=ax, metric=metric, tol=tol, lr_diverge=lr_diverge)

    def to_html(self, path: str | os.PathLike[str] | None = None) -> str:
        """The self-contained HTML report (heatmap + best LR per budget); written atomically
        to ``path`` when given. Returns the HTML text."""
        from lrscope.viz.report import to_html

        return to_html(self, path)

    def _repr_html_(self) -> str:
        """Notebook display: the interactive LR x steps map and best-LR curve."""
        from lrscope.viz.report import repr_html

        return repr_html(self)

    def __repr__(self) -> str:
        """One line: the grid, the runs' outcomes and the best LR for the whole budget (the
        dataclass repr printed the ``(S, R, T)`` loss array)."""
        if self.lrs.size:
            grid = f"{self.lrs.size} LRs {self.lrs.min():.3g}..{self.lrs.max():.3g}"
        else:
            grid = "0 LRs"
        seeds = f"{len(self.seeds)} seed" + ("s" if len(self.seeds) != 1 else "")
        outcomes = ", ".join(
            f"{int(np.sum(self.status == name))} {name}"
            for name in RUN_STATUSES
            if np.any(self.status == name)
        )
        parts = [f"{grid} x {self.steps} steps x {seeds}", f"runs: {outcomes or 'none'}"]
        try:
            best = self.best_lr()
            parts.append(
                f"best_lr({self.steps}): {best:.3g}" if best is not None else "best_lr: none"
            )
        except Exception:  # a repr never raises; the answer is left out
            pass
        return f"SweepResult({', '.join(parts)})"

    # -- equality ----------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SweepResult):
            return NotImplemented
        arrays = ("lrs", "loss", "eval_step", "val_loss", "diverged_at", "wall_s")
        same_arrays = all(
            np.array_equal(getattr(self, a), getattr(other, a), equal_nan=True) for a in arrays
        )
        return (
            same_arrays
            and np.array_equal(self.status, other.status)
            and (self.steps, self.seeds, self.errors, self.diverge_factor, self.metadata)
            == (other.steps, other.seeds, other.errors, other.diverge_factor, other.metadata)
        )

    __hash__ = None  # type: ignore[assignment]

    # -- JSON --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (schema ``sweep`` v1); arrays flattened row-major with shapes."""
        budgets, best, _, _ = self.best_lr_curve()
        return {
            "kind": KIND,
            "schema_version": SCHEMA_VERSION,
            "lrs": jsonio.encode_array(self.lrs),
            "steps": self.steps,
            "seeds": list(self.seeds),
            "loss": jsonio.encode_array(self.loss),
            "eval_step": [int(s) for s in self.eval_step],
            "val_loss": jsonio.encode_array(self.val_loss),
            "diverged_at": [int(v) for v in self.diverged_at.reshape(-1)],
            "status": [str(v) for v in self.status.reshape(-1)],
            "wall_s": jsonio.encode_array(self.wall_s),
            "errors": [list(row) for row in self.errors],
            "diverge_factor": self.diverge_factor,
            "metadata": dict(self.metadata),
            # derived, for readers that do not run lrscope (report, jq); ignored on load
            "best_lr": jsonio.encode_float(self.best_lr()),
            "best_lr_curve": {"budget": budgets.tolist(), "lr": jsonio.encode_array(best)},
        }

    def to_json(self) -> str:
        return jsonio.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: object) -> SweepResult:
        """Rebuild a result from :meth:`to_dict` output, validating every field."""
        body = jsonio.check_header(data, KIND, SCHEMA_VERSION)
        where = "sweep"
        lrs = jsonio.decode_array(jsonio.get(body, "lrs", list, where), "lrs")
        if lrs.size == 0:
            raise ResultFormatError("`lrs` must not be empty")
        steps = jsonio.get(body, "steps", int, where)
        if steps < 1:
            raise ResultFormatError(f"`steps` must be >= 1; got {steps}")
        seeds_raw = jsonio.get(body, "seeds", list, where)
        if not seeds_raw or not all(
            s is None or (isinstance(s, int) and not isinstance(s, bool)) for s in seeds_raw
        ):
            raise ResultFormatError("`seeds` must be a non-empty list of integers or nulls")
        n_seed, n_lr = len(seeds_raw), lrs.size
        eval_step = _int_list(jsonio.get(body, "eval_step", list, where), "eval_step")
        loss = _shaped(body, "loss", (n_seed, n_lr, steps))
        val = _shaped(body, "val_loss", (n_seed, n_lr, eval_step.size))
        wall = _shaped(body, "wall_s", (n_seed, n_lr))
        diverged = _int_list(jsonio.get(body, "diverged_at", list, where), "diverged_at")
        if diverged.size != n_seed * n_lr:
            raise ResultFormatError(f"`diverged_at` must have {n_seed * n_lr} entries")
        status = jsonio.get(body, "status", list, where)
        if len(status) != n_seed * n_lr or not all(s in RUN_STATUSES for s in status):
            raise ResultFormatError(
                f"`status` must have {n_seed * n_lr} entries, each one of {RUN_STATUSES}"
            )
        errors = jsonio.get(body, "errors", list, where)
        if len(errors) != n_seed or not all(
            isinstance(row, list)
            and len(row) == n_lr
            and all(e is None or isinstance(e, str) for e in row)
            for row in errors
        ):
            raise ResultFormatError(f"`errors` must be {n_seed} lists of {n_lr} strings or nulls")
        return cls(
            lrs=lrs,
            steps=steps,
            seeds=tuple(seeds_raw),
            loss=loss,
            eval_step=eval_step,
            val_loss=val,
            diverged_at=diverged.reshape(n_seed, n_lr),
            status=np.array(status, dtype="<U8").reshape(n_seed, n_lr),
            wall_s=wall,
            errors=tuple(tuple(row) for row in errors),
            diverge_factor=float(jsonio.get(body, "diverge_factor", (int, float), where)),
            metadata=jsonio.check_metadata(body.get("metadata", {}), "metadata"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> SweepResult:
        """Parse :meth:`to_json` output; malformed or hostile input raises ResultFormatError."""
        return cls.from_dict(jsonio.loads(text))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the JSON atomically to ``path`` and return it."""
        return jsonio.write_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SweepResult:
        """Read a result saved with :meth:`save`."""
        return cls.from_json(jsonio.read_text(path))


def _int_list(value: list[Any], where: str) -> np.ndarray:
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ResultFormatError(f"`{where}` must be a list of integers")
    return np.array(value, dtype=np.int64)


def _shaped(body: Mapping[str, Any], key: str, shape: tuple[int, ...]) -> np.ndarray:
    values = jsonio.decode_array(jsonio.get(body, key, list, "sweep"), key)
    if values.size != int(np.prod(shape)):
        raise ResultFormatError(
            f"`{key}` must have {int(np.prod(shape))} values (shape {shape}); got {values.size}"
        )
    return values.reshape(shape)


#: A callable that builds a fresh Trainer (optionally from a seed).
TrainerFactory = Callable[..., Trainer]
