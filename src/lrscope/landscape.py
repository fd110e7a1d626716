"""Loss landscapes of real models: 2D slices and 1D interpolations, in NumPy.

A model is reached through a small interface (:class:`LossFunction`): ``params``, a dict of
NumPy arrays (the weights at the centre of the picture), and ``loss_at(params) -> float``,
the loss with the model's weights replaced by ``params``. Framework glue builds one
(``lrscope.adapters.torch_landscape.torch_loss_function``); :class:`ArrayLoss` wraps two plain
callables/values. Everything here is framework-free.

- :func:`random_slice`: ``L(theta + a d1 + b d2)`` with two filter-normalised random directions
  (Li et al. 2018, "Visualizing the Loss Landscape of Neural Nets"): each filter (slice along
  axis 0) of a direction gets the norm of the same filter of the weights, and 1-D tensors
  (biases, norm-layer scales) get a zero direction, so that the picture does not depend on the
  scale invariance of ReLU/BatchNorm networks.
- :func:`pca_slice`: the same slice along the top-2 principal directions of a recorded
  trajectory, centred on its last point; the trajectory is drawn in that plane and the
  explained variance is reported (a small share means the plane misses most of the path).
- :func:`interpolation`: ``L((1 - t) theta_0 + t theta_1)`` from initial to final weights.

Each returns a :class:`LandscapeResult` (versioned JSON), drawn by the HTML report
(:func:`lrscope.viz.report.to_html`) as an interactive surface and contour map.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from lrscope.core import jsonio
from lrscope.errors import ResultFormatError, invalid

SCHEMA_VERSION = 1
KIND = "landscape"
METHODS = ("random", "pca", "directions", "interpolation")
Params = dict[str, np.ndarray]
_EPS = 1e-10


class LossFunction(Protocol):
    """What a landscape needs from a model: the centre weights and the loss at other weights."""

    params: Mapping[str, np.ndarray]

    def loss_at(self, params: Mapping[str, np.ndarray]) -> float: ...


@dataclass
class ArrayLoss:
    """A :class:`LossFunction` from a callable and a dict of arrays.

    >>> f = ArrayLoss(lambda p: float((p["w"] ** 2).sum()), {"w": np.ones(2)})
    >>> f.loss_at(f.params)
    2.0
    """

    fn: Callable[[Mapping[str, np.ndarray]], float]
    params: Mapping[str, np.ndarray]

    def loss_at(self, params: Mapping[str, np.ndarray]) -> float:
        return float(self.fn(params))


@dataclass(frozen=True, eq=False)
class LandscapeResult:
    """A computed loss landscape.

    Attributes:
        method: ``"random"``, ``"pca"``, ``"directions"`` (user-given) or ``"interpolation"``.
        alphas: coordinates along the first direction, shape ``(n,)`` (for an interpolation:
            ``t``, with 0 the initial and 1 the final weights).
        betas: coordinates along the second direction, shape ``(m,)``; None for 1D.
        loss: shape ``(m, n)`` (row = beta, column = alpha) for 2D, ``(n,)`` for 1D;
            non-finite values kept as measured.
        explained_variance: share of the trajectory's variance along each PCA direction.
        trajectory: the recorded trajectory's coordinates in the plane, shape ``(k, 2)``.
        metadata: free-form JSON scalars (model name, seed, ...).
    """

    method: str
    alphas: np.ndarray
    loss: np.ndarray
    betas: np.ndarray | None = None
    explained_variance: tuple[float, float] | None = None
    trajectory: np.ndarray | None = None
    metadata: dict[str, str | int | float | bool | None] = field(default_factory=dict)

    @property
    def is_2d(self) -> bool:
        return self.betas is not None

    @property
    def center_loss(self) -> float:
        """Loss at the origin of the picture (the model's weights), when the grid holds it."""
        ia = np.flatnonzero(self.alphas == 0)
        if ia.size == 0:
            return math.nan
        if self.betas is None:
            return float(self.loss[ia[0]])
        ib = np.flatnonzero(self.betas == 0)
        return float(self.loss[ib[0], ia[0]]) if ib.size else math.nan

    def to_html(self, path: str | os.PathLike[str] | None = None) -> str:
        """The self-contained HTML report of this landscape (written to ``path`` if given)."""
        from lrscope.viz.report import to_html

        return to_html(self, path)

    def __repr__(self) -> str:
        """One line: the method, the grid and the range of the loss (the dataclass repr
        printed the whole loss grid)."""
        grid = (
            f"{self.loss.shape[0]} x {self.loss.shape[1]} grid"
            if self.is_2d and self.loss.ndim == 2
            else f"{self.alphas.size} points"
        )
        finite = self.loss[np.isfinite(self.loss)]
        span = f"loss {finite.min():.4g}..{finite.max():.4g}" if finite.size else "no finite loss"
        if finite.size < self.loss.size:
            span += f" ({self.loss.size - finite.size} non-finite)"
        return f"LandscapeResult({self.method}, {grid}, {span})"

    def _repr_html_(self) -> str:
        """Notebook display: the interactive surface (or line, for an interpolation)."""
        from lrscope.viz.report import repr_html

        return repr_html(self)

    # -- JSON --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "schema_version": SCHEMA_VERSION,
            "method": self.method,
            "alphas": jsonio.encode_array(self.alphas),
            "betas": None if self.betas is None else jsonio.encode_array(self.betas),
            "loss": jsonio.encode_array(self.loss),
            "explained_variance": None
            if self.explained_variance is None
            else [float(v) for v in self.explained_variance],
            "trajectory": None
            if self.trajectory is None
            else [jsonio.encode_array(self.trajectory[:, i]) for i in range(2)],
            "metadata": dict(self.metadata),
        }

    def to_json(self) -> str:
        return jsonio.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: object) -> LandscapeResult:
        body = jsonio.check_header(data, KIND, SCHEMA_VERSION)
        where = "landscape"
        method = jsonio.get(body, "method", str, where)
        if method not in METHODS:
            raise ResultFormatError(f"`method` must be one of {METHODS}; got {method!r}")
        alphas = jsonio.decode_array(jsonio.get(body, "alphas", list, where), "alphas")
        betas_raw = body.get("betas")
        betas = None if betas_raw is None else jsonio.decode_array(betas_raw, "betas")
        loss = jsonio.decode_array(jsonio.get(body, "loss", list, where), "loss")
        shape = (alphas.size,) if betas is None else (betas.size, alphas.size)
        if loss.size != math.prod(shape):
            raise ResultFormatError(
                f"`loss` has {loss.size} values; the grid {shape} needs {math.prod(shape)}"
            )
        ev = body.get("explained_variance")
        if ev is not None:
            ev_arr = jsonio.decode_array(ev, "explained_variance")
            if ev_arr.size != 2:
                raise ResultFormatError("`explained_variance` must hold two numbers")
            ev = (float(ev_arr[0]), float(ev_arr[1]))
        traj_raw = body.get("trajectory")
        trajectory = None
        if traj_raw is not None:
            if not isinstance(traj_raw, list) or len(traj_raw) != 2:
                raise ResultFormatError("`trajectory` must be two lists (alpha, beta)")
            cols = [jsonio.decode_array(c, "trajectory") for c in traj_raw]
            if cols[0].size != cols[1].size:
                raise ResultFormatError("`trajectory` columns must have equal lengths")
            trajectory = np.stack(cols, axis=1)
        return cls(
            method=method,
            alphas=alphas,
            betas=betas,
            loss=loss.reshape(shape),
            explained_variance=ev,
            trajectory=trajectory,
            metadata=jsonio.check_metadata(body.get("metadata", {}), "metadata"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> LandscapeResult:
        return cls.from_dict(jsonio.loads(text))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the JSON atomically to ``path``."""
        return jsonio.write_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LandscapeResult:
        return cls.from_json(jsonio.read_text(path))


# -- directions ---------------------------------------------------------------------------
def filter_normalized_direction(
    params: Mapping[str, np.ndarray], rng: np.random.Generator | int | None = 0
) -> Params:
    """A Gaussian direction with each filter scaled to the norm of the weights' filter.

    A filter is a slice along axis 0 (an output unit of a dense layer, an output channel of a
    convolution). 1-D and 0-D tensors (biases, BatchNorm/LayerNorm parameters) get zeros, as
    in Li et al. 2018. Returns float64 arrays shaped like ``params``.
    """
    rng = np.random.default_rng(rng)
    direction: Params = {}
    for name, value in params.items():
        weights = np.asarray(value, dtype=np.float64)
        if weights.ndim <= 1:
            direction[name] = np.zeros_like(weights)
            continue
        d = rng.standard_normal(weights.shape)
        axes = tuple(range(1, weights.ndim))
        w_norm = np.sqrt((weights * weights).sum(axis=axes, keepdims=True))
        d_norm = np.sqrt((d * d).sum(axis=axes, keepdims=True))
        direction[name] = d * (w_norm / (d_norm + _EPS))
    return direction


def pca_directions(
    trajectory: Sequence[Mapping[str, np.ndarray]],
) -> tuple[Params, Params, tuple[float, float], np.ndarray]:
    """Top-2 principal directions of ``trajectory`` (k >= 3 parameter dicts), centred on the
    last point.

    Returns ``(d1, d2, explained_variance_ratio, coords)``: unit-norm float64 directions,
    the share of the variance of the centred trajectory along each, and the ``(k, 2)``
    coordinates of every point of the trajectory in that plane.
    """
    if len(trajectory) < 3:
        raise invalid(
            "trajectory", "must hold at least 3 parameter dicts", trajectory_len=len(trajectory)
        )
    names = list(trajectory[-1])
    for i, point in enumerate(trajectory):
        if list(point) != names:
            raise invalid(
                "trajectory", "must hold dicts with the same keys", index=i, keys=list(point)
            )
    flat = np.stack([_flatten(point, names) for point in trajectory])
    centred = flat - flat[-1]
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    total = float((singular**2).sum())
    if total == 0.0 or singular.size < 2 or singular[1] == 0.0:
        raise invalid("trajectory", "must move in at least two independent directions")
    ratio = (float(singular[0] ** 2 / total), float(singular[1] ** 2 / total))
    coords = centred @ vt[:2].T
    like = trajectory[-1]
    return _unflatten(vt[0], like), _unflatten(vt[1], like), ratio, coords


def _flatten(params: Mapping[str, np.ndarray], names: list[str]) -> np.ndarray:
    return np.concatenate([np.asarray(params[n], dtype=np.float64).reshape(-1) for n in names])


def _unflatten(vector: np.ndarray, like: Mapping[str, np.ndarray]) -> Params:
    out: Params = {}
    offset = 0
    for name, value in like.items():
        shape = np.shape(value)
        size = math.prod(shape)
        out[name] = vector[offset : offset + size].reshape(shape).copy()
        offset += size
    return out


def _axis(span: float | tuple[float, float], points: int, name: str) -> np.ndarray:
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        raise invalid("points", "must be an integer >= 2", points=points)
    if isinstance(span, (int, float)) and not isinstance(span, bool):
        low, high = -float(span), float(span)
    elif isinstance(span, (tuple, list)) and len(span) == 2:
        low, high = float(span[0]), float(span[1])
    else:
        raise invalid(name, "must be a positive number or a (low, high) pair", **{name: span})
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise invalid(
            name, "must be a positive number or a (low, high) pair with low < high", **{name: span}
        )
    grid = np.linspace(low, high, points)
    # Put the centre exactly on the grid when it is inside, so the model's own loss is drawn.
    if low < 0 < high:
        grid[np.argmin(np.abs(grid))] = 0.0
    return grid


def _check_direction(direction: Mapping[str, np.ndarray], params: Mapping[str, np.ndarray]) -> None:
    if set(direction) != set(params):
        raise invalid(
            "directions",
            "must have the same keys as the model's params",
            missing=sorted(set(params) - set(direction)),
            extra=sorted(set(direction) - set(params)),
        )
    for name, value in params.items():
        if np.shape(direction[name]) != np.shape(value):
            raise invalid(
                "directions",
                f"must match the shape of params[{name!r}]",
                expected=np.shape(value),
                received=np.shape(direction[name]),
            )


def _moved(
    params: Mapping[str, np.ndarray], steps: Sequence[tuple[float, Mapping[str, np.ndarray]]]
) -> Params:
    """``params + sum(c * d)`` computed in float64, cast back to each tensor's dtype."""
    out: Params = {}
    for name, value in params.items():
        base = np.asarray(value)
        total = base.astype(np.float64)
        for coef, direction in steps:
            if coef != 0.0:
                total = total + coef * np.asarray(direction[name], dtype=np.float64)
        out[name] = total.astype(base.dtype) if np.issubdtype(base.dtype, np.floating) else total
    return out


# -- landscapes ---------------------------------------------------------------------------
def plane_slice(
    model: LossFunction,
    d1: Mapping[str, np.ndarray],
    d2: Mapping[str, np.ndarray],
    *,
    span: float | tuple[float, float] = 1.0,
    points: int = 21,
    method: str = "directions",
    explained_variance: tuple[float, float] | None = None,
    trajectory: np.ndarray | None = None,
    metadata: Mapping[str, str | int | float | bool | None] | None = None,
) -> LandscapeResult:
    """``L(theta + a d1 + b d2)`` on a ``points x points`` grid, ``a, b`` in ``[-span, span]``.

    ``loss`` row ``i``, column ``j`` holds the loss at ``(alphas[j], betas[i])``.
    """
    params = model.params
    _check_direction(d1, params)
    _check_direction(d2, params)
    alphas = _axis(span, points, "span")
    betas = alphas.copy()
    loss = np.empty((betas.size, alphas.size))
    for i, b in enumerate(betas):
        for j, a in enumerate(alphas):
            loss[i, j] = float(model.loss_at(_moved(params, [(a, d1), (b, d2)])))
    return LandscapeResult(
        method=method,
        alphas=alphas,
        betas=betas,
        loss=loss,
        explained_variance=explained_variance,
        trajectory=trajectory,
        metadata=dict(metadata or {}),
    )


def random_slice(
    model: LossFunction,
    *,
    span: float | tuple[float, float] = 1.0,
    points: int = 21,
    seed: int = 0,
    metadata: Mapping[str, str | int | float | bool | None] | None = None,
) -> LandscapeResult:
    """2D slice along two filter-normalised random directions (Li et al. 2018).

    ``span=1`` reaches one filter norm away from the weights in each direction.
    """
    rng = np.random.default_rng(seed)
    d1 = filter_normalized_direction(model.params, rng)
    d2 = filter_normalized_direction(model.params, rng)
    if not any(np.any(v) for v in d1.values()):
        raise invalid(
            "model.params",
            "must hold at least one tensor with 2 or more dimensions (1-D tensors get a zero "
            "direction); pass your own directions to plane_slice()",
            shapes={k: np.shape(v) for k, v in model.params.items()},
        )
    meta = {"seed": seed, **dict(metadata or {})}
    return plane_slice(model, d1, d2, span=span, points=points, method="random", metadata=meta)


def pca_slice(
    model: LossFunction,
    trajectory: Sequence[Mapping[str, np.ndarray]],
    *,
    span: float | tuple[float, float] | None = None,
    points: int = 21,
    metadata: Mapping[str, str | int | float | bool | None] | None = None,
) -> LandscapeResult:
    """2D slice along the top-2 PCA directions of a recorded ``trajectory`` (list of param
    dicts, oldest first), centred on ``model.params`` (normally the trajectory's last point).

    ``span`` defaults to 1.2 times the trajectory's extent in the plane, so the path fits.
    """
    d1, d2, ratio, coords = pca_directions(trajectory)
    if span is None:
        extent = float(np.abs(coords).max())
        span = 1.2 * extent if extent > 0 else 1.0
    return plane_slice(
        model,
        d1,
        d2,
        span=span,
        points=points,
        method="pca",
        explained_variance=ratio,
        trajectory=coords,
        metadata=metadata,
    )


def interpolation(
    model: LossFunction,
    start: Mapping[str, np.ndarray],
    end: Mapping[str, np.ndarray] | None = None,
    *,
    t: tuple[float, float] = (-0.25, 1.25),
    points: int = 31,
    metadata: Mapping[str, str | int | float | bool | None] | None = None,
) -> LandscapeResult:
    """``L((1 - t) start + t end)`` for ``t`` in ``[t[0], t[1]]`` (``end`` defaults to
    ``model.params``): the 1D view from initial to final weights (Goodfellow et al. 2015)."""
    end = model.params if end is None else end
    _check_direction(start, end)
    alphas = _axis(t, points, "t")
    if t[0] < 1 < t[1]:
        alphas[np.argmin(np.abs(alphas - 1))] = 1.0
    delta = {k: np.asarray(end[k], np.float64) - np.asarray(start[k], np.float64) for k in end}
    loss = np.array(
        [float(model.loss_at(_moved(end, [(a - 1.0, delta)]))) for a in alphas], dtype=np.float64
    )
    return LandscapeResult(
        method="interpolation", alphas=alphas, loss=loss, metadata=dict(metadata or {})
    )
