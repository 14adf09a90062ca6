"""Lifecycle overhead: submit to finished with a runner that does nothing."""

from __future__ import annotations

import time
from typing import Any

from orchestrator.schemas import TaskSpec
from tests.bench.env import bench_env
from tests.bench.stats import summary_ms
from tests.waiting import wait_until


def bench_overhead(database: str, *, tasks: int) -> dict[str, Any]:
    """One task at a time through one idle worker: what the platform adds to an attempt."""
    with bench_env(database, "tests.bench.runners:NoopRunner") as bench:
        bench.workers.start(concurrency=1)
        lifecycle = bench.services.lifecycle
        spec = TaskSpec(repo="/srv/bench.git", instruction="nothing")
        warm = lifecycle.submit(spec)[0].id
        wait_until(lambda: _done(lifecycle, warm), timeout=60, interval=0.002)
        latencies = []
        for _ in range(tasks):
            started = time.perf_counter()
            task = lifecycle.submit(spec)[0]
            wait_until(lambda t=task.id: _done(lifecycle, t), timeout=60, interval=0.002)
            latencies.append(time.perf_counter() - started)
    return {
        "figure": "submit to finished (no-op runner)",
        "database": database,
        **summary_ms(latencies),
    }


def _done(lifecycle: Any, task_id: str) -> bool:
    return bool(lifecycle.get(task_id).state.terminal)
