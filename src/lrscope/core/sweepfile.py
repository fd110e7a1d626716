"""The resumable results file of a sweep: JSON lines, one finished run per line.

Line 1 is a header fingerprinting the sweep (LRs, steps, seeds, run options, trainer
identity); every later line is one :class:`~lrscope.core.sweep.RunRecord`, appended and
flushed to disk as soon as the run finishes. So an interrupted sweep (Ctrl-C, a crashed
machine) loses at most the runs in flight, and running the same sweep with the same file
skips what is already there. A file written for a different sweep is refused, never
overwritten. A half-written last line (the process died mid-write) is ignored and cut off
before the next append.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lrscope.core import jsonio
from lrscope.core.sweep import RunRecord
from lrscope.errors import InvalidParameterError, ResultFormatError

KIND = "sweep_runs"
SCHEMA_VERSION = 1


class ResultsFile:
    """An append-only JSON-lines file of run records for one sweep configuration."""

    def __init__(self, path: str | os.PathLike[str], config: Mapping[str, Any]) -> None:
        """Open (or create) ``path`` for the sweep described by ``config`` (JSON-safe dict).

        Raises InvalidParameterError when the file holds a different sweep and
        ResultFormatError when it is not a sweep results file.
        """
        self.path = Path(path)
        self.config = dict(config)
        self.records: dict[tuple[int, int], RunRecord] = {}
        self._valid_bytes = 0
        self._created = False  # True when this object wrote the file (see discard_if_unused)
        if self.path.exists() and self.path.stat().st_size > 0:
            self._read()
        else:
            header = {"kind": KIND, "schema_version": SCHEMA_VERSION, "config": self.config}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # The header goes in atomically: a file either has a full header or does not exist.
            jsonio.write_atomic(self.path, _line(header))
            self._valid_bytes = self.path.stat().st_size
            self._created = True

    def _read(self) -> None:
        raw = Path(self.path).read_bytes()
        if len(raw) > jsonio.MAX_BYTES:
            raise ResultFormatError(f"{self.path} is {len(raw)} bytes; at most {jsonio.MAX_BYTES}")
        end = raw.rfind(b"\n") + 1  # everything after the last newline is a torn write
        lines = raw[:end].decode("utf-8", errors="strict").splitlines()
        if not lines:
            raise ResultFormatError(f"{self.path}: not a sweep results file (no header line)")
        header = _parse(lines[0], self.path, 1)
        jsonio.check_header(header, KIND, SCHEMA_VERSION)
        found = header.get("config")
        if found != self.config:
            raise InvalidParameterError(
                f"Argument `results_file` names a file written for a different sweep "
                f"({_differences(found, self.config)}); it is left untouched: use another "
                f"file or delete it. Received: results_file='{self.path}'"
            )
        for number, text in enumerate(lines[1:], start=2):
            if not text.strip():
                continue
            record = RunRecord.from_dict(_parse(text, self.path, number))
            self.records[(record.seed_index, record.lr_index)] = record  # a retry wins
        self._valid_bytes = end

    def discard_if_unused(self) -> None:
        """Delete the file when this object created it and no run was appended: a sweep that
        failed before its first run (a bad argument found only once the trainer was built)
        leaves nothing behind, so the corrected call is not refused as another sweep's file.
        A file that existed before, or holds a run, is never touched."""
        if self._created and not self.records:
            self.path.unlink(missing_ok=True)
            self._created = False

    def append(self, record: RunRecord) -> None:
        """Write one finished run as a line and push it to disk before returning."""
        with open(self.path, "r+b") as handle:
            handle.truncate(self._valid_bytes)  # drop a torn line left by a crash
            handle.seek(self._valid_bytes)
            handle.write(_line(record.to_dict()).encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
            self._valid_bytes = handle.tell()
        self.records[(record.seed_index, record.lr_index)] = record


def _line(data: Mapping[str, Any]) -> str:
    return json.dumps(data, allow_nan=False, separators=(",", ":")) + "\n"


def _parse(text: str, path: Path, number: int) -> Any:
    try:
        return jsonio.loads(text)
    except ResultFormatError as exc:
        raise ResultFormatError(f"{path}, line {number}: {exc}") from None


def _differences(found: object, wanted: Mapping[str, Any]) -> str:
    if not isinstance(found, dict):
        return "its header has no config"
    keys = sorted(set(found) | set(wanted))
    diffs = [k for k in keys if found.get(k) != wanted.get(k)]
    shown = "; ".join(
        f"{k}: file has {_short(found.get(k))}, asked {_short(wanted.get(k))}" for k in diffs
    )
    return "differs in " + shown


def _short(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."
