"""The one place lrscope writes progress: a single updating line on stderr, easy to turn off."""

from __future__ import annotations

import sys
from typing import TextIO


class Progress:
    """A minimal progress line: ``label  done/total  loss``; silent when ``enabled=False``."""

    def __init__(
        self, total: int, label: str, enabled: bool = True, stream: TextIO | None = None
    ) -> None:
        self.total = total
        self.label = label
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr

    def update(self, done: int, loss: float) -> None:
        if self.enabled:
            self.stream.write(f"\r{self.label} {done}/{self.total} loss={loss:.4g}   ")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
