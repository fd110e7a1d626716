"""The Ray engine on a REAL local cluster (2 CPUs, started once for this module)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sweep_targets
from conftest import needs

import lrscope

pytestmark = [pytest.mark.ray, needs("ray")]

TARGETS = Path(sweep_targets.__file__)
LRS = [0.05, 0.1, 0.3, 0.5, 0.7, 1.0]


def test_the_engine_starts_its_own_local_cluster_and_shuts_it_down():
    # first in this module: no cluster is running yet
    import ray

    assert not ray.is_initialized()
    result = lrscope.sweep(f"{TARGETS}:lesson", [0.1, 0.3], steps=10, engine="ray", num_cpus=1)
    assert list(result.status[0]) == ["ok", "ok"]
    assert not ray.is_initialized()


@pytest.fixture(scope="module")
def cluster():
    import ray

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        configure_logging=False,
        log_to_driver=False,
        # workers import a callable factory by module name: let them find tests/sweep_targets
        runtime_env={"env_vars": {"PYTHONPATH": str(TARGETS.parent)}},
    )
    try:
        yield ray
    finally:
        ray.shutdown()


def _same_map(a, b):
    for name in ("lrs", "loss", "eval_step", "val_loss", "diverged_at"):
        assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True), name
    assert np.array_equal(a.status, b.status) and a.errors == b.errors


def test_ray_results_equal_the_local_engine(cluster, tmp_path):
    target = f"{TARGETS}:lesson"
    local = lrscope.sweep(target, LRS, steps=60, eval_every=5, seeds=2)
    on_ray = lrscope.sweep(
        target, LRS, steps=60, eval_every=5, seeds=2, engine="ray", results_file=tmp_path / "r"
    )
    _same_map(local, on_ray)
    assert on_ray.metadata["engine"] == "ray" and cluster.is_initialized()
    assert len((tmp_path / "r").read_text().splitlines()) == 1 + 2 * len(LRS)
    # a top-level callable travels too (pickled by reference)
    by_callable = lrscope.sweep(sweep_targets.lesson, LRS, steps=60, eval_every=5, engine="ray")
    _same_map(lrscope.sweep(sweep_targets.lesson, LRS, steps=60, eval_every=5), by_callable)


def test_a_killed_worker_is_recorded_and_the_other_runs_complete(cluster, tmp_path):
    lrs = [0.1, sweep_targets.CRASH_LR, 0.3, 0.7]
    file = tmp_path / "runs.jsonl"
    result = lrscope.sweep(f"{TARGETS}:crashing", lrs, steps=40, engine="ray", results_file=file)
    assert list(result.status[0]) == ["ok", "error", "ok", "ok"]
    assert result.errors[0][1].startswith("WorkerCrashedError"), result.errors[0][1]
    reference = lrscope.sweep(sweep_targets.lesson(), lrs, steps=40)
    ok = [0, 2, 3]
    assert np.array_equal(result.loss[0, ok], reference.loss[0, ok], equal_nan=True)
    assert len(file.read_text().splitlines()) == 1 + 4  # the crash is in the file too


def test_a_raising_run_on_ray_is_recorded(cluster):
    lrs = [0.1, sweep_targets.RAISE_LR]
    result = lrscope.sweep(f"{TARGETS}:raising", lrs, steps=20, chunk_size=1, engine="ray")
    assert list(result.status[0]) == ["ok", "error"]
    assert result.errors[0][1].startswith("ValueError: boom at lr=0.2")


def test_bad_target_on_ray_is_an_error_run_not_a_crash(cluster):
    result = lrscope.sweep(f"{TARGETS}:not_a_trainer", [0.1, 0.2], steps=5, engine="ray")
    assert list(result.status[0]) == ["error", "error"]
    assert "must return a Trainer" in result.errors[0][0]
