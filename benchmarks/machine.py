"""What the benchmark tables say about the machine they were measured on."""

from __future__ import annotations

import pathlib
import platform


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), for the table headers."""
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
