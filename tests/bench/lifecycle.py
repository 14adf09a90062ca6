"""Lifecycle overhead: submit to finished with a runner that does nothing; a drain of many tasks."""

from __future__ import annotations

import os
import time
from typing import Any

from sqlalchemy import func, select

from orchestrator.models import Attempt
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


def bench_drain(database: str, *, tasks: int, workers: int) -> dict[str, Any]:
    """Queue `tasks` first, then let `workers` processes drain them; check none lost or doubled."""
    with bench_env(database, "tests.bench.runners:CountingRunner") as bench:
        record = bench.workdir / "ran"
        os.environ["BENCH_DRAIN_RECORD"] = str(record)
        lifecycle = bench.services.lifecycle
        for i in range(tasks):
            lifecycle.submit(TaskSpec(repo="/srv/bench.git", instruction=f"task {i}"))
        started = time.perf_counter()
        for _ in range(workers):
            bench.workers.start(concurrency=1)
        with bench.services.sessions() as session:

            def ended() -> bool:
                live = (
                    select(func.count()).select_from(Attempt).where(Attempt.finished_at.is_(None))
                )
                return session.scalar(live) == 0

            wait_until(ended, timeout=900, interval=0.1, what="the queue to drain")
            elapsed = time.perf_counter() - started
            runs = session.scalar(select(func.sum(Attempt.runs))) or 0
            succeeded = session.scalar(
                select(func.count()).select_from(Attempt).where(Attempt.state == "succeeded")
            )
        ran = record.read_text().split()
        del os.environ["BENCH_DRAIN_RECORD"]
    return {
        "figure": f"{tasks} tasks drained by {workers} worker processes",
        "database": database,
        "seconds": round(elapsed, 2),
        "tasks_per_s": round(tasks / elapsed, 1),
        "succeeded": succeeded,
        "not_succeeded": tasks - (succeeded or 0),
        "lost": tasks - len(set(ran)),
        "run_twice": len(ran) - len(set(ran)),
        "attempt_runs_recorded": runs,
    }
