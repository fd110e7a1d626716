"""Plain-text tables for the terminal: readable without the HTML report, stable for golden
tests (no colour codes, no terminal-width dependence)."""

from __future__ import annotations

from collections.abc import Sequence

from lrscope.core.result import RangeTestResult
from lrscope.core.verify import VerifyResult


def format_table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], align: str | None = None
) -> str:
    """Columns padded to their widest cell; ``align`` has one of ``l``/``r`` per column
    (default: right-aligned except the last column).

    >>> print(format_table(["a", "bb"], [[1, "x"], [22, "yy"]]))
     a  bb
     1  x
    22  yy
    """
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    align = align or "r" * (len(headers) - 1) + "l"
    lines = []
    for row in cells:
        parts = [
            c.rjust(w) if a == "r" else c.ljust(w)
            for c, w, a in zip(row, widths, align, strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def describe_stop(result: RangeTestResult) -> str:
    """``completed`` / ``diverged at step 94 (lr=5.1)`` / ... in plain words."""
    if result.stop_reason == "completed" or result.stop_step is None:
        return result.stop_reason
    step = min(result.stop_step, result.n_steps - 1)
    lr = f" (lr={result.lr[step]:.3g})" if result.n_steps else ""
    return f"{result.stop_reason} at step {result.stop_step}{lr}"


def suggestions_table(result: RangeTestResult) -> str:
    """One row per rule: the suggested LR (or '-') and the rule's reason; the default rule is
    marked with ``*``, and the curve's quality warnings follow in plain words."""
    from lrscope.core.confidence import retest_note, warnings_text
    from lrscope.core.rules import DEFAULT_RULE

    rows = [
        [
            f"{name}{' *' if name == DEFAULT_RULE else ''}",
            f"{s.lr:.4g}" if s.lr is not None else "-",
            s.reason,
        ]
        for name, s in result.suggestions().items()
    ]
    lines = [format_table(["rule", "suggested lr", "why"], rows, align="lrl")]
    lines.append("* default rule (chosen by benchmarks/bench_quality.py)")
    note = retest_note(result)
    if note is not None:
        lines.append(f"note: {note}")
    lines += [f"warning: {text}" for text in warnings_text(result)]
    return "\n".join(lines)


def verify_table(check: VerifyResult) -> str:
    """One row per LR a verify run tried (ascending) with its score, the best marked ``*``,
    then the answer in one line, and a warning when the best was an end of the search."""
    kind = "held-out loss" if check.score_kind == "evaluate" else "train loss (last tenth)"
    rows = [
        [
            f"{lr:.4g}{' *' if lr == check.best_lr else ''}",
            "diverged" if score == float("inf") else f"{score:.5g}",
        ]
        for lr, score in zip(check.lrs, check.scores, strict=True)
    ]
    lines = [format_table(["lr", f"{kind} after {check.steps} steps"], rows, align="rr")]
    if check.best_lr is None:
        lines.append(f"every LR tried diverged within {check.steps} steps")
    else:
        lines.append(f"best LR for {check.steps} steps: {check.best_lr:.4g}")
    if check.at_boundary:
        lines.append(
            "warning: the best LR is the lowest or highest tried; the search ran out of runs: "
            "verify again around it"
        )
    return "\n".join(lines)
