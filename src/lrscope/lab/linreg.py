"""Linear regression by full-batch gradient descent: the lesson's problem and its closed forms.

Data: x ~ U(0, 1), y = 0.1 x + 0.5 + N(0, noise), float32 like the course. Loss: MSE
``mean((w x + b - y)^2)``. Start at w=0, b=-1.

The loss is a quadratic in theta = (w, b): ``L(theta) = L* + e^T (H / 2) e`` with
``e = theta - theta*``, ``theta*`` the least-squares solution and the (constant) Hessian
``H = 2 [[E x^2, E x], [E x, 1]]``. Gradient descent at a fixed LR is the linear map
``e_{t+1} = (I - lr H) e_t``, so everything about it is known in closed form: it diverges iff
``lr > 2 / lambda_max``, oscillates iff ``lr > 1 / lambda_max``, and the LR that contracts the
worst direction fastest is ``2 / (lambda_min + lambda_max)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lrscope.adapters.stepfn import FunctionTrainer
from lrscope.errors import invalid

W_TRUE, B_TRUE = 0.1, 0.5
W0, B0 = 0.0, -1.0
LESSON_LRS = (1e-3, 0.1, 0.5, 0.9, 1.0, 10.0)
LESSON_STEPS = 200


@dataclass(frozen=True, eq=False)
class LinRegData:
    """The lesson's data set: ``x`` and ``y`` float32, shape ``(n,)``."""

    x: np.ndarray
    y: np.ndarray
    noise: float
    seed: int


def make_data(n: int = 100, noise: float = 0.01, seed: int = 0) -> LinRegData:
    """Draw the lesson's data: x ~ U(0,1), y = 0.1 x + 0.5 + N(0, noise), float32.

    >>> data = make_data(n=5, seed=1)
    >>> data.x.dtype, data.x.shape
    (dtype('float32'), (5,))
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise invalid("n", "must be an integer >= 2", n=n)
    if not noise >= 0:
        raise invalid("noise", "must be >= 0", noise=noise)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, n).astype(np.float32)
    y = (W_TRUE * x + B_TRUE + rng.normal(0.0, noise, n)).astype(np.float32)
    return LinRegData(x=x, y=y, noise=float(noise), seed=int(seed))


@dataclass(frozen=True)
class Moments:
    """Sufficient statistics of the data: the MSE surface is exactly
    ``L(w, b) = w^2 xx + 2 w b x + b^2 - 2 w xy - 2 b y + yy``."""

    x: float
    xx: float
    y: float
    xy: float
    yy: float

    @classmethod
    def of(cls, data: LinRegData) -> Moments:
        x, y = data.x.astype(np.float64), data.y.astype(np.float64)
        return cls(
            x=float(x.mean()),
            xx=float((x * x).mean()),
            y=float(y.mean()),
            xy=float((x * y).mean()),
            yy=float((y * y).mean()),
        )

    def loss(self, w: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
        """Exact MSE on a grid or at a point (float64), from the moments alone."""
        w, b = np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64)
        return (
            w * w * self.xx
            + 2 * w * b * self.x
            + b * b
            - 2 * w * self.xy
            - 2 * b * self.y
            + self.yy
        )

    def hessian(self) -> np.ndarray:
        """``H = 2 [[E x^2, E x], [E x, 1]]``, shape (2, 2)."""
        return 2.0 * np.array([[self.xx, self.x], [self.x, 1.0]])

    def solution(self) -> tuple[float, float]:
        """Least-squares (w*, b*) from the normal equations."""
        var = self.xx - self.x * self.x
        w = (self.xy - self.x * self.y) / var
        return float(w), float(self.y - w * self.x)


@dataclass(frozen=True)
class Stability:
    """The LR landmarks of a quadratic: eigenvalues of H and the bounds they set."""

    lambda_min: float
    lambda_max: float

    @property
    def lr_monotone(self) -> float:
        """Below ``1/lambda_max`` no direction overshoots."""
        return 1.0 / self.lambda_max

    @property
    def lr_diverge(self) -> float:
        """Above ``2/lambda_max`` gradient descent diverges."""
        return 2.0 / self.lambda_max

    @property
    def lr_best(self) -> float:
        """``2/(lambda_min+lambda_max)``: the fixed LR with the fastest worst-case contraction."""
        return 2.0 / (self.lambda_min + self.lambda_max)

    @classmethod
    def of(cls, moments: Moments) -> Stability:
        low, high = np.linalg.eigvalsh(moments.hessian())
        return cls(lambda_min=float(low), lambda_max=float(high))


def exact_gd(
    moments: Moments, lr: float, steps: int, w0: float = W0, b0: float = B0
) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form GD iterates in float64: ``e_k = (I - lr H)^k e_0`` via the eigenbasis.

    Returns ``(path, loss)``: ``path`` shape ``(steps + 1, 2)`` with (w, b) after k steps,
    ``loss`` shape ``(steps + 1,)``. Overflow gives inf/NaN, as the real iteration would.
    """
    w_star, b_star = moments.solution()
    eigval, eigvec = np.linalg.eigh(moments.hessian())
    coords = eigvec.T @ np.array([w0 - w_star, b0 - b_star])
    k = np.arange(steps + 1)[:, None]
    with np.errstate(over="ignore", invalid="ignore"):
        error = (coords[None, :] * (1.0 - lr * eigval[None, :]) ** k) @ eigvec.T
        path = error + np.array([w_star, b_star])
        loss = moments.loss(path[:, 0], path[:, 1])
    return path, loss


REGIMES = ("crawling", "converging", "oscillating-converging", "diverging", "overflowed")


def analytic_regime(stability: Stability, moments: Moments, lr: float, steps: int) -> str:
    """The regime the maths predicts (ignoring float32 overflow, which only the run shows)."""
    if lr >= stability.lr_diverge:
        return "diverging"
    if lr > stability.lr_monotone:
        return "oscillating-converging"
    path, _ = exact_gd(moments, lr, steps)
    return "crawling" if _moved_less_than_half(path, moments) else "converging"


def _moved_less_than_half(path: np.ndarray, moments: Moments) -> bool:
    target = np.array(moments.solution())
    return bool(np.linalg.norm(path[-1] - target) > 0.5 * np.linalg.norm(path[0] - target))


@dataclass(frozen=True, eq=False)
class GDRun:
    """One run of the lesson: (w, b) and the loss after each of ``steps`` steps."""

    lr: float
    steps: int
    path: np.ndarray  # (steps + 1, 2) float64 copy of the float32 iterates; NaN after overflow
    loss: np.ndarray  # (steps + 1,) loss at each iterate
    diverged_at_step: int | None  # first step whose loss or parameters are not finite
    regime: str

    @property
    def final(self) -> tuple[float, float, float]:
        """(w, b, loss) after the last step."""
        return float(self.path[-1, 0]), float(self.path[-1, 1]), float(self.loss[-1])

    def describe_regime(self) -> str:
        if self.regime == "overflowed":
            return f"overflowed to NaN at step {self.diverged_at_step}"
        return self.regime


def mse(w: np.float32, b: np.float32, x: np.ndarray, y: np.ndarray) -> np.float32:
    """The course's loss in float32: ``mean((w x + b - y)^2)``."""
    err = w * x + b - y
    return np.float32(np.mean(err * err, dtype=np.float32))


def gradient(
    w: np.float32, b: np.float32, x: np.ndarray, y: np.ndarray
) -> tuple[np.float32, np.float32]:
    """``(dL/dw, dL/db) = (2 mean(err x), 2 mean(err))`` in float32."""
    err = w * x + b - y
    two = np.float32(2.0)
    return (two * np.mean(err * x, dtype=np.float32), two * np.mean(err, dtype=np.float32))


def gradient_descent(
    data: LinRegData, lr: float, steps: int = LESSON_STEPS, w0: float = W0, b0: float = B0
) -> GDRun:
    """Full-batch GD in float32 from (w0, b0); overflow is recorded, never raised or warned."""
    if not (lr > 0 and np.isfinite(lr)):
        raise invalid("lr", "must be a positive finite number", lr=lr)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise invalid("steps", "must be an integer >= 1", steps=steps)
    path = np.full((steps + 1, 2), np.nan)
    loss = np.full(steps + 1, np.nan)
    w, b, rate = np.float32(w0), np.float32(b0), np.float32(lr)
    diverged_at = None
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(steps + 1):
            path[k] = (w, b)
            loss[k] = mse(w, b, data.x, data.y)
            if not (np.isfinite(loss[k]) and np.isfinite(w) and np.isfinite(b)):
                diverged_at = k
                break
            if k < steps:
                dw, db = gradient(w, b, data.x, data.y)
                w, b = np.float32(w - rate * dw), np.float32(b - rate * db)
    moments = Moments.of(data)
    return GDRun(
        lr=float(lr),
        steps=steps,
        path=path,
        loss=loss,
        diverged_at_step=diverged_at,
        regime=observed_regime(path, loss, diverged_at, moments),
    )


def observed_regime(
    path: np.ndarray, loss: np.ndarray, diverged_at: int | None, moments: Moments
) -> str:
    """Classify a run from what it did, independently of the analytic bounds."""
    if diverged_at is not None:
        return "overflowed"
    if loss[-1] > loss[0]:
        return "diverging"
    steps = np.diff(path, axis=0)
    size = np.linalg.norm(steps, axis=1)
    significant = size[:-1] > 1e-3 * size.max()
    reversals = np.einsum("ij,ij->i", steps[:-1], steps[1:]) < 0
    if np.any(reversals & significant):
        return "oscillating-converging"
    return "crawling" if _moved_less_than_half(path, moments) else "converging"


def linreg_trainer(data: LinRegData, w0: float = W0, b0: float = B0) -> FunctionTrainer:
    """The lesson as a :class:`~lrscope.Trainer`: one full-batch float32 GD step per LR."""
    state = {"w": np.float32(w0), "b": np.float32(b0)}

    def step(lr: float) -> float:
        with np.errstate(over="ignore", invalid="ignore"):
            loss = mse(state["w"], state["b"], data.x, data.y)
            dw, db = gradient(state["w"], state["b"], data.x, data.y)
            rate = np.float32(lr)
            state["w"] = np.float32(state["w"] - rate * dw)
            state["b"] = np.float32(state["b"] - rate * db)
        return float(loss)

    def snapshot() -> dict[str, np.float32]:
        return dict(state)

    def restore(saved: dict[str, np.float32]) -> None:
        state.update(saved)

    trainer = FunctionTrainer(step, snapshot, restore)
    trainer.state = state  # type: ignore[attr-defined]  # exposed for inspection and tests
    return trainer
