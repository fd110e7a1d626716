"""What the benchmark tables say about the machine they were measured on."""

from __future__ import annotations

import math
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


def median_interval(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """A distribution-free confidence interval for the median of ``values``.

    Returns ``(low, high, coverage)``: the k-th smallest and k-th largest value, with k the
    largest order for which the exact binomial coverage ``1 - 2 P(B <= k - 1)``,
    B ~ Binomial(n, 1/2), is still >= ``level``. No assumption on the distribution beyond
    independent draws (which paired timings on a shared machine only approximate), so a ratio
    is read with the uncertainty its repeats actually show. With fewer than 6 values no
    interval reaches 95%; the whole range is returned with its coverage.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("median_interval needs at least one value")

    def coverage(k: int) -> float:  # of [k-th smallest, k-th largest]
        return 1.0 - 2.0 * sum(math.comb(n, i) for i in range(k)) / 2**n

    k = 1
    while k + 1 <= (n + 1) // 2 and coverage(k + 1) >= level:
        k += 1
    return ordered[k - 1], ordered[n - k], coverage(k)
