"""Drain rate: short tasks through the real path, drained by 1, 2 and 4 worker processes.

Each task is the smallest one that ends `succeeded` honestly: a worker claims its attempt,
checks out a real git repository (cached per commit after the first), makes a bwrap sandbox,
runs the agent against the scripted model (its own process, answering at once: one turn
writes a file, the next finishes), and verifies in a fresh sandbox with the diff applied;
the repository's test is `test -f done`, which fails on the base (the baseline, kept in the
store, runs once) and passes with the diff. Then the result and the task's end are stored.

The tasks are all queued first, then the workers start (`concurrency` 1 each, as `autan
worker --concurrency 1`). The time is the database's: from the first attempt's claim to the
last one's end, so a worker's start-up is not in it. Beside the rate: the ratio to linear
(rate_N / (N * rate_1)), the load average, and where an attempt's time goes, from the
timestamps of its events (stored by the worker as they happen).

    python -m tests.bench.drain [--tasks 1000] [--workers 1,2,4] [--databases postgresql,sqlite]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
from collections.abc import Iterator
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from orchestrator.models import Attempt, Event
from orchestrator.schemas import TaskSpec
from tests.bench.env import Bench, bench_env
from tests.bench.serving import scripted_process
from tests.waiting import wait_until

SCRIPT: dict[str, Any] = {
    "model": "scripted",
    "rules": [
        {"when": {"tool_name": "write_file"},
         "reply": {"tool_calls": [{"name": "finish", "arguments": {"summary": "Wrote done."}}]}},
    ],
    "fallback": {"tool_calls": [{"name": "write_file",
                                 "arguments": {"path": "done", "content": "ok\n"}}]},
}  # fmt: skip


def make_repository(root: Path) -> Path:
    """A one-commit repository whose test passes once a file `done` exists."""
    repo = root / "drain-repo"
    repo.mkdir()
    (repo / "README.md").write_text("Write a file named done.\n")
    (repo / ".autan.toml").write_text('[test]\ncommand = "test -f done"\n')
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "base"]):
        subprocess.run(
            ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", *args],
            cwd=repo,
            check=True,
        )
    return repo


def bench_drain(database: str, *, tasks: int, workers: int) -> dict[str, Any]:
    """Queue `tasks`, let `workers` processes drain them; check each ran once and succeeded."""
    with bench_env(database, "agent") as bench, scripted_process(script=SCRIPT) as model:
        bench.workers.env = {"AUTAN_MODEL_URL": model, "AUTAN_MODEL_NAME": "scripted"}
        repo = str(make_repository(bench.workdir))
        for i in range(tasks):
            bench.services.lifecycle.submit(TaskSpec(repo=repo, instruction=f"task {i}"))
        load_before = os.getloadavg()[0]
        for _ in range(workers):
            bench.workers.start(concurrency=1)
        wait_until(lambda: _live(bench) == 0, timeout=7200, interval=0.5, what="the drain")
        load_after = os.getloadavg()
        figure = _figure(bench, tasks)
    return {
        "figure": f"{tasks} short tasks drained by {workers} worker processes",
        "database": database,
        "workers": workers,
        **figure,
        "load_avg_1m_before": round(load_before, 2),
        "load_avg_1_5m_after": [round(load_after[0], 2), round(load_after[1], 2)],
        "cpus": os.cpu_count(),
    }


def _live(bench: Bench) -> int:
    with bench.services.sessions() as session:
        query = select(func.count()).select_from(Attempt).where(Attempt.finished_at.is_(None))
        return session.scalar(query) or 0


def _figure(bench: Bench, tasks: int) -> dict[str, Any]:
    with bench.services.sessions() as session:
        first, last, runs = session.execute(
            select(func.min(Attempt.started_at), func.max(Attempt.finished_at),
                   func.sum(Attempt.runs))
        ).one()  # fmt: skip
        states = dict(
            session.execute(select(Attempt.state, func.count()).group_by(Attempt.state)).all()
        )
        shares = _where_time_goes(session)
    seconds = (last - first).total_seconds()
    succeeded = states.get("succeeded", 0)
    return {
        "seconds": round(seconds, 2),
        "tasks_per_s": round(tasks / seconds, 2),
        "succeeded": succeeded,
        "not_succeeded": tasks - succeeded,
        "states": states,
        "run_twice": (runs or 0) - tasks,
        "attempt_median_s": shares,
    }


def _where_time_goes(session: Any) -> dict[str, float]:
    """Median seconds per attempt from its claim to each kind of event's first occurrence,
    and from the last event to its end: the gaps say which step the time went to."""
    attempts = {a.id: a for a in session.scalars(select(Attempt))}
    marks: dict[str, dict[str, datetime]] = {}
    for attempt_id, kind, at in session.execute(
        select(Event.attempt_id, Event.kind, Event.created_at).order_by(Event.id)
    ):
        if attempt_id in attempts:
            marks.setdefault(attempt_id, {}).setdefault(kind, at)
    steps: dict[str, list[float]] = {"between attempts": _gaps(attempts.values())}
    for attempt_id, first_of in marks.items():
        attempt = attempts[attempt_id]
        previous = attempt.started_at
        for kind, at in sorted(first_of.items(), key=lambda item: item[1]):
            steps.setdefault(f"to {kind}", []).append((at - previous).total_seconds())
            previous = at
        steps.setdefault("to end", []).append((attempt.finished_at - previous).total_seconds())
        steps.setdefault("total", []).append(attempt.duration_s or 0.0)
    return {step: round(statistics.median(values), 4) for step, values in steps.items()}


def _gaps(attempts: Any) -> list[float]:
    """Seconds a worker process spent between one attempt's end and its next claim."""
    by_worker: dict[str, list[Attempt]] = {}
    for attempt in attempts:
        by_worker.setdefault(attempt.worker or "", []).append(attempt)
    gaps = []
    for runs in by_worker.values():
        runs.sort(key=lambda a: a.started_at)
        gaps += [(b.started_at - a.finished_at).total_seconds() for a, b in pairwise(runs)]
    return gaps or [0.0]


def bench_scaling(database: str, *, tasks: int, workers: list[int]) -> Iterator[dict[str, Any]]:
    """One drain per worker count; each figure after the first says its ratio to linear."""
    one: float | None = None
    for n in workers:
        figure = bench_drain(database, tasks=tasks, workers=n)
        if n == 1:
            one = figure["tasks_per_s"]
        if one:
            figure["ratio_to_linear"] = round(figure["tasks_per_s"] / (n * one), 2)
        yield figure


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.drain")
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--databases", default="postgresql,sqlite")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    for database in args.databases.split(","):
        for figure in bench_scaling(database, tasks=args.tasks, workers=counts):
            print(json.dumps(figure), flush=True)


if __name__ == "__main__":
    main()
