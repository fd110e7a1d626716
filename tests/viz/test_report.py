"""The HTML report: figure content (plain Python) and rendering in headless Chromium.

The browser tests open each report from disk in the Debian chromium (never a downloaded one)
through Playwright, and check: no console errors, no request other than the file itself, every
plot drawn by plotly (SVG, and a WebGL canvas for the 3D scenes), and a non-blank screenshot.
"""

from __future__ import annotations

import dataclasses
import html
import importlib.util
import io
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import IN_CI

from lrscope import range_test, run_lesson, verify
from lrscope.lab.linreg import Moments, exact_gd, linreg_trainer, make_data
from lrscope.landscape import ArrayLoss, interpolation, pca_slice, plane_slice
from lrscope.viz import report

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
_NO_BROWSER = not CHROMIUM.exists() or importlib.util.find_spec("playwright") is None
needs_browser = pytest.mark.skipif(
    _NO_BROWSER and not IN_CI, reason="needs /usr/bin/chromium and the playwright package"
)


# -- results to draw -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lesson():
    return run_lesson()


@pytest.fixture(scope="module")
def range_result():
    return range_test(
        linreg_trainer(make_data()),
        start_lr=1e-4,
        end_lr=10.0,
        steps=100,
        lr_diverge=0.7558,
        metadata={"framework": "numpy", "note": "<script>alert('x')</script> & </script>"},
    )


def lesson_sweep(lrs=(0.01, 0.1, 0.3, 0.6, 1.2), steps=60):
    """A SweepResult of the lesson from the exact GD iterates (no engine needed)."""
    from lrscope.core.sweep import RunRecord, SweepResult

    moments = Moments.of(make_data())
    records = []
    for i, lr in enumerate(lrs):
        _, loss = exact_gd(moments, lr, steps)
        loss = loss[:steps]
        start = loss[0]
        blown = np.flatnonzero(loss > 3 * start)
        diverged = int(blown[0]) if blown.size else None
        if diverged is not None:
            loss = loss[: diverged + 1]
        records.append(
            RunRecord(
                lr_index=i,
                seed_index=0,
                lr=lr,
                seed=0,
                loss=loss,
                eval_step=np.zeros(0, dtype=np.int64),
                val_loss=np.zeros(0),
                diverged_at=diverged,
                wall_s=0.01,
            )
        )
    return SweepResult.from_records(records, lrs, steps, seeds=[0], metadata={"problem": "lesson"})


def lesson_verify(factors=(0.1, 1 / 3, 1.0, 10.0)):
    """verify on the lesson around 0.3: 0.03, 0.1, 0.3 and 3.0 (which diverges), 30 steps."""
    return verify(linreg_trainer(make_data()), around=0.3, factors=factors, steps=30, refine=False)


def landscapes():
    data = make_data()
    x, y = data.x.astype(np.float64), data.y.astype(np.float64)

    def loss_at(p):
        err = float(p["w"][0]) * x + float(p["b"][0]) - y
        return float(np.mean(err * err))

    path, _ = exact_gd(Moments.of(data), 0.5, 30)
    trajectory = [{"w": np.array([w]), "b": np.array([b])} for w, b in path]
    model = ArrayLoss(loss_at, trajectory[-1])
    unit_w = {"w": np.array([1.0]), "b": np.array([0.0])}
    unit_b = {"w": np.array([0.0]), "b": np.array([1.0])}
    return [
        pca_slice(model, trajectory, points=15, metadata={"model": "lesson"}),
        plane_slice(model, unit_w, unit_b, span=1.0, points=11),
        interpolation(model, trajectory[0], points=11),
    ]


# -- figure content (no browser) -----------------------------------------------------------------
def test_range_test_figure_marks_every_rule_with_its_reason_and_the_ceiling(range_result):
    fig = report.range_test_figure(range_result)
    suggestions = {n: s for n, s in range_result.suggestions().items() if s.lr is not None}
    markers = [t for t in fig["data"] if t["mode"] == "markers"]
    assert len(markers) == len(suggestions) >= 3
    for trace, (name, s) in zip(markers, suggestions.items(), strict=True):
        assert trace["name"].startswith(name) and trace["x"] == [pytest.approx(s.lr, rel=1e-6)]
        first_words = report._esc(s.reason)[:20]
        assert first_words in trace["hovertemplate"]
    xs = sorted(shape["x0"] for shape in fig["layout"]["shapes"])
    assert sorted([s.lr for s in suggestions.values()] + [0.7558]) == pytest.approx(xs)
    assert fig["layout"]["xaxis"]["type"] == "log"
    raw = fig["data"][0]["y"]
    assert len(raw) == range_result.n_steps
    assert all(
        v is None for v, ok in zip(raw, np.isfinite(range_result.loss), strict=True) if not ok
    )


def test_clip_path_keeps_converging_runs_and_cuts_diverging_ones_at_the_edge(lesson):
    box = report.lesson_box(lesson)
    w_lo, w_hi, b_lo, b_hi = box
    for run in lesson.runs:
        clipped = report.clip_path(run.path, box)
        assert np.all((clipped[:, 0] >= w_lo - 1e-12) & (clipped[:, 0] <= w_hi + 1e-12))
        assert np.all((clipped[:, 1] >= b_lo - 1e-12) & (clipped[:, 1] <= b_hi + 1e-12))
        if run.lr < lesson.stability.lr_diverge:
            assert np.array_equal(clipped, run.path)  # a converging run stays in the picture
        else:
            assert 2 <= clipped.shape[0] < run.path.shape[0]
            end = clipped[-1]
            on_edge = np.isclose(end, [w_lo, b_lo]) | np.isclose(end, [w_hi, b_hi])
            assert on_edge.any()  # it leaves the bowl through the rim
            k = clipped.shape[0] - 1  # the last kept step is the real iterate
            assert np.array_equal(clipped[:k], run.path[:k])


def test_surface_is_the_exact_loss_and_paths_lie_on_it(lesson):
    fig = report.lesson_surface_figure(lesson, points=21)
    surface = fig["data"][0]
    w = np.array(surface["x"])
    b = np.array(surface["y"])
    z = np.array(surface["z"], dtype=float)
    wg, bg = np.meshgrid(w, b)
    # plotted numbers keep 7 significant digits
    np.testing.assert_allclose(z, lesson.moments.loss(wg, bg), rtol=1e-5)
    paths = [t for t in fig["data"] if t["type"] == "scatter3d" and t["name"].startswith("lr=")]
    assert len(paths) == len(lesson.runs)
    lift = 0.01 * (z.max() - z.min())
    for trace in paths:
        height = lesson.moments.loss(np.array(trace["x"]), np.array(trace["y"])) + lift
        np.testing.assert_allclose(trace["z"], height, rtol=1e-5)


def test_sweep_figures_show_the_map_and_the_best_lr_curve():
    sweep = lesson_sweep()
    heat, best = report.sweep_figures(sweep)
    z = np.array(heat["data"][0]["z"], dtype=float)
    assert z.shape == (sweep.lrs.size, sweep.steps)
    order = np.argsort(sweep.lrs)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = np.log10(sweep.loss[0][order])
    np.testing.assert_allclose(z, expected, rtol=1e-6)  # NaN after divergence stays a gap
    budgets, best_lr, _, _ = sweep.best_lr_curve()
    line = next(t for t in best["data"] if t["name"] == "best lr")
    np.testing.assert_allclose(np.array(line["y"], dtype=float), best_lr, rtol=1e-6)
    assert line["x"] == budgets.tolist()


def test_verify_figures_show_every_run_and_mark_the_best():
    check = lesson_verify()
    assert check.best_lr == pytest.approx(0.3) and not np.isfinite(check.scores[-1])
    scores, runs = report.verify_figures(check)
    line, best = scores["data"]
    finite = np.isfinite(check.scores)
    assert line["x"] == pytest.approx(check.lrs[finite].tolist(), rel=1e-6)
    assert line["y"] == pytest.approx(check.scores[finite].tolist(), rel=1e-6)
    assert best["x"] == pytest.approx([0.3]) and best["y"] == pytest.approx([check.scores[2]])
    assert scores["layout"]["xaxis"]["type"] == scores["layout"]["yaxis"]["type"] == "log"
    assert scores["layout"]["shapes"][0]["x0"] == pytest.approx(0.3)  # built around 0.3
    assert "training loss" in scores["layout"]["yaxis"]["title"]["text"]  # no evaluate()
    assert len(runs["data"]) == check.lrs.size == 4
    for trace, row in zip(runs["data"], check.losses, strict=True):
        gaps = [y is None for y in trace["y"]]
        assert gaps == [not (np.isfinite(v) and v > 0) for v in row]  # NaN/inf: a gap
        drawn = [y for y in trace["y"] if y is not None]
        assert drawn == pytest.approx(row[~np.array(gaps)].tolist(), rel=1e-6)
    assert any(y is None for y in runs["data"][-1]["y"])  # the 3.0 run blew up
    assert runs["layout"]["yaxis"]["type"] == "log"
    # losses and scores that can be negative (a log-likelihood, say) get linear axes, all drawn
    shifted = dataclasses.replace(check, scores=check.scores - 1.0, losses=check.losses - 1.0)
    scores, runs = report.verify_figures(shifted)
    assert scores["layout"]["yaxis"]["type"] == runs["layout"]["yaxis"]["type"] == "linear"
    assert runs["data"][0]["y"] == pytest.approx((check.losses[0] - 1.0).tolist(), rel=1e-6)
    widths = [t["line"]["width"] for t in runs["data"]]
    assert widths.index(max(widths)) == check.best_index and "(best)" in runs["data"][2]["name"]


def test_verify_section_says_the_best_lr_and_warns_at_an_end(tmp_path):
    text = lesson_verify().to_html(tmp_path / "verify.html")
    assert (tmp_path / "verify.html").read_text() == text
    assert "class='verify'" in text and "Best learning rate for 30 steps: <b>0.3</b>" in text
    assert "<td>diverged</td>" in text  # the 3.0 run
    assert "at an end of the LRs tried" not in text
    # 0.03 and 0.1 only: the best is the highest tried, so the best may lie above
    edge = report.to_html(lesson_verify(factors=(0.1, 1 / 3)))
    assert "Best learning rate for 30 steps: <b>0.1</b>" in edge
    assert "at an end of the LRs tried" in edge
    # every run diverged: no best, and the page says so
    gone = report.to_html(verify(linreg_trainer(make_data()), [3.0, 10.0], steps=30, refine=False))
    assert "Every one of the 2 runs diverged within 30 steps" in gone


def test_html_escapes_user_text_and_is_deterministic(range_result, tmp_path):
    text = range_result.to_html(tmp_path / "r.html")
    assert (tmp_path / "r.html").read_text() == text
    assert text == report.to_html(range_result)  # no timestamp: same input, same bytes
    assert "<script>alert" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;/script&gt;" in text
    # the only <script> tags are ours: plotly.js and the figure data
    assert len(re.findall(r"<script\b", text)) == 2
    assert "cdn.plot.ly/plotly" not in text.split("<script>")[0]  # no external loader
    assert not re.search(r"<(link|img|iframe)\b[^>]*(src|href)=", text)


def test_report_size_for_a_100_step_range_test_is_plotly_plus_a_little(range_result):
    from plotly.offline import get_plotlyjs

    size = len(report.to_html(range_result).encode())
    plotly_size = len(get_plotlyjs().encode())
    assert plotly_size < size < plotly_size + 60_000


def test_notebook_repr_of_a_sweep_a_landscape_and_verify_draws_their_main_figure(monkeypatch):
    monkeypatch.setattr(report, "_NOTEBOOK_PLOTLYJS_SENT", True)  # size of a later display
    sweep_html = report.repr_html(lesson_sweep())
    assert "Best learning rate for each step budget" in sweep_html and len(sweep_html) < 50_000
    landscape_html = landscapes()[0]._repr_html_()
    assert '"type":"surface"' in landscape_html and "explained variance" in landscape_html
    check = lesson_verify()
    verify_html = check._repr_html_()
    assert "Best learning rate for 30 steps: <b>0.3</b>" in verify_html
    assert "<td>diverged</td>" in verify_html and len(verify_html) < 50_000
    with pytest.raises(ValueError, match="must be a RangeTestResult"):
        report.repr_html(object())


def test_to_html_refuses_what_it_cannot_draw():
    with pytest.raises(ValueError, match="RangeTestResult, LessonResult"):
        report.to_html(object())
    with pytest.raises(ValueError, match="at least one result"):
        report.to_html([])


# -- in the browser --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="lrscope-chromium-")
    with sync_playwright() as p:
        # launch_persistent_context is Playwright's way to pass --user-data-dir (a fresh one).
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1200, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


def _variance(png: bytes) -> float:
    from PIL import Image

    image = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float64)
    return float(image.var())


def render(context, path: Path, shot: Path) -> dict:
    """Open ``path``, wait for every plot, screenshot; return what the page did."""
    page = context.new_page()
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    url = path.resolve().as_uri()
    page.goto(url)
    page.wait_for_function(
        "document.querySelectorAll('.lrscope-plot').length > 0 && "
        "document.querySelectorAll('.lrscope-plot').length == "
        "document.querySelectorAll('.lrscope-plot.js-plotly-plot').length",
        timeout=30_000,
    )
    page.wait_for_timeout(300)
    plots = page.evaluate(
        """Array.from(document.querySelectorAll('.lrscope-plot')).map(d => ({
            id: d.id, svg: d.querySelectorAll('svg.main-svg').length,
            traces: d.querySelectorAll('.scatterlayer .trace, .heatmaplayer .hm, '
                                        + '.contourlayer .contour').length,
            gl: d.querySelectorAll('.gl-container canvas').length,
            data: (d.data || []).length, scene: !!(d._fullLayout && d._fullLayout.scene)}))"""
    )
    page.screenshot(path=str(shot), full_page=True)
    scene_pixels = []
    for plot in plots:
        if plot["scene"]:
            canvas = page.locator(f"#{plot['id']} .gl-container canvas").first
            scene_pixels.append(_variance(canvas.screenshot()))
    page.close()
    return {
        "errors": errors,
        "requests": requests,
        "url": url,
        "plots": plots,
        "scene_variance": scene_pixels,
    }


def check_page(seen: dict, shot: Path, n_plots: int, n_scenes: int) -> None:
    assert seen["errors"] == []
    assert seen["requests"] == [seen["url"]]  # nothing but the file itself
    assert len(seen["plots"]) == n_plots
    for plot in seen["plots"]:
        assert plot["svg"] >= 1 and plot["data"] >= 1, plot
        if plot["scene"]:
            assert plot["gl"] >= 1, plot  # the WebGL canvas of the 3D scene
        else:
            assert plot["traces"] >= 1, plot
    assert sum(p["scene"] for p in seen["plots"]) == n_scenes
    assert all(v > 20.0 for v in seen["scene_variance"]), seen["scene_variance"]
    png = shot.read_bytes()
    assert png.startswith(b"\x89PNG") and _variance(png) > 50.0


@pytest.mark.browser
@needs_browser
@pytest.mark.parametrize("which", ["range_test", "lesson", "landscape", "sweep", "verify", "all"])
def test_report_renders_offline_in_chromium(which, chromium, lesson, range_result, tmp_path):
    results = {
        "range_test": ([range_result], 1, 0),
        "lesson": ([lesson], 5, 1),  # data, losses, bowl, contours + the range test
        "landscape": (landscapes(), 2 + 2 + 1, 2),
        "sweep": ([lesson_sweep()], 2, 0),
        "verify": ([lesson_verify()], 2, 0),
        "all": (
            [lesson, range_result, lesson_sweep(), *landscapes(), lesson_verify()],
            5 + 1 + 2 + 5 + 2,
            3,
        ),
    }
    items, n_plots, n_scenes = results[which]
    path = tmp_path / f"{which}.html"
    report.to_html(items, path)
    shot = tmp_path / f"{which}.png"
    check_page(render(chromium, path, shot), shot, n_plots, n_scenes)


@pytest.mark.browser
@needs_browser
def test_notebook_repr_draws_each_output_and_inlines_plotly_once(
    chromium, lesson, range_result, tmp_path, monkeypatch
):
    monkeypatch.setattr(report, "_NOTEBOOK_PLOTLYJS_SENT", False)
    first = range_result._repr_html_()
    second = lesson._repr_html_()
    assert len(first) > 4_000_000 > 200_000 > len(second)  # plotly.js travels once
    assert first.count("<table>") == 1 and "min_div10" in first
    page = tmp_path / "notebook.html"
    page.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>"
        + first.replace("id='lrscope-", "class='lrscope-plot' id='lrscope-")
        + second.replace("id='lrscope-", "class='lrscope-plot' id='lrscope-")
        + "</body></html>"
    )
    shot = tmp_path / "notebook.png"
    check_page(render(chromium, page, shot), shot, n_plots=2, n_scenes=1)


@pytest.mark.browser
@needs_browser
@pytest.mark.skipif("LRSCOPE_SCREENSHOT" not in os.environ, reason="writes the docs image only")
def test_write_the_docs_screenshot(chromium, tmp_path):
    """Regenerate the README image: ``LRSCOPE_SCREENSHOT=docs/images/demo_report.png
    .venv/bin/python -m pytest tests/viz/test_report.py -k docs_screenshot``."""
    from PIL import Image

    path = tmp_path / "demo.html"
    run_lesson().to_html(path)
    page = chromium.new_page()
    page.set_viewport_size({"width": 1100, "height": 1900})
    page.goto(path.resolve().as_uri())
    page.wait_for_function(
        "document.querySelectorAll('.lrscope-plot.js-plotly-plot').length == "
        "document.querySelectorAll('.lrscope-plot').length",
        timeout=30_000,
    )
    page.wait_for_timeout(500)
    # From the lesson's heading to the bottom of the 3D bowl: reading, regimes, plots.
    top = page.locator("section.lesson h2").bounding_box()
    bowl = page.locator("section.lesson .lrscope-plot.tall").first.bounding_box()
    clip = {
        "x": 0,
        "y": top["y"] - 10,
        "width": 1100,
        "height": bowl["y"] + bowl["height"] - top["y"] + 20,
    }
    png = page.screenshot(full_page=True, clip=clip)
    page.close()
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image = image.resize((image.width * 3 // 4, image.height * 3 // 4), Image.LANCZOS)
    out = Path(os.environ["LRSCOPE_SCREENSHOT"])
    out.parent.mkdir(parents=True, exist_ok=True)
    image.quantize(colors=128).save(out, optimize=True)
    assert out.stat().st_size < 300_000 and _variance(out.read_bytes()) > 50.0


def test_the_range_test_section_says_how_far_to_trust_the_suggestion():
    from lrscope.core.confidence import warnings_text

    # The lesson's default range test raises no flag (tests/core/test_confidence.py).
    clean = range_test(linreg_trainer(make_data()), steps=100)
    quality = clean.quality()
    text = report.to_html(clean)
    low, high = quality.interval
    assert f"Reading uncertainty of this curve: {low:.3g} .. {high:.3g}" in text
    assert quality.ok and "No quality flag was raised on this curve." in text
    assert "class='warn'" not in text
    # A range that ends before the edge, and a 12-step test of it (too few points as well):
    # each warning, in the CLI's words, in a warning box.
    short = range_test(linreg_trainer(make_data()), start_lr=1e-4, end_lr=0.01, steps=100)
    assert "never_diverged" in short.quality().flags
    brief = range_test(linreg_trainer(make_data()), start_lr=1e-4, end_lr=0.01, steps=12)
    assert {"too_few_points", "never_diverged"} <= set(brief.quality().flags)
    for result in (short, brief):
        words = warnings_text(result)
        page = report.to_html(result)
        assert words and "No quality flag was raised" not in page
        for line in words:
            box = f"<p class='warn'><b>Warning:</b> {html.escape(line, quote=True)}</p>"
            assert box in page
            assert box in result._repr_html_()  # the notebook display says it too
    # A test that broke down and was run again with 4x the steps says so, in the CLI's words.
    from sweep_targets import BreakingDown

    from lrscope.core.confidence import retest_note

    again = range_test(BreakingDown())
    note = html.escape(retest_note(again), quote=True)
    assert f"<p class='muted'><b>Tested again:</b> {note}</p>" in report.to_html(again)
    assert "Tested again" not in report.to_html(short)
