"""The self-contained HTML report: one file, plotly.js inlined, opens offline.

``to_html(result_or_results, path=None)`` takes a :class:`~lrscope.RangeTestResult`, a
:class:`~lrscope.LessonResult`, a :class:`~lrscope.landscape.LandscapeResult`, a sweep result
(anything with ``best_lr_curve()``), a :class:`~lrscope.VerifyResult`, or a list of them, and
returns one HTML page (written atomically to ``path`` when given). The page makes no network
request: plotly.js is inlined, fonts are the system's, no MathJax. Every piece of text from a
result (metadata is user data) is HTML-escaped; the figure data travels as JSON with ``<``,
``>`` and ``&`` escaped, so no string can close the ``<script>`` it sits in.

The figures are plain plotly.js specs (dicts) built here from result objects only, never from
a model; the ``*_figure`` functions are public so tests and users can inspect or reuse them.
The output is deterministic (no timestamp), so a report can be diffed.
"""

from __future__ import annotations

import html
import json
import math
import os
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import fields, is_dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lrscope.core import jsonio
from lrscope.errors import invalid, require
from lrscope.viz.plots import RULE_COLOURS

if TYPE_CHECKING:  # pragma: no cover
    from lrscope.core.result import RangeTestResult
    from lrscope.core.verify import VerifyResult
    from lrscope.lab.lesson import LessonResult
    from lrscope.landscape import LandscapeResult

Figure = dict[str, Any]

PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
#: plotly.js config for every figure: no logo, no link to the cloud editor, resizes with page.
CONFIG = {
    "responsive": True,
    "displaylogo": False,
    "showLink": False,
    "showEditInChartStudio": False,
}
DIGITS = 7  # significant digits kept for plotted numbers (the JSON result keeps them all)

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
margin:0 auto;max-width:1100px;padding:1rem 1.5rem;color:#222;line-height:1.45}
h1{font-size:1.6rem;margin:.4rem 0}h2{font-size:1.25rem;margin-top:2rem;
border-bottom:1px solid #ddd;padding-bottom:.2rem}h3{font-size:1.05rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #ddd;padding:.25rem .6rem;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.lrscope-plot{width:100%;height:440px}.lrscope-plot.tall{height:620px}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:1rem}
@media(max-width:900px){.grid2{grid-template-columns:1fr}}
.lead{font-size:1.05rem}.muted{color:#666;font-size:.85rem}
.pick{background:#eef8ee}
.warn{background:#fff6e5;border-left:4px solid #e69500;padding:.4rem .8rem;margin:.4rem 0}
"""


# -- small helpers -----------------------------------------------------------------------
def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: object, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.{digits}g}"
    return str(value)


def _nums(values: Iterable[float] | np.ndarray) -> list[float | None]:
    """Floats for plotly: rounded to DIGITS significant digits; NaN/inf become null (a gap)."""
    out: list[float | None] = []
    for v in np.asarray(values, dtype=np.float64).reshape(-1).tolist():
        out.append(float(f"{v:.{DIGITS}g}") if math.isfinite(v) else None)
    return out


def _grid(values: np.ndarray) -> list[list[float | None]]:
    return [_nums(row) for row in np.asarray(values, dtype=np.float64)]


def _hover(text: str, width: int = 70) -> str:
    """Escaped text wrapped for a plotly hover label (which renders <br> and entities)."""
    return "<br>".join(_esc(line) for line in textwrap.wrap(str(text), width) or [""])


def _script_json(data: object) -> str:
    """JSON that is safe inside <script>: no '</script>', no '<!--', no U+2028/2029."""
    text = json.dumps(data, allow_nan=False, separators=(",", ":"))
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], pick: int | None = None
) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cells = []
        for cell in row:
            numeric = isinstance(cell, (int, float, np.number)) and not isinstance(cell, bool)
            cls = ' class="num"' if numeric else ""
            cells.append(f"<td{cls}>{_esc(_fmt(cell))}</td>")
        attr = ' class="pick"' if pick is not None and i == pick else ""
        body.append(f"<tr{attr}>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class _Page:
    """Collects sections of HTML and the figures they reference."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.figures: dict[str, Figure] = {}

    def add(self, html_text: str) -> None:
        self.parts.append(html_text)

    def figure(self, figure: Figure, tall: bool = False) -> str:
        fig_id = f"lrscope-fig-{len(self.figures) + 1}"
        self.figures[fig_id] = figure
        cls = "lrscope-plot tall" if tall else "lrscope-plot"
        return f'<div id="{fig_id}" class="{cls}"></div>'

    def script(self) -> str:
        return (
            "<script>(function(){var figs="
            + _script_json(self.figures)
            + ";var config="
            + _script_json(CONFIG)
            + ";Object.keys(figs).forEach(function(id){var f=figs[id];"
            "Plotly.newPlot(id,f.data,f.layout,config);});})();</script>"
        )


# -- range test ----------------------------------------------------------------------------
def _finite_prefix_interp(result: RangeTestResult, lr: float) -> float | None:
    ok = np.isfinite(result.smooth_loss) & np.isfinite(result.lr) & (result.lr > 0)
    if not ok.any():
        return None
    stop = int(np.argmin(ok)) if not ok.all() else ok.size
    lrs, smooth = result.lr[:stop], result.smooth_loss[:stop]
    if lrs.size == 0:
        return None
    return float(np.interp(np.log10(lr), np.log10(lrs), smooth))


def range_test_figure(result: RangeTestResult, height: int | None = None) -> Figure:
    """LR (log x) vs raw and smoothed loss; each rule's suggestion as a marker (its reason on
    hover) and a dashed line; the stability ceiling ``lr_diverge`` as a dotted line."""
    from lrscope.viz.text import describe_stop

    data: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "mode": "lines",
            "name": "loss (raw)",
            "x": _nums(result.lr),
            "y": _nums(result.loss),
            "line": {"color": "#b0b0b0", "width": 1},
            "hovertemplate": "lr=%{x:.4g}<br>loss=%{y:.5g}<extra>raw</extra>",
        },
        {
            "type": "scatter",
            "mode": "lines",
            "name": "loss (smoothed)",
            "x": _nums(result.lr),
            "y": _nums(result.smooth_loss),
            "line": {"color": "#1f77b4", "width": 2.5},
            "hovertemplate": "lr=%{x:.4g}<br>smoothed=%{y:.5g}<extra>smoothed</extra>",
        },
    ]
    if result.val_step.size:
        steps = result.val_step[(result.val_step >= 0) & (result.val_step < result.n_steps)]
        values = result.val_loss[: steps.size]
        data.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": "held-out loss",
                "x": _nums(result.lr[steps]),
                "y": _nums(values),
                "marker": {"color": "#17becf", "size": 7, "symbol": "diamond"},
                "hovertemplate": "lr=%{x:.4g}<br>held-out=%{y:.5g}<extra></extra>",
            }
        )
    shapes: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    from lrscope.core.rules import DEFAULT_RULE

    for name, suggestion in result.suggestions().items():
        if suggestion.lr is None:
            continue
        colour = RULE_COLOURS.get(name, "#333333")
        y = _finite_prefix_interp(result, suggestion.lr)
        label = f"{name}{' (default)' if name == DEFAULT_RULE else ''}: {suggestion.lr:.3g}"
        data.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": label,
                "x": _nums([suggestion.lr]),
                "y": _nums([y if y is not None else math.nan]),
                "marker": {
                    "color": colour,
                    "size": 11,
                    "symbol": "circle-open",
                    "line": {"width": 3},
                },
                "hovertemplate": f"<b>{_esc(name)}</b>: lr=%{{x:.4g}}<br>"
                + _hover(suggestion.reason)
                + "<extra></extra>",
            }
        )
        shapes.append(
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": suggestion.lr,
                "x1": suggestion.lr,
                "y0": 0,
                "y1": 1,
                "line": {"color": colour, "width": 1.2, "dash": "dash"},
            }
        )
    if result.lr_diverge is not None and math.isfinite(result.lr_diverge):
        shapes.append(
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": result.lr_diverge,
                "x1": result.lr_diverge,
                "y0": 0,
                "y1": 1,
                "line": {"color": "#000000", "width": 2, "dash": "dot"},
            }
        )
        annotations.append(
            {
                "x": math.log10(result.lr_diverge),
                "xref": "x",
                "y": 1.0,
                "yref": "paper",
                "text": f"diverges above {result.lr_diverge:.3g}",
                "showarrow": False,
                "xanchor": "right",
                "yanchor": "top",
                "font": {"size": 11},
            }
        )
    yaxis: dict[str, Any] = {"title": {"text": "training loss"}}
    shown = result.smooth_loss[np.isfinite(result.smooth_loss)]
    if shown.size:
        # Frame the fall from the start to the minimum; the blow-up after it runs off the top
        # (double-click the plot to see everything).
        low, high = float(shown.min()), float(shown[0])
        pad = 0.1 * max(high - low, abs(high) * 1e-3, 1e-12)
        yaxis["range"] = [low - pad, high + 3 * pad]
    layout: dict[str, Any] = {
        "title": {"text": f"LR range test: {_esc(describe_stop(result))}"},
        "xaxis": {"type": "log", "title": {"text": "learning rate"}, "exponentformat": "power"},
        "yaxis": yaxis,
        "shapes": shapes,
        "annotations": annotations,
        "hovermode": "closest",
        "legend": {"font": {"size": 11}},
        "margin": {"t": 50, "r": 10},
    }
    if height is not None:
        layout["height"] = height
    return {"data": data, "layout": layout}


def _run_rows(result: RangeTestResult) -> list[list[object]]:
    from lrscope.viz.text import describe_stop

    rows: list[list[object]] = [
        ["LR ramp", f"{result.start_lr:.3g} -> {result.end_lr:.3g} ({result.mode})"],
        ["steps requested / run", f"{result.steps} / {result.n_steps}"],
        ["stop", describe_stop(result)],
        ["stability ceiling lr_diverge", result.lr_diverge],
        ["smoothing beta", result.beta],
        ["divergence factor", result.diverge_factor],
        ["elapsed (s)", result.elapsed_s],
    ]
    known = {
        "lr",
        "loss",
        "smooth_loss",
        "stop_reason",
        "stop_step",
        "start_lr",
        "end_lr",
        "steps",
        "mode",
        "beta",
        "diverge_factor",
        "lr_diverge",
        "val_step",
        "val_loss",
        "elapsed_s",
        "metadata",
    }
    # Fields added later (e.g. a confidence) show up without a change here.
    if is_dataclass(result):
        for f in fields(result):
            if f.name in known:
                continue
            value = getattr(result, f.name)
            if hasattr(value, "to_dict"):
                value = json.dumps(value.to_dict(), default=str)[:300]
            elif isinstance(value, np.ndarray):
                continue
            rows.append([f.name.replace("_", " "), value])
    return rows


def _quality_html(result: RangeTestResult) -> str:
    """How far to trust the suggestion: ``quality()``'s interval, and its flags as the same
    plain-words warnings the CLI prints (or a line saying none was raised)."""
    from lrscope.core.confidence import _quality_words, retest_note

    quality = result.quality()
    parts = []
    note = retest_note(result)
    if note is not None:
        parts.append(f"<p class='muted'><b>Tested again:</b> {_esc(note)}</p>")
    if quality.interval is not None:
        low, high = quality.interval
        parts.append(
            f"<p class='muted'>Reading uncertainty of this curve: {low:.3g} .. {high:.3g} "
            "(<code>result.quality().interval</code>). Check the LR for your step budget "
            "with <code>lrscope.verify</code>.</p>"
        )
    warnings = _quality_words(quality, result)
    parts += [f"<p class='warn'><b>Warning:</b> {_esc(text)}</p>" for text in warnings]
    if not warnings:
        parts.append("<p class='muted'>No quality flag was raised on this curve.</p>")
    return "".join(parts)


def _range_test_section(page: _Page, result: RangeTestResult, heading: str) -> None:
    from lrscope.core.rules import DEFAULT_RULE

    suggestions = result.suggestions()
    default = suggestions.get(DEFAULT_RULE)
    names = list(suggestions)
    lead = ""
    if default is not None and default.lr is not None:
        lead = (
            f'<p class="lead">Suggested learning rate: <b>{default.lr:.3g}</b> '
            f"(rule <code>{_esc(DEFAULT_RULE)}</code>). {_esc(default.reason)}</p>"
        )
    rule_rows = [[name, s.lr, s.reason] for name, s in suggestions.items()]
    meta_rows = [[k, v] for k, v in result.metadata.items()]
    page.add(
        f"<section class='range-test'><h2>{_esc(heading)}</h2>{lead}"
        + _quality_html(result)
        + page.figure(range_test_figure(result))
        + "<p class='muted'>Hover a circle for the rule's reason; drag to zoom, double-click to "
        "see the whole curve (the view is framed on the fall to the minimum).</p>"
        + "<h3>Rules</h3>"
        + _table(
            ["rule", "suggested lr", "why"],
            rule_rows,
            pick=names.index(DEFAULT_RULE) if DEFAULT_RULE in names else None,
        )
        + "<div class='grid2'><div><h3>Run</h3>"
        + _table(["setting", "value"], _run_rows(result))
        + "</div><div><h3>Metadata</h3>"
        + (_table(["key", "value"], meta_rows) if meta_rows else "<p class='muted'>none</p>")
        + "</div></div></section>"
    )


# -- the lesson ------------------------------------------------------------------------------
def lesson_box(lesson: LessonResult, margin: float = 0.6) -> tuple[float, float, float, float]:
    """(w_lo, w_hi, b_lo, b_hi): a square box centred on the solution that holds the start
    with room for an overshoot, so a converging path stays inside and a diverging one leaves."""
    w_star, b_star = lesson.closed_form
    w0, b0 = (float(v) for v in lesson.runs[0].path[0]) if lesson.runs else (0.0, -1.0)
    half = (1.0 + margin) * max(abs(w0 - w_star), abs(b0 - b_star), 1e-3)
    return w_star - half, w_star + half, b_star - half, b_star + half


def clip_path(path: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The part of a (k, 2) path before it first leaves ``box`` (or turns non-finite), plus the
    point where it crosses the box's edge: a diverging run visibly runs off the picture."""
    w_lo, w_hi, b_lo, b_hi = box
    path = np.asarray(path, dtype=np.float64)
    inside = (
        np.isfinite(path).all(axis=1)
        & (path[:, 0] >= w_lo)
        & (path[:, 0] <= w_hi)
        & (path[:, 1] >= b_lo)
        & (path[:, 1] <= b_hi)
    )
    if inside.all():
        return path
    cut = int(np.argmin(inside))
    if cut == 0:
        return path[:0]
    kept = path[:cut]
    a, b = path[cut - 1], path[cut]
    if np.isfinite(b).all():
        # Largest s in (0, 1] with a + s (b - a) still in the box.
        s = 1.0
        d = b - a
        for k, (lo, hi) in enumerate(((w_lo, w_hi), (b_lo, b_hi))):
            if d[k] > 0:
                s = min(s, (hi - a[k]) / d[k])
            elif d[k] < 0:
                s = min(s, (lo - a[k]) / d[k])
        kept = np.vstack([kept, a + max(s, 0.0) * d])
    return kept


def _run_colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def lesson_data_figure(lesson: LessonResult) -> Figure:
    """The data and the line each run ended on; the least-squares line in black."""
    grid = [0.0, 1.0]
    w_star, b_star = lesson.closed_form
    data: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "mode": "markers",
            "name": "data",
            "x": _nums(lesson.data.x),
            "y": _nums(lesson.data.y),
            "marker": {"color": "#888888", "size": 5},
        },
        {
            "type": "scatter",
            "mode": "lines",
            "name": f"least squares (w={w_star:.4g}, b={b_star:.4g})",
            "x": grid,
            "y": _nums([b_star, w_star + b_star]),
            "line": {"color": "#000000", "width": 3},
        },
    ]
    for i, run in enumerate(lesson.runs):
        w, b, _ = run.final
        if math.isfinite(w) and math.isfinite(b):
            data.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": f"lr={run.lr:g} (w={w:.3g}, b={b:.3g})",
                    "x": grid,
                    "y": _nums([b, w + b]),
                    "line": {"color": _run_colour(i), "width": 1.5},
                }
            )
    layout = {
        "title": {"text": "Data and the fitted line after GD (overflowed runs have none)"},
        "xaxis": {"title": {"text": "x"}},
        "yaxis": {"title": {"text": "y"}},
        "legend": {"font": {"size": 10}},
        "margin": {"t": 50, "r": 10},
    }
    return {"data": data, "layout": layout}


def lesson_loss_figure(lesson: LessonResult) -> Figure:
    """Loss vs step per LR (log y); a run that overflows ends with an x."""
    data: list[dict[str, Any]] = []
    for i, run in enumerate(lesson.runs):
        steps = np.arange(run.loss.size)
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": f"lr={run.lr:g}: {run.describe_regime()}",
                "x": steps.tolist(),
                "y": _nums(run.loss),
                "line": {"color": _run_colour(i), "width": 2},
                "hovertemplate": f"lr={run.lr:g}<br>step %{{x}}<br>loss=%{{y:.4g}}<extra></extra>",
            }
        )
        finite = np.flatnonzero(np.isfinite(run.loss))
        if run.diverged_at_step is not None and finite.size:
            last = int(finite[-1])
            data.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "showlegend": False,
                    "x": [last],
                    "y": _nums([run.loss[last]]),
                    "marker": {"color": _run_colour(i), "symbol": "x", "size": 11},
                    "hovertemplate": f"lr={run.lr:g}: last finite loss at step %{{x}}"
                    "<extra></extra>",
                }
            )
    yaxis: dict[str, Any] = {"title": {"text": "MSE"}, "type": "log", "exponentformat": "power"}
    finite_losses = np.concatenate(
        [np.zeros(0)] + [r.loss[np.isfinite(r.loss) & (r.loss > 0)] for r in lesson.runs]
    )
    starts = [r.loss[0] for r in lesson.runs if np.isfinite(r.loss[0]) and r.loss[0] > 0]
    if finite_losses.size and starts:
        # Frame the converging runs; a blow-up to 1e38 would flatten them (double-click: all).
        yaxis["range"] = [math.log10(finite_losses.min()) - 0.3, math.log10(max(starts)) + 2.0]
    layout = {
        "title": {"text": "Loss vs step: same steps, different learning rates"},
        "xaxis": {"title": {"text": "step"}},
        "yaxis": yaxis,
        "legend": {"font": {"size": 10}},
        "margin": {"t": 50, "r": 10},
    }
    return {"data": data, "layout": layout}


def _lesson_grid(lesson: LessonResult, points: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    w_lo, w_hi, b_lo, b_hi = lesson_box(lesson)
    w_axis = np.linspace(w_lo, w_hi, points)
    b_axis = np.linspace(b_lo, b_hi, points)
    w_grid, b_grid = np.meshgrid(w_axis, b_axis)
    return w_axis, b_axis, lesson.moments.loss(w_grid, b_grid)


def lesson_surface_figure(lesson: LessonResult, points: int = 61) -> Figure:
    """The exact loss over (w, b) as an interactive 3D surface with each run's GD path on it.

    Paths are cut where they leave the drawn box (the diverging runs run off the bowl's rim);
    a path's height is the exact loss at its points, lifted a hair so it shows above the
    surface.
    """
    w_axis, b_axis, loss = _lesson_grid(lesson, points)
    box = lesson_box(lesson)
    lift = 0.01 * float(loss.max() - loss.min())
    data: list[dict[str, Any]] = [
        {
            "type": "surface",
            "name": "loss",
            "x": _nums(w_axis),
            "y": _nums(b_axis),
            "z": _grid(loss),
            "colorscale": "Viridis",
            "opacity": 0.85,
            "showscale": False,
            "hovertemplate": "w=%{x:.3f}<br>b=%{y:.3f}<br>loss=%{z:.4g}<extra></extra>",
            "contours": {"z": {"show": True, "usecolormap": True, "project": {"z": True}}},
        }
    ]
    for i, run in enumerate(lesson.runs):
        clipped = clip_path(run.path, box)
        if clipped.shape[0] == 0:
            continue
        z = lesson.moments.loss(clipped[:, 0], clipped[:, 1]) + lift
        data.append(
            {
                "type": "scatter3d",
                "mode": "lines+markers",
                "name": f"lr={run.lr:g}: {run.describe_regime()}",
                "x": _nums(clipped[:, 0]),
                "y": _nums(clipped[:, 1]),
                "z": _nums(z),
                "line": {"color": _run_colour(i), "width": 5},
                "marker": {"color": _run_colour(i), "size": 2.5},
                "hovertemplate": f"lr={run.lr:g}<br>w=%{{x:.4g}}<br>b=%{{y:.4g}}<extra></extra>",
            }
        )
    w_star, b_star = lesson.closed_form
    data.append(
        {
            "type": "scatter3d",
            "mode": "markers",
            "name": "least-squares solution",
            "x": _nums([w_star]),
            "y": _nums([b_star]),
            "z": _nums([float(lesson.moments.loss(w_star, b_star)) + lift]),
            "marker": {"color": "#000000", "size": 5, "symbol": "diamond"},
        }
    )
    layout = {
        "title": {"text": "The loss bowl over (w, b) and gradient descent on it (drag to rotate)"},
        "scene": {
            "xaxis": {"title": {"text": "w"}},
            "yaxis": {"title": {"text": "b"}},
            "zaxis": {"title": {"text": "MSE"}},
            "camera": {"eye": {"x": 1.6, "y": -1.6, "z": 0.9}},
            "aspectmode": "manual",
            "aspectratio": {"x": 1, "y": 1, "z": 0.7},
        },
        "legend": {"font": {"size": 10}},
        "margin": {"t": 50, "l": 0, "r": 0, "b": 0},
    }
    return {"data": data, "layout": layout}


def lesson_contour_figure(lesson: LessonResult, points: int = 121) -> Figure:
    """Contours of log10(loss) over (w, b) with the same clipped GD paths, seen from above."""
    w_axis, b_axis, loss = _lesson_grid(lesson, points)
    box = lesson_box(lesson)
    with np.errstate(divide="ignore"):
        log_loss = np.log10(np.maximum(loss, np.finfo(float).tiny))
    data: list[dict[str, Any]] = [
        {
            "type": "contour",
            "name": "log10 loss",
            "x": _nums(w_axis),
            "y": _nums(b_axis),
            "z": _grid(log_loss),
            "colorscale": "Viridis",
            "ncontours": 24,
            "colorbar": {"title": {"text": "log10 MSE"}},
            "hovertemplate": "w=%{x:.3f}<br>b=%{y:.3f}<br>log10 loss=%{z:.2f}<extra></extra>",
        }
    ]
    for i, run in enumerate(lesson.runs):
        clipped = clip_path(run.path, box)
        if clipped.shape[0] == 0:
            continue
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": f"lr={run.lr:g}",
                "x": _nums(clipped[:, 0]),
                "y": _nums(clipped[:, 1]),
                "line": {"color": _run_colour(i), "width": 2},
                "marker": {"size": 4},
                "hovertemplate": f"lr={run.lr:g}<br>w=%{{x:.4g}}<br>b=%{{y:.4g}}<extra></extra>",
            }
        )
    w_star, b_star = lesson.closed_form
    data.append(
        {
            "type": "scatter",
            "mode": "markers",
            "name": "solution",
            "x": _nums([w_star]),
            "y": _nums([b_star]),
            "marker": {"color": "#ffffff", "size": 10, "symbol": "star", "line": {"width": 1}},
        }
    )
    layout = {
        "title": {"text": "The same paths from above (contours of log10 loss)"},
        "xaxis": {"title": {"text": "w"}, "range": [box[0], box[1]]},
        "yaxis": {"title": {"text": "b"}, "range": [box[2], box[3]], "scaleanchor": "x"},
        "legend": {"font": {"size": 10}, "x": 1.15},
        "margin": {"t": 50, "r": 10},
    }
    return {"data": data, "layout": layout}


def _lesson_section(page: _Page, lesson: LessonResult) -> None:
    from lrscope.lab.linreg import analytic_regime

    s = lesson.stability
    w_star, b_star = lesson.closed_form
    facts = [
        ["least-squares solution", f"w* = {w_star:.6g}, b* = {b_star:.6g}"],
        ["Hessian eigenvalues", f"{s.lambda_min:.4g}, {s.lambda_max:.4g}"],
        ["monotone below 1/lambda_max", s.lr_monotone],
        ["diverges above 2/lambda_max", s.lr_diverge],
        ["best fixed LR 2/(lambda_min+lambda_max)", s.lr_best],
        [
            "data",
            f"{lesson.data.x.size} points, noise {lesson.data.noise:g}, seed {lesson.data.seed}",
        ],
    ]
    regimes = []
    for run in lesson.runs:
        w, b, loss = run.final
        regimes.append(
            [
                run.lr,
                run.steps,
                w,
                b,
                loss,
                run.describe_regime(),
                analytic_regime(s, lesson.moments, run.lr, run.steps),
            ]
        )
    page.add(
        "<section class='lesson'><h2>The lesson: learning rate vs steps</h2>"
        f"<p class='lead'>{_esc(lesson.reading())}</p>"
        + _table(["quantity", "value"], facts)
        + "<h3>Regimes</h3>"
        + _table(
            ["lr", "steps", "w", "b", "final loss", "regime (observed)", "regime (maths)"],
            regimes,
        )
        + "<div class='grid2'><div>"
        + page.figure(lesson_data_figure(lesson))
        + "</div><div>"
        + page.figure(lesson_loss_figure(lesson))
        + "</div></div>"
        + page.figure(lesson_surface_figure(lesson), tall=True)
        + page.figure(lesson_contour_figure(lesson), tall=True)
        + "<p class='muted'>Paths are cut where they leave the drawn region: the runs above "
        "the ceiling 2/lambda_max run off the bowl within a few steps.</p></section>"
    )
    _range_test_section(page, lesson.range_test, "The lesson's LR range test")


# -- landscapes ------------------------------------------------------------------------------
def _landscape_title(result: LandscapeResult) -> str:
    if result.method == "interpolation":
        return "Loss along the line from initial (t=0) to final (t=1) weights"
    what = {
        "random": "two filter-normalised random directions",
        "pca": "the top-2 PCA directions of the trajectory",
        "directions": "two given directions",
    }.get(result.method, result.method)
    title = f"Loss landscape along {what}"
    if result.explained_variance is not None:
        a, b = result.explained_variance
        title += f" (explained variance {100 * a:.1f}% + {100 * b:.1f}%)"
    return title


def landscape_figures(result: LandscapeResult) -> list[Figure]:
    """A 1D line for an interpolation; a 3D surface and a contour map (with the trajectory,
    when recorded) for a 2D slice."""
    title = _landscape_title(result)
    if result.betas is None:
        return [
            {
                "data": [
                    {
                        "type": "scatter",
                        "mode": "lines+markers",
                        "name": "loss",
                        "x": _nums(result.alphas),
                        "y": _nums(result.loss),
                        "hovertemplate": "t=%{x:.3f}<br>loss=%{y:.5g}<extra></extra>",
                    }
                ],
                "layout": {
                    "title": {"text": _esc(title)},
                    "xaxis": {"title": {"text": "t"}},
                    "yaxis": {"title": {"text": "loss"}},
                    "shapes": [
                        {
                            "type": "line",
                            "xref": "x",
                            "yref": "paper",
                            "x0": x,
                            "x1": x,
                            "y0": 0,
                            "y1": 1,
                            "line": {"color": "#999999", "dash": "dot"},
                        }
                        for x in (0.0, 1.0)
                    ],
                },
            }
        ]
    surface: dict[str, Any] = {
        "type": "surface",
        "name": "loss",
        "x": _nums(result.alphas),
        "y": _nums(result.betas),
        "z": _grid(result.loss),
        "colorscale": "Viridis",
        "showscale": False,
        "hovertemplate": "a=%{x:.3f}<br>b=%{y:.3f}<br>loss=%{z:.5g}<extra></extra>",
        "contours": {"z": {"show": True, "usecolormap": True, "project": {"z": True}}},
    }
    contour: dict[str, Any] = {
        "type": "contour",
        "name": "loss",
        "x": _nums(result.alphas),
        "y": _nums(result.betas),
        "z": _grid(result.loss),
        "colorscale": "Viridis",
        "ncontours": 24,
        "hovertemplate": "a=%{x:.3f}<br>b=%{y:.3f}<br>loss=%{z:.5g}<extra></extra>",
    }
    centre = {
        "type": "scatter",
        "mode": "markers",
        "name": "weights (centre)",
        "x": [0.0],
        "y": [0.0],
        "marker": {"color": "#ffffff", "size": 10, "symbol": "star", "line": {"width": 1}},
    }
    contour_data: list[dict[str, Any]] = [contour, centre]
    surface_data: list[dict[str, Any]] = [surface]
    if result.trajectory is not None and result.trajectory.size:
        contour_data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "trajectory",
                "x": _nums(result.trajectory[:, 0]),
                "y": _nums(result.trajectory[:, 1]),
                "line": {"color": "#d62728", "width": 2},
                "marker": {"size": 4},
            }
        )
    axes = {
        "xaxis": {"title": {"text": "direction 1"}},
        "yaxis": {"title": {"text": "direction 2"}},
    }
    return [
        {
            "data": surface_data,
            "layout": {
                "title": {"text": _esc(title)},
                "scene": {**axes, "zaxis": {"title": {"text": "loss"}}},
                "margin": {"t": 50, "l": 0, "r": 0, "b": 0},
            },
        },
        {
            "data": contour_data,
            "layout": {"title": {"text": "Seen from above"}, **axes, "margin": {"t": 50}},
        },
    ]


def _landscape_section(page: _Page, result: LandscapeResult) -> None:
    figs = landscape_figures(result)
    rows: list[list[object]] = [
        ["method", result.method],
        ["grid", "x".join(str(n) for n in np.shape(result.loss))],
        ["loss at the weights", result.center_loss],
        ["lowest loss on the grid", float(np.nanmin(result.loss)) if result.loss.size else None],
    ]
    if result.explained_variance is not None:
        rows.append(
            ["explained variance", ", ".join(f"{v:.3g}" for v in result.explained_variance)]
        )
    rows += [[k, v] for k, v in result.metadata.items()]
    body = "".join(page.figure(f, tall=result.betas is not None) for f in figs)
    page.add(
        f"<section class='landscape'><h2>{_esc(_landscape_title(result))}</h2>"
        + body
        + _table(["", ""], rows)
        + "</section>"
    )


# -- sweeps (optional: any object with best_lr_curve(), lrs and a loss[(seed,) lr, step]) --------
def is_sweep(obj: object) -> bool:
    """True for a sweep result: ``best_lr_curve()``, ``lrs`` and a ``loss`` of shape
    ``(R, T)`` or ``(S, R, T)`` (seeds, LRs, steps), like ``lrscope.core.sweep.SweepResult``."""
    loss = getattr(obj, "loss", None)
    return (
        callable(getattr(obj, "best_lr_curve", None))
        and hasattr(obj, "lrs")
        and np.ndim(loss) in (2, 3)
    )


def _sweep_loss(sweep: Any) -> np.ndarray:
    """The (R, T) map: the median over seeds (NaN where any seed did not run the step)."""
    loss = np.asarray(sweep.loss, dtype=np.float64)
    if loss.ndim == 3:
        with np.errstate(invalid="ignore", over="ignore"):
            loss = np.median(loss, axis=0)
    return loss


def sweep_figures(sweep: Any) -> list[Figure]:
    """The LR x steps heatmap of log10 loss and the best LR for each step budget (with the
    band of LRs within tolerance of the best, when the sweep gives one)."""
    loss = _sweep_loss(sweep)
    lrs = np.asarray(sweep.lrs, dtype=np.float64).reshape(-1)
    steps = np.arange(1, loss.shape[1] + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        shown = np.where(loss > 0, np.log10(np.where(loss > 0, loss, 1.0)), np.nan)
    finite = shown[np.isfinite(shown)]
    order = np.argsort(lrs)
    heat: dict[str, Any] = {
        "type": "heatmap",
        "x": steps.tolist(),
        "y": [f"{lr:.3g}" for lr in lrs[order]],
        "z": _grid(shown[order]),
        "colorscale": "Viridis",
        "colorbar": {"title": {"text": "log10 loss"}},
        "hovertemplate": "lr=%{y}<br>step %{x}<br>log10 loss=%{z:.3f}<extra></extra>",
    }
    if finite.size:
        # Colour the useful range; a blow-up would otherwise wash out every other row.
        heat["zmin"], heat["zmax"] = float(finite.min()), float(np.percentile(finite, 95))
    curve = tuple(np.asarray(c, dtype=np.float64).reshape(-1) for c in sweep.best_lr_curve())
    budgets, best = curve[0], curve[1]
    data_best: list[dict[str, Any]] = []
    if len(curve) >= 4:
        low, high = curve[2], curve[3]
        data_best += [
            {
                "type": "scatter",
                "mode": "lines",
                "name": "band low",
                "x": _nums(budgets),
                "y": _nums(low),
                "line": {"width": 0, "shape": "hv"},
                "showlegend": False,
                "hoverinfo": "skip",
            },
            {
                "type": "scatter",
                "mode": "lines",
                "name": "LRs within tolerance of the best",
                "x": _nums(budgets),
                "y": _nums(high),
                "fill": "tonexty",
                "fillcolor": "rgba(44,160,44,0.18)",
                "line": {"width": 0, "shape": "hv"},
                "hoverinfo": "skip",
            },
        ]
    data_best.append(
        {
            "type": "scatter",
            "mode": "lines",
            "name": "best lr",
            "x": _nums(budgets),
            "y": _nums(best),
            "line": {"color": "#2ca02c", "width": 2.5, "shape": "hv"},
            "hovertemplate": "budget %{x} steps<br>best lr=%{y:.3g}<extra></extra>",
        }
    )
    return [
        {
            "data": [heat],
            "layout": {
                "title": {"text": "Loss after each step, one row per learning rate"},
                "xaxis": {"title": {"text": "step"}},
                "yaxis": {"title": {"text": "learning rate"}, "type": "category"},
                "margin": {"t": 50},
            },
        },
        {
            "data": data_best,
            "layout": {
                "title": {"text": "Best learning rate for each step budget"},
                "xaxis": {"title": {"text": "step budget"}, "type": "log"},
                "yaxis": {"title": {"text": "best lr"}, "type": "log", "exponentformat": "power"},
                "legend": {"font": {"size": 10}},
                "margin": {"t": 50},
            },
        },
    ]


def _sweep_section(page: _Page, sweep: Any) -> None:
    figs = sweep_figures(sweep)
    rows: list[list[object]] = [["learning rates", np.size(sweep.lrs)]]
    for name in ("steps", "seeds", "complete"):
        if hasattr(sweep, name):
            rows.append([name, _fmt(getattr(sweep, name))])
    best_lr = getattr(sweep, "best_lr", None)
    if callable(best_lr):
        rows.append(["best lr for the full budget", best_lr()])
    status = getattr(sweep, "status", None)
    if status is not None and np.size(status):
        values, counts = np.unique(np.asarray(status), return_counts=True)
        rows.append(["runs", ", ".join(f"{c} {v}" for v, c in zip(values, counts, strict=True))])
    rows += [[k, v] for k, v in dict(getattr(sweep, "metadata", None) or {}).items()]
    page.add(
        "<section class='sweep'><h2>LR x steps sweep</h2><div class='grid2'><div>"
        + page.figure(figs[0])
        + "</div><div>"
        + page.figure(figs[1])
        + "</div></div>"
        + _table(["", ""], rows)
        + "</section>"
    )


# -- verify -------------------------------------------------------------------------------------
def verify_figures(check: VerifyResult) -> list[Figure]:
    """Score vs LR of every candidate (log x; the best marked, the LR the candidates were
    built around as a dashed line), and each candidate's training loss per step."""
    finite = np.isfinite(check.scores)
    best = check.best_index
    score_label = (
        "held-out loss" if check.score_kind == "evaluate" else "training loss (last tenth)"
    )
    points: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": "score after the budget",
            "x": _nums(check.lrs[finite]),
            "y": _nums(check.scores[finite]),
            "line": {"color": "#1f77b4", "width": 1.5},
            "marker": {"size": 8},
            "hovertemplate": "lr=%{x:.4g}<br>score=%{y:.5g}<extra></extra>",
        }
    ]
    if best is not None:
        points.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": f"best: {check.best_lr:.3g}",
                "x": _nums(check.lrs[best : best + 1]),
                "y": _nums(check.scores[best : best + 1]),
                "marker": {"size": 15, "color": "#2ca02c", "symbol": "star"},
                "hovertemplate": "best lr=%{x:.4g}<br>score=%{y:.5g}<extra></extra>",
            }
        )
    shapes = []
    if check.around is not None:
        shapes.append(
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": check.around,
                "x1": check.around,
                "y0": 0,
                "y1": 1,
                "line": {"color": "#888", "dash": "dash", "width": 1},
            }
        )
    curves = []
    steps = np.arange(1, check.steps + 1)
    drawn = check.losses[np.isfinite(check.losses)]
    log_losses = bool(np.all(drawn > 0))  # a loss <= 0 (a log-likelihood, say): linear axis
    for i, (lr, row) in enumerate(zip(check.lrs, check.losses, strict=True)):
        shown = np.where(np.isfinite(row) & ((row > 0) | (not log_losses)), row, np.nan)
        curves.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": f"lr {lr:.3g}" + (" (best)" if i == best else ""),
                "x": steps.tolist(),
                "y": _nums(shown),
                "line": {"color": _run_colour(i), "width": 3 if i == best else 1.2},
                "hovertemplate": f"lr {lr:.3g}<br>step %{{x}}<br>loss=%{{y:.5g}}<extra></extra>",
            }
        )
    return [
        {
            "data": points,
            "layout": {
                "title": {"text": f"{score_label} after {check.steps} steps, per learning rate"},
                "xaxis": {"title": {"text": "learning rate"}, "type": "log"},
                # log when it can be: one blown-up run would flatten every other on a linear axis
                "yaxis": {
                    "title": {"text": score_label},
                    "type": "log" if np.all(check.scores[finite] > 0) else "linear",
                },
                "shapes": shapes,
                "legend": {"font": {"size": 10}},
                "margin": {"t": 50},
            },
        },
        {
            "data": curves,
            "layout": {
                "title": {"text": "Training loss of each run"},
                "xaxis": {"title": {"text": "step"}},
                "yaxis": {"title": {"text": "loss"}, "type": "log" if log_losses else "linear"},
                "legend": {"font": {"size": 10}},
                "margin": {"t": 50},
            },
        },
    ]


def _verify_lead(check: VerifyResult) -> str:
    """The verdict in one paragraph, and a warning when the best is at an end of the LRs."""
    kind = (
        "held-out loss (evaluate())"
        if check.score_kind == "evaluate"
        else "mean training loss of the last tenth of the run"
    )
    if check.best_lr is None:
        return (
            f'<p class="lead">Every one of the {check.lrs.size} runs diverged within '
            f"{check.steps} steps: try lower learning rates.</p>"
        )
    lead = (
        f'<p class="lead">Best learning rate for {check.steps} steps: '
        f"<b>{check.best_lr:.3g}</b>, out of {check.lrs.size} runs from the same start, "
        f"ranked by {_esc(kind)}.</p>"
    )
    if check.at_boundary:
        lead += (
            "<div class='warn'>The best run is at an end of the LRs tried: the best LR for "
            "this budget may lie beyond them. Verify again around it.</div>"
        )
    return lead


def _verify_rows(check: VerifyResult) -> list[list[object]]:
    return [
        [float(lr), float(score) if math.isfinite(score) else "diverged"]
        for lr, score in zip(check.lrs, check.scores, strict=True)
    ]


def _verify_section(page: _Page, check: VerifyResult) -> None:
    figs = verify_figures(check)
    settings: list[list[object]] = [["steps per run", check.steps], ["runs", check.lrs.size]]
    if check.around is not None:
        settings.append(["built around", check.around])
    page.add(
        f"<section class='verify'><h2>Verify: the best learning rate for {check.steps} steps</h2>"
        + _verify_lead(check)
        + "<div class='grid2'><div>"
        + page.figure(figs[0])
        + "</div><div>"
        + page.figure(figs[1])
        + "</div></div><div class='grid2'><div><h3>Runs</h3>"
        + _table(["learning rate", "score"], _verify_rows(check), pick=check.best_index)
        + "</div><div><h3>Settings</h3>"
        + _table(["setting", "value"], settings)
        + "</div></div></section>"
    )


# -- entry points ----------------------------------------------------------------------------
def _as_list(result_or_results: object) -> list[object]:
    if isinstance(result_or_results, (list, tuple)):
        items = list(result_or_results)
    else:
        items = [result_or_results]
    if not items:
        raise invalid("result_or_results", "must hold at least one result", result_or_results=[])
    return items


def _add(page: _Page, item: object, many: bool) -> None:
    from lrscope.core.result import RangeTestResult
    from lrscope.core.verify import VerifyResult
    from lrscope.lab.lesson import LessonResult
    from lrscope.landscape import LandscapeResult

    if isinstance(item, LessonResult):
        _lesson_section(page, item)
    elif isinstance(item, RangeTestResult):
        label = item.metadata.get("name") or item.metadata.get("framework")
        heading = "LR range test" + (f": {label}" if many and label else "")
        _range_test_section(page, item, heading)
    elif isinstance(item, LandscapeResult):
        _landscape_section(page, item)
    elif isinstance(item, VerifyResult):
        _verify_section(page, item)
    elif is_sweep(item):
        _sweep_section(page, item)
    else:
        raise invalid(
            "result_or_results",
            "must be RangeTestResult, LessonResult, LandscapeResult, VerifyResult, a sweep "
            "result or a list of them",
            type=type(item).__name__,
        )


def _plotly_js() -> str:
    require("plotly", "The HTML report", "viz")
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


def to_html(
    result_or_results: object,
    path: str | os.PathLike[str] | None = None,
    *,
    title: str = "lrscope report",
) -> str:
    """One self-contained HTML page for one or more results; written atomically to ``path``
    when given. Returns the HTML text.

    >>> html_text = to_html(run_lesson(), "report.html")  # doctest: +SKIP
    """
    from lrscope import __version__

    items = _as_list(result_or_results)
    page = _Page()
    for item in items:
        _add(page, item, many=len(items) > 1)
    text = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        # Belt and braces for "no network": the page may load nothing but itself.
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
        'img-src data: blob:; font-src data:; worker-src blob:">'
        f"<title>{_esc(title)}</title><style>{CSS}</style>"
        f"<script>{_plotly_js()}</script></head><body>"
        f"<h1>{_esc(title)}</h1><p class='muted'>lrscope {_esc(__version__)}; every plot is "
        "interactive (hover, zoom, rotate the 3D ones); this file needs no network.</p>"
        + "".join(page.parts)
        + page.script()
        + "</body></html>\n"
    )
    if path is not None:
        jsonio.write_atomic(path, text)
    return text


_NOTEBOOK_PLOTLYJS_SENT = False


def repr_html(result: object, height: int = 360) -> str:
    """A compact notebook view: the main interactive plot plus the rules table.

    plotly.js (about 4.8 MB) is inlined in the first display of a Python process only; later
    displays are about the size of their data (a few tens of KB) and reuse it. If the plot
    cannot be drawn (scripts blocked, or an output that lost plotly.js), the table still shows.
    """
    global _NOTEBOOK_PLOTLYJS_SENT
    from lrscope.core.result import RangeTestResult
    from lrscope.core.verify import VerifyResult
    from lrscope.lab.lesson import LessonResult
    from lrscope.landscape import LandscapeResult

    page = _Page()
    if isinstance(result, LessonResult):
        figure = lesson_surface_figure(result, points=41)
        rt = result.range_test
        extra = f"<p>{_esc(result.reading())}</p>"
    elif isinstance(result, RangeTestResult):
        figure = range_test_figure(result)
        rt = result
        extra = ""
    elif is_sweep(result):
        figure = sweep_figures(result)[1]
        rt = None
        extra = ""
    elif isinstance(result, LandscapeResult):
        figure = landscape_figures(result)[0]
        rt = None
        extra = ""
    elif isinstance(result, VerifyResult):
        figure = verify_figures(result)[0]
        rt = None
        extra = _verify_lead(result) + _table(
            ["learning rate", "score"], _verify_rows(result), pick=result.best_index
        )
    else:
        raise invalid(
            "result",
            "must be a RangeTestResult, LessonResult, LandscapeResult, VerifyResult or sweep "
            "result",
            type=type(result).__name__,
        )
    figure["layout"]["height"] = height
    # Unique ids: a notebook shows many outputs in one page.
    import uuid

    fig_id = f"lrscope-{uuid.uuid4().hex[:12]}"
    page.figures[fig_id] = figure
    table = ""
    if rt is not None:
        table = _table(
            ["rule", "suggested lr", "why"],
            [[n, s.lr, s.reason] for n, s in rt.suggestions().items()],
        ) + _quality_html(rt)
    lib = ""
    if not _NOTEBOOK_PLOTLYJS_SENT:
        lib = f"<script>if(!window.Plotly){{{_plotly_js()}}}</script>"
        _NOTEBOOK_PLOTLYJS_SENT = True
    draw = (
        "<script>(function(){var figs="
        + _script_json(page.figures)
        + ";var f=figs['"
        + fig_id
        + "'];if(window.Plotly){Plotly.newPlot('"
        + fig_id
        + "',f.data,f.layout,"
        + _script_json(CONFIG)
        + ");}else{document.getElementById('"
        + fig_id
        + "').textContent='(interactive plot needs plotly.js: use result.to_html(path))';}"
        "})();</script>"
    )
    return (
        f"<div class='lrscope-repr'>{lib}<div id='{fig_id}' style='width:100%;"
        f"min-height:{height}px'></div>{draw}{extra}{table}</div>"
    )
