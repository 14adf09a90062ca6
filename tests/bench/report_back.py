"""Report-back against a service that fails half its calls: calls made per task against the
minimum, over an hour of simulated time.

In one process, on the real store and Redis: tasks from Jira end, and each report is three
side effects (push and pull request, comment, transition), each one call to a service that
answers 503 to a seeded half of its calls. A simulated clock moves 10 s a step (the
reconciler's interval); each step runs a reconcile pass and every report job it queued,
as a worker would. `refused` runs the same with the transition refused (403) for good.

    python -m tests.bench.report_back [--tasks 50] [--databases sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import base64
import json
import random
from datetime import timedelta
from statistics import mean
from typing import Any

from orchestrator.errors import SideEffectRefused, SideEffectUnavailable
from orchestrator.models import utcnow
from orchestrator.reconcile import reconcile
from orchestrator.reporting import Reporters, Steps
from orchestrator.schemas import TaskSpec, TaskView
from tests.bench.env import bench_env

SIDE_EFFECTS = ("publish", "comment", "transition")
STEP_S = 10.0


class FlakyService:
    """Counts calls per task; answers 503 to a seeded `failing` share of them."""

    def __init__(self, failing: float, refuse: str | None, seed: int = 7) -> None:
        self.failing = failing
        self.refuse = refuse
        self.random = random.Random(seed)
        self.calls: dict[str, int] = {}

    def report(self, task: TaskView, steps: Steps | None = None) -> None:
        steps = steps or Steps()
        for name in SIDE_EFFECTS:
            steps.run(name, lambda name=name: self._call(task.id, name))  # type: ignore[misc]

    def _call(self, task_id: str, name: str) -> str:
        self.calls[task_id] = self.calls.get(task_id, 0) + 1
        if name == self.refuse:
            raise SideEffectRefused("Jira answered 403: no Transition issues permission")
        if self.random.random() < self.failing:
            raise SideEffectUnavailable("Jira answered 503")
        return ""


def bench_report_back(
    database: str, *, tasks: int, failing: float = 0.5, refuse: str | None = None
) -> dict[str, Any]:
    with bench_env(database, "tests.bench.runners:NoopRunner") as bench:
        services, now = bench.services, [utcnow()]
        lifecycle = services.lifecycle
        lifecycle.clock = lambda: now[0]
        lifecycle.lease_clock = lambda _session: now[0]
        service = FlakyService(failing, refuse)
        reporters = Reporters({"jira": service})
        origin = {"kind": "jira", "external_id": "APP-1", "data": {"key": "APP-1"}}
        ids = []
        for _ in range(tasks):
            spec = TaskSpec.model_validate({"repo": "r", "instruction": "i", "origin": origin})
            ids.append(lifecycle.submit(spec)[0].id)
            lifecycle.cancel(ids[-1])
        jobs = 0
        for _ in range(int(3600 / STEP_S)):
            for task_id in _report_jobs(bench):
                lifecycle.report(task_id, reporters)
                jobs += 1
            now[0] += timedelta(seconds=STEP_S)
            reconcile(lifecycle)
        reports = [lifecycle.get(task_id).report for task_id in ids]
        states = [r.state if r else "none" for r in reports]
        calls = [service.calls.get(task_id, 0) for task_id in ids]
    return {
        "figure": "report-back, service failing half its calls, one simulated hour",
        "database": database,
        "tasks": tasks,
        "refused": refuse or "",
        "minimum_calls_per_task": len(SIDE_EFFECTS),
        "calls_per_task_mean": round(mean(calls), 2),
        "calls_per_task_max": max(calls),
        "report_jobs_per_task": round(jobs / tasks, 2),
        "states": {state: states.count(state) for state in sorted(set(states))},
    }


def _report_jobs(bench: Any) -> list[str]:
    services = bench.services
    found = []
    while (raw := services.redis.rpop(services.queue.report_queue)) is not None:
        args, _, _ = json.loads(base64.b64decode(json.loads(raw)["body"]))
        found.append(str(args[0]))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.report_back")
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    for database in args.databases.split(","):
        for refuse in (None, "transition"):
            print(json.dumps(bench_report_back(database, tasks=args.tasks, refuse=refuse)))


if __name__ == "__main__":
    main()
