"""Real Celery worker processes on a real Redis: the lifecycle survives kills, restarts and cancels."""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path

import pytest
from sqlalchemy import select

from orchestrator.config import OrchestratorSettings
from orchestrator.models import Event, WorkerPresence
from orchestrator.schemas import TaskSpec, TaskView
from orchestrator.services import Services
from orchestrator.states import TaskState
from tests.services import RedisServer
from tests.waiting import wait_until
from tests.workers import WorkerPool


def submit(services: Services, script: dict[str, object], attempts: int = 1) -> TaskView:
    spec = TaskSpec(repo="/srv/repo.git", instruction=json.dumps(script), attempts=attempts)
    return services.lifecycle.submit(spec)[0]


def ended(services: Services, task_id: str, timeout: float = 60) -> TaskView:
    def done() -> TaskView | None:
        task = services.lifecycle.get(task_id)
        return task if task.state.terminal else None

    return wait_until(done, timeout=timeout, what=f"task {task_id} to end")


def records(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def kinds(services: Services, task_id: str) -> list[str]:
    with services.sessions() as s:
        return list(
            s.scalars(select(Event.kind).where(Event.task_id == task_id).order_by(Event.seq))
        )


def test_a_worker_runs_attempts_in_parallel_and_keeps_the_best(
    services: Services, workers: WorkerPool, tmp_path: Path
) -> None:
    workers.start(concurrency=2)
    record = tmp_path / "runs"
    script = {
        "record": str(record),
        "steps": 3,
        "by_attempt": {
            "1": {"diff": "x\ny\n", "verified": True},
            "2": {"diff": "x\n", "verified": True},
        },
    }
    task = ended(services, submit(services, script, attempts=2).id)
    assert task.state == TaskState.SUCCEEDED, workers.output()
    assert task.result is not None and task.result.diff == "x\n"
    assert sorted(r[1] for r in records(record)) == ["1", "2"]
    seen = kinds(services, task.id)
    assert seen.count("model.message") == 6
    assert seen.count("task.finished") == 1
    wait_until(lambda: "task.reported" in kinds(services, task.id), what="the report")


def test_a_killed_worker_s_attempt_runs_again_elsewhere_and_the_task_ends_once(
    services: Services, workers: WorkerPool, tmp_path: Path
) -> None:
    record, release = tmp_path / "runs", tmp_path / "release"
    doomed = workers.start()
    task = submit(services, {"record": str(record), "wait_for": str(release)})
    wait_until(lambda: len(records(record)) == 1, what="the first run to start")
    first_pid = int(records(record)[0][2])
    workers.kill(doomed)
    wait_until(lambda: not _alive(first_pid), what="the pool child to die with it")

    workers.start()
    wait_until(lambda: len(records(record)) == 2, what="the attempt to run again", timeout=60)
    release.touch()
    done = ended(services, task.id)
    assert done.state == TaskState.SUCCEEDED, workers.output()
    assert done.attempts[0].runs == 2
    assert int(records(record)[1][2]) != first_pid
    seen = kinds(services, task.id)
    assert seen.count("task.finished") == 1
    assert seen.count("attempt.state") >= 5  # provisioning, running, requeued, provisioning, ...


def test_queued_tasks_survive_a_redis_restart(
    services: Services, workers: WorkerPool, redis_server: RedisServer
) -> None:
    tasks = [submit(services, {"steps": 1}) for _ in range(5)]
    assert services.queue.depth() == 5
    redis_server.restart()
    assert services.queue.depth() == 0  # the queue is gone with Redis
    workers.start(concurrency=2)
    done = [ended(services, t.id) for t in tasks]
    assert [t.state for t in done] == [TaskState.SUCCEEDED] * 5, workers.output()
    assert all(t.attempts[0].runs == 1 for t in done)


def test_cancel_stops_a_running_command_within_seconds(
    services: Services, workers: WorkerPool, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pid"
    workers.start()
    task = submit(services, {"command": ["sleep", "600"], "pidfile": str(pidfile)})
    pid = int(wait_until(lambda: pidfile.exists() and pidfile.read_text(), what="the command"))
    assert _alive(pid)
    services.lifecycle.cancel(task.id, by="test")
    wait_until(lambda: not _alive(pid), what="the command to be killed")
    done = wait_until(
        lambda: (t := services.lifecycle.get(task.id)).attempts[0].state == "cancelled" and t,
        what="the attempt to end",
    )
    assert done.state == TaskState.CANCELLED
    assert done.attempts[0].reason == "the task was cancelled"


def test_no_runner_configured_fails_the_task_plainly(
    services: Services, workers: WorkerPool
) -> None:
    workers.settings = workers.settings.model_copy(update={"runner": "none"})
    workers.start()
    done = ended(services, submit(services, {}).id)
    assert done.state == TaskState.FAILED
    assert done.reason is not None and done.reason.startswith("no runner configured")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose; /proc tells them apart.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_worker_reaps_its_own_sandbox_root_and_reports_itself_while_idle(
    settings: OrchestratorSettings, services: Services, tmp_path: Path
) -> None:
    root = tmp_path / "sandboxes-elsewhere"  # AUTAN_SANDBOX_ROOT, not DATA_DIR/sandboxes
    orphan = root / "0123abcd4567"
    orphan.mkdir(parents=True)
    (orphan / "lock").touch()  # no live process holds it: left by a crashed worker
    (tmp_path / "logs").mkdir()
    pool = WorkerPool(settings.model_copy(update={"sandbox_root": root}), tmp_path / "logs")
    try:
        worker = pool.start(concurrency=2)

        def listed() -> list[WorkerPresence]:
            with services.sessions() as session:
                return list(session.scalars(select(WorkerPresence)))

        (row,) = wait_until(listed, timeout=60, what="the idle worker to report itself")
        assert (row.name, row.host, row.pid) == (f"{socket.gethostname()}:{worker.pid}",
                                                 socket.gethostname(), worker.pid)  # fmt: skip
        assert row.concurrency == 2 and row.heartbeat_at >= row.started_at
        assert not orphan.exists() and root.is_dir()
        assert "removed 1 sandbox(es) left by a crashed worker: ['0123abcd4567']" in pool.output()
        worker.send_signal(signal.SIGTERM)  # a clean stop takes it off the list
        assert worker.wait(timeout=60) == 0
        assert listed() == []
    finally:
        pool.stop_all()
