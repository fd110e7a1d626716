"""What the benchmark tables say about the machine they were measured on."""

from __future__ import annotations

import pathlib
import platform

#: Environment for a benchmark subprocess: one thread in every framework's pools (TF, XLA/JAX,
#: OpenMP/MKL for torch), so timings on a shared machine compare like with like.
THREADS_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    "TF_CPP_MIN_LOG_LEVEL": "3",
}


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), for the table headers."""
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
