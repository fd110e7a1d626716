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
from collections.abc import Sequence
from dataclasses import dataclass
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
    **range_test_options: Any,
) -> VerifyResult:
    """Train ``steps`` steps at each candidate LR from the same start; return the evidence.

    Candidates are ``candidates`` when given; otherwise ``around`` times each of ``factors``
    (x1/10, x1/3, x1, x3), where ``around`` is an LR or a :class:`RangeTestResult` (its
    default suggestion). With neither, a range test is run first (``range_test_options`` go
    to :func:`lrscope.range_test`). ``refine=True`` then also tries the geometric midpoints
    between the best candidate and its neighbours (two more runs at most): the loss after a
    fixed budget can change several-fold within a factor of 3 of LR near the stability edge.
    The trainer is restored to its starting state afterwards, also when a run raises.

    >>> check = lrscope.verify(trainer, around=result, steps=200)  # doctest: +SKIP
    >>> check.best_lr, check.at_boundary                           # doctest: +SKIP
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise invalid("steps", "must be an integer >= 1", steps=steps)
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
    evaluate = use_evaluate and callable(getattr(trainer, "evaluate", None))
    runs: dict[float, tuple[np.ndarray, float]] = {}
    start = trainer.snapshot()
    try:
        for lr in lrs:
            runs[float(lr)] = _train(trainer, start, float(lr), steps, evaluate)
        if refine:
            for lr in _midpoints(lrs, runs):
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


def _midpoints(lrs: np.ndarray, runs: dict[float, tuple[np.ndarray, float]]) -> list[float]:
    """Geometric midpoints between the first round's winner and its neighbours."""
    scores = np.array([runs[float(lr)][1] for lr in lrs])
    if lrs.size < 2 or not np.isfinite(scores).any():
        return []
    index = int(np.argmin(scores))
    neighbours = [i for i in (index - 1, index + 1) if 0 <= i < lrs.size]
    return [float(math.sqrt(lrs[index] * lrs[i])) for i in neighbours]
