"""The whole lesson as one result: fixed-LR runs, closed forms, and a range test.

``run_lesson()`` computes everything; ``LessonResult`` holds it, reads it out in plain words,
and saves it as versioned JSON (``demo.json``). Plots read only this object.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lrscope.core import jsonio
from lrscope.core.rangetest import range_test
from lrscope.core.result import RangeTestResult
from lrscope.core.sweep import SweepResult
from lrscope.errors import ResultFormatError, invalid
from lrscope.lab.linreg import (
    B0,
    LESSON_LRS,
    LESSON_STEPS,
    W0,
    GDRun,
    LinRegData,
    Moments,
    Stability,
    gradient_descent,
    linreg_trainer,
    make_data,
    observed_regime,
)

SCHEMA_VERSION = 1
KIND = "lesson"


@dataclass(frozen=True, eq=False)
class LessonResult:
    """Everything the demo shows: data, moments, the closed form, runs and a range test."""

    data: LinRegData
    moments: Moments
    stability: Stability
    runs: tuple[GDRun, ...]
    range_test: RangeTestResult
    sweep: SweepResult | None = None  # the LR x steps map (lrscope.lab.lesson_sweep)

    @property
    def closed_form(self) -> tuple[float, float]:
        return self.moments.solution()

    def reading(self) -> str:
        """A plain-words paragraph on what the runs and the range test show."""
        s = self.stability
        crawl = [r.lr for r in self.runs if r.regime == "crawling"]
        blown = [r for r in self.runs if r.regime in ("diverging", "overflowed")]
        good = [r for r in self.runs if r.regime in ("converging", "oscillating-converging")]
        parts = [
            f"Same {self.runs[0].steps} steps for every run; only the learning rate differs."
            if self.runs
            else ""
        ]
        if crawl:
            parts.append(
                f"At lr={_fmt(crawl)} gradient descent crawls: after all those steps "
                "w and b have covered less than half the way to the solution."
            )
        if good:
            best = min(good, key=lambda r: r.final[2])
            parts.append(
                f"At lr={_fmt([r.lr for r in good])} it converges; lr={best.lr:g} gets "
                f"closest (loss {best.final[2]:.3g})."
            )
        if blown:
            parts.append(
                f"At lr={_fmt([r.lr for r in blown])}, above the exact ceiling "
                f"2/lambda_max = {s.lr_diverge:.3g}, every step overshoots more than the "
                "last and the values blow up"
                + (" to inf/NaN." if any(r.regime == "overflowed" for r in blown) else ".")
            )
        rt = self.range_test
        m = rt.suggest("minimum")
        d10 = rt.suggest("min_div10")
        if m.lr is not None and d10.lr is not None:
            side = "below" if d10.lr < s.lr_diverge else "above"
            parts.append(
                f"The range test's loss bottoms out at lr={m.lr:.3g} (the smoothed curve lags "
                f"the real blow-up); a tenth of it, {d10.lr:.3g}, lands {side} the ceiling "
                f"{s.lr_diverge:.3g}, at {d10.lr / s.lr_best:.2g}x the best fixed LR "
                f"2/(lambda_min+lambda_max) = {s.lr_best:.3g}."
            )
            default = rt.suggest()
            if default.rule != "min_div10" and default.lr is not None:
                side = "below" if default.lr < s.lr_diverge else "above"
                parts.append(
                    f"lrscope's default rule, {default.rule}, gives {default.lr:.3g} "
                    f"({default.reason}): {side} the ceiling, at "
                    f"{default.lr / s.lr_best:.2g}x the best fixed LR."
                )
        if self.sweep is not None:
            from lrscope.lab.lesson_sweep import describe_map

            parts.append(describe_map(self.sweep, s))
        return " ".join(p for p in parts if p)

    def to_html(self, path: str | os.PathLike[str] | None = None) -> str:
        """The lesson's self-contained HTML report (3D bowl with the GD paths, contours,
        regimes, range test); written atomically to ``path`` when given."""
        from lrscope.viz.report import to_html

        return to_html(self, path)

    def __repr__(self) -> str:
        """One line: the data, the runs with their regimes and the range test's default
        suggestion (the dataclass repr printed the data and every run's path)."""
        runs = ", ".join(f"{run.lr:g} {run.regime}" for run in self.runs) or "none"
        return (
            f"LessonResult({self.data.x.size} points, runs: {runs}; "
            f"best fixed LR {self.stability.lr_best:.3g}, "
            f"ceiling 2/lambda_max {self.stability.lr_diverge:.3g}; "
            f"range test: {self.range_test!r}"
            + ("; with the LR x steps map" if self.sweep is not None else "")
            + ")"
        )

    def _repr_html_(self) -> str:
        """Notebook display: the interactive 3D bowl, the reading and the rules table."""
        from lrscope.viz.report import repr_html

        return repr_html(self)

    # -- JSON --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        w_star, b_star = self.closed_form
        s = self.stability
        return {
            "kind": KIND,
            "schema_version": SCHEMA_VERSION,
            "data": {
                "x": jsonio.encode_array(self.data.x),
                "y": jsonio.encode_array(self.data.y),
                "noise": self.data.noise,
                "seed": self.data.seed,
            },
            "moments": {k: getattr(self.moments, k) for k in ("x", "xx", "y", "xy", "yy")},
            "closed_form": {"w": w_star, "b": b_star},
            "stability": {
                "lambda_min": s.lambda_min,
                "lambda_max": s.lambda_max,
                "lr_monotone": s.lr_monotone,
                "lr_diverge": s.lr_diverge,
                "lr_best": s.lr_best,
            },
            "runs": [_run_to_dict(r) for r in self.runs],
            "range_test": self.range_test.to_dict(),
            "sweep": self.sweep.to_dict() if self.sweep is not None else None,
            "reading": self.reading(),
        }

    def to_json(self) -> str:
        return jsonio.dumps(self.to_dict())

    def save(self, path: str | os.PathLike[str]) -> Path:
        return jsonio.write_atomic(path, self.to_json())

    @classmethod
    def from_dict(cls, data: object) -> LessonResult:
        body = jsonio.check_header(data, KIND, SCHEMA_VERSION)
        raw = jsonio.get(body, "data", dict, "lesson")
        lin = LinRegData(
            x=jsonio.decode_array(jsonio.get(raw, "x", list, "data"), "data.x").astype(np.float32),
            y=jsonio.decode_array(jsonio.get(raw, "y", list, "data"), "data.y").astype(np.float32),
            noise=float(jsonio.get(raw, "noise", (int, float), "data")),
            seed=int(jsonio.get(raw, "seed", int, "data")),
        )
        mom = jsonio.get(body, "moments", dict, "lesson")
        moments = Moments(
            **{
                k: float(jsonio.get(mom, k, (int, float), "moments"))
                for k in ("x", "xx", "y", "xy", "yy")
            }
        )
        stab = jsonio.get(body, "stability", dict, "lesson")
        stability = Stability(
            lambda_min=float(jsonio.get(stab, "lambda_min", (int, float), "stability")),
            lambda_max=float(jsonio.get(stab, "lambda_max", (int, float), "stability")),
        )
        runs = tuple(_run_from_dict(r, moments) for r in jsonio.get(body, "runs", list, "lesson"))
        return cls(
            data=lin,
            moments=moments,
            stability=stability,
            runs=runs,
            range_test=RangeTestResult.from_dict(jsonio.get(body, "range_test", dict, "lesson")),
            sweep=SweepResult.from_dict(body["sweep"]) if body.get("sweep") is not None else None,
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LessonResult:
        return cls.from_dict(jsonio.loads(jsonio.read_text(path)))


def _fmt(lrs: Sequence[float]) -> str:
    return ", ".join(f"{lr:g}" for lr in lrs)


def _run_to_dict(run: GDRun) -> dict[str, Any]:
    w, b, loss = run.final
    return {
        "lr": run.lr,
        "steps": run.steps,
        "w": jsonio.encode_float(w),
        "b": jsonio.encode_float(b),
        "final_loss": jsonio.encode_float(loss),
        "regime": run.regime,
        "regime_text": run.describe_regime(),
        "diverged_at_step": run.diverged_at_step,
        "path_w": jsonio.encode_array(run.path[:, 0]),
        "path_b": jsonio.encode_array(run.path[:, 1]),
        "loss": jsonio.encode_array(run.loss),
    }


def _run_from_dict(raw: object, moments: Moments) -> GDRun:
    if not isinstance(raw, dict):
        raise ResultFormatError("each entry of `runs` must be an object")
    path = np.stack(
        [
            jsonio.decode_array(jsonio.get(raw, "path_w", list, "run"), "path_w"),
            jsonio.decode_array(jsonio.get(raw, "path_b", list, "run"), "path_b"),
        ],
        axis=1,
    )
    loss = jsonio.decode_array(jsonio.get(raw, "loss", list, "run"), "loss")
    if path.shape[0] != loss.size:
        raise ResultFormatError("a run's `path_w`, `path_b` and `loss` must have equal lengths")
    diverged = raw.get("diverged_at_step")
    if diverged is not None and not isinstance(diverged, int):
        raise ResultFormatError("`diverged_at_step` must be null or an integer")
    return GDRun(
        lr=float(jsonio.get(raw, "lr", (int, float), "run")),
        steps=int(jsonio.get(raw, "steps", int, "run")),
        path=path,
        loss=loss,
        diverged_at_step=diverged,
        regime=observed_regime(path, loss, diverged, moments),
    )


def run_lesson(
    lrs: Sequence[float] = LESSON_LRS,
    steps: int = LESSON_STEPS,
    seed: int = 0,
    n: int = 100,
    noise: float = 0.01,
    range_start_lr: float = 1e-4,
    range_end_lr: float = 10.0,
    range_steps: int = 100,
    sweep_lrs: Sequence[float] | None = None,
    framework: str = "numpy",
) -> LessonResult:
    """Run the lesson: GD at each LR for ``steps`` steps, the closed forms, a range test,
    and with ``sweep_lrs`` the LR x steps map over those LRs (one ``steps``-step run each).
    ``framework`` ("numpy", "tensorflow", "torch", "jax") runs the GD and the range test in
    that framework (see :mod:`lrscope.lab.frameworks`); the numbers agree to float32.

    >>> lesson = run_lesson(lrs=[0.001, 10.0], steps=200)
    >>> [run.describe_regime() for run in lesson.runs]
    ['crawling', 'overflowed to NaN at step 13']
    """
    lrs = [float(lr) for lr in lrs]
    if not lrs:
        raise invalid("lrs", "must name at least one learning rate", lrs=lrs)
    for lr in lrs:
        if not (np.isfinite(lr) and lr > 0):
            raise invalid("lr", "must be a positive finite number", lr=lr)
    from lrscope.lab.frameworks import check_framework, lesson_gd, lesson_trainer

    check_framework(framework)
    data = make_data(n=n, noise=noise, seed=seed)
    moments = Moments.of(data)
    stability = Stability.of(moments)
    if framework == "numpy":
        runs = tuple(gradient_descent(data, lr, steps, W0, B0) for lr in lrs)
        trainer = linreg_trainer(data)
    else:  # the same lesson written in TensorFlow / PyTorch / JAX
        runs = tuple(lesson_gd(data, lr, steps, framework, W0, B0) for lr in lrs)
        trainer = lesson_trainer(data, framework)
    test = range_test(
        trainer,
        start_lr=range_start_lr,
        end_lr=range_end_lr,
        steps=range_steps,
        lr_diverge=stability.lr_diverge,
        metadata={
            "framework": framework,
            "problem": "lesson linear regression",
            "optimizer": "full-batch GD",
            "seed": seed,
            "dtype": "float32",
        },
    )
    lr_map = None
    if sweep_lrs is not None:  # the LR x steps map: one run per LR, every budget at once
        from lrscope.lab.lesson_sweep import lesson_sweep

        lr_map = lesson_sweep(data, list(sweep_lrs), steps)
    return LessonResult(
        data=data, moments=moments, stability=stability, runs=runs, range_test=test, sweep=lr_map
    )
