"""Every ```python block in README.md and docs/*.md runs (examples are tested, not decorative).

A block tagged ```python skip-test is not run (used only for examples needing a GPU or a
framework set up differently); blocks in one file share a namespace, in order.
"""

import os
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_python_blocks_run(doc, tmp_path, monkeypatch):
    blocks = BLOCK.findall(doc.read_text())
    if not blocks:
        pytest.skip(f"{doc.name} has no python examples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {"__name__": "__doc_example__"}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"{doc.name}[block {i}]", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - shows which block broke
            raise AssertionError(f"{doc.name} block {i} failed: {exc!r}\n{code}") from exc
    os.environ.pop("MPLBACKEND", None)
