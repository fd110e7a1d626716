"""Verify mode: train briefly at a few LRs from the same start and keep the best.

A range test reads the LR off one ramped run; ``verify`` checks that reading where it matters,
at the step budget you can afford ("learning rate and steps together", as in the lesson). It
trains ``steps`` steps at each candidate LR, each from the same snapshot, scores each run, and
restores the trainer exactly, whatever happens.

The score is the trainer's held-out loss (``trainer.evaluate()``) when it has one, otherwise
the mean training loss of the last tenth of the run (one last mini-batch loss is too noisy to
rank runs by). A run whose loss becomes non-finite scores ``inf``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lrscope.core import jsonio
from lrscope.core.rangetest import auto_chunk, range_test
from lrscope.core.result import RangeTestResult
from lrscope.core.trainer import Trainer
from lrscope.errors import ResultFormatError, TrainerError, invalid

SCHEMA_VERSION = 1
KIND = "verify"
#: Multiples of the suggestion tried when no candidates are given: a decade and half a decade
#: below (a range-test suggestion errs high more dangerously than low), and half a decade above.
DEFAULT_FACTORS = (0.1, 1 / 3, 1.0, 3.0)
#: How far apart (as a ratio of LRs) the best run and its neighbours end up when ``refine``.
DEFAULT_RESOLUTION = 1.2
#: Most training runs one verify call makes (4 candidates, a few bracket steps, 3 bisections).
DEFAULT_MAX_RUNS = 14
#: Step of the bracket search, as a multiple of LR: the spacing of the default candidates.
BRACKET_FACTOR = 3.0


@dataclass(frozen=True, eq=False)
class VerifyResult:
    """The evidence of a verify run.

    Attributes:
        lrs: candidate LRs, ascending, shape ``(k,)``.
        scores: score of each candidate (lower is better; ``inf`` when it diverged).
        losses: training losses, shape ``(k, steps)``, NaN after a run stopped on a
            non-finite loss.
        steps: steps trained per candidate.
        score_kind: ``"evaluate"`` (held-out loss) or ``"train_tail"`` (mean training loss of
            the last tenth of the run).
        around: the LR the candidates were built around, or None when given explicitly.
        best_lr: the candidate with the lowest score (ties: the smaller LR), None when all
            diverged.
    """

    lrs: np.ndarray
    scores: np.ndarray
    losses: np.ndarray
    steps: int
    score_kind: str
    around: float | None
    best_lr: float | None

    @property
    def best_index(self) -> int | None:
        """Position of :attr:`best_lr` in :attr:`lrs`."""
        if self.best_lr is None:
            return None
        return int(np.flatnonzero(self.lrs == self.best_lr)[0])

    @property
    def at_boundary(self) -> bool:
        """True when the best candidate is the lowest or highest tried: the true best may lie
        outside the candidates (verify again around ``best_lr``)."""
        index = self.best_index
        return index is not None and self.lrs.size > 1 and index in (0, self.lrs.size - 1)

    def to_html(self, path: str | os.PathLike[str] | None = None) -> str:
        """The self-contained HTML report of these runs (written atomically to ``path`` when
        given). Returns the HTML text."""
        from lrscope.viz.report import to_html

        return to_html(self, path)

    def _repr_html_(self) -> str:
        """Notebook display: score per LR (interactive) and the runs table."""
        from lrscope.viz.report import repr_html

        return repr_html(self)

    def __repr__(self) -> str:
        """One line: the candidates, the budget, how they were ranked and the winner (the
        dataclass repr printed every training curve)."""
        k = self.lrs.size
        span = f"{self.lrs.min():.3g}..{self.lrs.max():.3g}" if k else "none"
        winner = (
            "none (every candidate diverged)" if self.best_lr is None else f"{self.best_lr:.3g}"
        )
        if self.at_boundary:
            winner += " (at the edge of the candidates)"
        return (
            f"VerifyResult({k} candidate"
            + ("s" if k != 1 else "")
            + f" {span}, {self.steps} steps each, ranked by {self.score_kind}, best_lr {winner})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "schema_version": SCHEMA_VERSION,
            "lrs": jsonio.encode_array(self.lrs),
            "scores": jsonio.encode_array(self.scores),
            "losses": [jsonio.encode_array(row) for row in self.losses],
            "steps": self.steps,
            "score_kind": self.score_kind,
            "around": jsonio.encode_float(self.around),
            "best_lr": jsonio.encode_float(self.best_lr),
        }

    def to_json(self) -> str:
        return jsonio.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: object) -> VerifyResult:
        data = jsonio.check_header(data, KIND, SCHEMA_VERSION)
        lrs = jsonio.decode_array(jsonio.get(data, "lrs", list, KIND), "lrs")
        scores = jsonio.decode_array(jsonio.get(data, "scores", list, KIND), "scores")
        rows = [jsonio.decode_array(r, "losses") for r in jsonio.get(data, "losses", list, KIND)]
        steps = jsonio.get(data, "steps", int, KIND)
        if not lrs.size == scores.size == len(rows) or any(r.size != steps for r in rows):
            raise ResultFormatError(
                "`lrs`, `scores` and `losses` must have one entry per candidate, each loss row "
                f"`steps`={steps} long"
            )
        score_kind = jsonio.get(data, "score_kind", str, KIND)
        if score_kind not in ("evaluate", "train_tail"):
            raise ResultFormatError(
                f"`score_kind` must be 'evaluate' or 'train_tail'; got {score_kind!r}"
            )
        best = jsonio.decode_float(data.get("best_lr"), "best_lr", optional=True)
        if best is not None and best not in lrs:
            raise ResultFormatError("`best_lr` must be one of `lrs`")
        return cls(
            lrs=lrs,
            scores=scores,
            losses=np.array(rows).reshape(len(rows), steps),
            steps=steps,
            score_kind=score_kind,
            around=jsonio.decode_float(data.get("around"), "around", optional=True),
            best_lr=best,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> VerifyResult:
        return cls.from_dict(jsonio.loads(text))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the JSON atomically to ``path`` and return it."""
        return jsonio.write_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> VerifyResult:
        """Read a result saved with :meth:`save`."""
        return cls.from_json(jsonio.read_text(path))


def _candidates(candidates: Sequence[float] | np.ndarray) -> np.ndarray:
    try:
        values = np.asarray(candidates, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise invalid(
            "candidates", "must be a list of positive LRs", candidates=candidates
        ) from exc
    if values.size == 0 or not np.all(np.isfinite(values)) or not np.all(values > 0):
        raise invalid(
            "candidates", "must be a non-empty list of positive finite LRs", candidates=candidates
        )
    return np.unique(values)


def _score(trainer: object, losses: np.ndarray, use_evaluate: bool) -> float:
    if not np.all(np.isfinite(losses)):
        return math.inf
    if use_evaluate:
        value = float(trainer.evaluate())  # type: ignore[attr-defined]
    else:
        tail = max(1, losses.size // 10)
        value = float(np.mean(losses[-tail:]))
    return value if math.isfinite(value) else math.inf


def verify(
    trainer: Trainer,
    candidates: Sequence[float] | np.ndarray | None = None,
    *,
    steps: int = 100,
    around: float | RangeTestResult | None = None,
    factors: Sequence[float] = DEFAULT_FACTORS,
    use_evaluate: bool = True,
    refine: bool = True,
    resolution: float = DEFAULT_RESOLUTION,
    max_runs: int = DEFAULT_MAX_RUNS,
    **range_test_options: Any,
) -> VerifyResult:
    """Train ``steps`` steps at each candidate LR from the same start; return the evidence.

    Candidates are ``candidates`` when given; otherwise ``around`` times each of ``factors``
    (x1/10, x1/3, x1, x3), where ``around`` is an LR or a :class:`RangeTestResult` (its
    default suggestion). With neither, a range test is run first (``range_test_options`` go
    to :func:`lrscope.range_test`).

    ``refine=True`` then searches from those candidates, because the loss after a fixed
    budget can change several-fold within a factor of 3 of LR near the stability edge:

    1. *bracket*: while the best LR is the highest (or lowest) tried, try 3x above (below) it,
       so the best is never an end point only because nobody looked further; when every
       candidate diverged, it steps down by 3x until one does not;
    2. *bisect*: try the geometric midpoints between the best LR and its neighbours, and
       repeat until both neighbours are within a factor ``resolution`` of the best.

    At most ``max_runs`` training runs in all (the first candidates included). Every run
    starts from the same snapshot, and the trainer is restored to it afterwards, also when a
    run raises.

    >>> check = lrscope.verify(trainer, around=result, steps=200)  # doctest: +SKIP
    >>> check.best_lr, check.at_boundary                           # doctest: +SKIP
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise invalid("steps", "must be an integer >= 1", steps=steps)
    if isinstance(resolution, bool) or not (
        isinstance(resolution, (int, float, np.floating)) and 1.0 < resolution < math.inf
    ):
        raise invalid("resolution", "must be a finite number > 1", resolution=resolution)
    if isinstance(max_runs, bool) or not isinstance(max_runs, (int, np.integer)) or max_runs < 1:
        raise invalid("max_runs", "must be an integer >= 1", max_runs=max_runs)
    if candidates is not None and around is not None:
        raise invalid(
            "around",
            "must be None when `candidates` is given",
            around=around,
            candidates=candidates,
        )
    if range_test_options and (candidates is not None or around is not None):
        raise invalid(
            "range_test_options",
            "are used only when verify runs its own range test (no `candidates`, no `around`)",
            options=sorted(range_test_options),
        )
    centre: float | None = None
    if candidates is None:
        if around is None:
            around = range_test(trainer, **range_test_options)
        if isinstance(around, RangeTestResult):
            found = around.suggest()
            if found.lr is None:
                raise invalid(
                    "around",
                    f"must give a suggestion; the range test gave none ({found.reason})",
                    around="RangeTestResult",
                )
            centre = found.lr
        else:
            if isinstance(around, bool) or not (
                isinstance(around, (int, float, np.floating))
                and math.isfinite(around)
                and around > 0
            ):
                raise invalid("around", "must be a positive LR or a RangeTestResult", around=around)
            centre = float(around)
        if len(factors) == 0 or not all(math.isfinite(f) and f > 0 for f in factors):
            raise invalid(
                "factors", "must be a non-empty list of positive numbers", factors=factors
            )
        lrs = _candidates([centre * f for f in factors])
    else:
        lrs = _candidates(candidates)
    if lrs.size > max_runs:
        raise invalid(
            "max_runs",
            f"must be at least the number of candidates ({lrs.size})",
            max_runs=max_runs,
        )
    evaluate = use_evaluate and callable(getattr(trainer, "evaluate", None))
    runs: dict[float, tuple[np.ndarray, float]] = {}
    start = trainer.snapshot()
    try:
        for lr in lrs:
            runs[float(lr)] = _train(trainer, start, float(lr), steps, evaluate)
        if refine:
            while len(runs) < max_runs:
                wanted = _next_lrs(runs, float(resolution))[: max_runs - len(runs)]
                if not wanted:
                    break
                for lr in wanted:
                    runs[lr] = _train(trainer, start, lr, steps, evaluate)
    finally:
        trainer.restore(start)
    tried = np.array(sorted(runs))
    scores = np.array([runs[lr][1] for lr in tried])
    finite = np.isfinite(scores)
    best = float(tried[int(np.argmin(np.where(finite, scores, np.inf)))]) if finite.any() else None
    return VerifyResult(
        lrs=tried,
        scores=scores,
        losses=np.array([runs[lr][0] for lr in tried]).reshape(tried.size, steps),
        steps=int(steps),
        score_kind="evaluate" if evaluate else "train_tail",
        around=centre,
        best_lr=best,
    )


def _train(
    trainer: Trainer, start: object, lr: float, steps: int, evaluate: bool
) -> tuple[np.ndarray, float]:
    """``steps`` steps at ``lr`` from ``start``: (losses, score); stops at a non-finite loss."""
    trainer.restore(start)
    losses = np.full(steps, np.nan)
    chunk = auto_chunk(steps)
    done = 0
    while done < steps:
        part = min(chunk, steps - done)
        got = np.asarray(trainer.run(np.full(part, lr)), dtype=np.float64)
        if got.shape != (part,):
            raise TrainerError(
                f"Trainer.run must return one loss per step: shape ({part},); got shape {got.shape}"
            )
        losses[done : done + part] = got
        done += part
        if not np.all(np.isfinite(got)):
            return losses, math.inf
    return losses, _score(trainer, losses, evaluate)


def _next_lrs(runs: dict[float, tuple[np.ndarray, float]], resolution: float) -> list[float]:
    """The LRs the search tries next (empty when it is done), from every run so far."""
    tried = sorted(runs)
    scores = np.array([runs[lr][1] for lr in tried])
    if not np.isfinite(scores).any():
        return [tried[0] / BRACKET_FACTOR]  # everything diverged: look lower
    index = int(np.argmin(scores))  # ties: the smaller LR
    best = tried[index]
    if index == len(tried) - 1:
        return [best * BRACKET_FACTOR]  # best is the highest tried: look higher
    if index == 0:
        return [best / BRACKET_FACTOR]  # best is the lowest tried: look lower
    wanted = []
    for other in (tried[index - 1], tried[index + 1]):
        if max(other, best) / min(other, best) > resolution:
            wanted.append(math.sqrt(other * best))
    return wanted
