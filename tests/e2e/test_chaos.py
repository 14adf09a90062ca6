"""Faults under real processes: the database cut at claim, at event write and at the end, a worker
frozen past its lease, a worker cut off from the database, Redis refusing writes.

Workers reach a PostgreSQL database of the test's own through a TCP proxy the test cuts
(never the machine's server); the test reads and submits directly. Every test asserts each
task ends as it should, with one outcome per attempt and no event from a stale run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import func, select

from orchestrator.config import OrchestratorSettings
from orchestrator.models import Attempt, Event
from orchestrator.reporting import Reporters
from orchestrator.services import Services
from orchestrator.states import TaskState
from tests.conftest import TEST_RUNNER
from tests.e2e.proxy import CuttableProxy
from tests.orchestrator.test_workers import ended, records, submit
from tests.services import PostgresDatabases
from tests.waiting import wait_until
from tests.workers import WorkerPool

pytestmark = pytest.mark.slow


class Chaos:
    """A database of its own, reached by the workers through cuttable proxies."""

    def __init__(self, url: str, redis_url: str, tmp: Path) -> None:
        self.url, self.tmp = url, tmp
        self.settings = OrchestratorSettings(
            data_dir=tmp / "data",
            database_url=url,
            redis_url=redis_url,
            runner=TEST_RUNNER,
            heartbeat_interval_s=0.3,
            heartbeat_timeout_s=6.0,  # self-stop after 4.5 s without the store
            reconcile_interval_s=0.3,
            requeue_grace_s=0.5,
            attempt_time_limit_s=120,
            queue_name=f"autan.chaos.{uuid.uuid4().hex[:8]}",
        )
        self.services = Services(self.settings, reporters=Reporters())
        self.services.migrate()
        self.proxies: list[CuttableProxy] = []
        self.pools: list[WorkerPool] = []

    def worker(self, **overrides: Any) -> tuple[subprocess.Popen[bytes], CuttableProxy, Path]:
        """A worker process of its own behind a proxy of its own; returns it, its proxy, its log."""
        proxy, through = CuttableProxy.before(self.url)
        self.proxies.append(proxy)
        logs = self.tmp / f"logs-{len(self.pools)}"
        logs.mkdir()
        settings = self.settings.model_copy(update={"database_url": through, **overrides})
        pool = WorkerPool(settings, logs)
        self.pools.append(pool)
        return pool.start(), proxy, logs / "worker-0.log"

    def output(self) -> str:
        return "\n".join(pool.output() for pool in self.pools)

    def events(self, task_id: str) -> list[tuple[int, str, dict[str, Any]]]:
        with self.services.sessions() as session:
            rows = session.execute(
                select(Event.seq, Event.kind, Event.data)
                .where(Event.task_id == task_id)
                .order_by(Event.seq)
            )
            return [(seq, kind, data) for seq, kind, data in rows]

    def close(self) -> None:
        for pool in self.pools:
            pool.stop_all()
        for proxy in self.proxies:
            proxy.close()
        self.services.close()


@pytest.fixture
def chaos(postgres: PostgresDatabases, redis_url: str, tmp_path: Path) -> Iterator[Chaos]:
    url = postgres.create()
    made = Chaos(url, redis_url, tmp_path)
    yield made
    made.close()
    postgres.drop(url)


def one_outcome(chaos: Chaos, task_id: str) -> None:
    kinds = [kind for _, kind, _ in chaos.events(task_id)]
    assert kinds.count("task.finished") == 1
    ends = [d for _, k, d in chaos.events(task_id) if k == "attempt.state"]
    assert sum(d["state"] in ("succeeded", "failed", "cancelled", "timed_out") for d in ends) == 1


def test_a_claim_during_an_outage_is_queued_again_when_the_database_returns(
    chaos: Chaos,
) -> None:
    _, proxy, log = chaos.worker()
    wait_until(lambda: "ready" in log.read_text(), timeout=60, what="the worker to be ready")
    proxy.cut()
    task = submit(chaos.services, {"steps": 2})
    wait_until(
        lambda: f"could not claim attempt {task.attempts[0].id}" in log.read_text(),
        what="the claim to fail",
    )
    proxy.restore()
    done = ended(chaos.services, task.id)
    assert done.state == TaskState.SUCCEEDED, chaos.output()
    assert done.attempts[0].runs == 1
    one_outcome(chaos, task.id)


def test_events_and_the_end_made_during_an_outage_are_kept_and_sent_in_order(
    chaos: Chaos,
) -> None:
    release, record = chaos.tmp / "release", chaos.tmp / "runs"
    _, proxy, log = chaos.worker()
    script = {"record": str(record), "wait_for": str(release), "then_steps": 3}
    task = submit(chaos.services, script)
    wait_until(lambda: records(record), timeout=60, what="the run to start")
    proxy.cut()
    release.touch()  # the run emits three events and ends while the database is away
    wait_until(lambda: "keeping its events" in log.read_text(), what="events to be kept")
    proxy.restore()
    done = ended(chaos.services, task.id)
    assert done.state == TaskState.SUCCEEDED, chaos.output()
    assert done.attempts[0].runs == 1  # not run again from scratch
    texts = [d["text"] for _, k, d in chaos.events(task.id) if k == "model.message"]
    assert texts == ["step 1", "then 1", "then 2", "then 3"]
    one_outcome(chaos, task.id)
    said = log.read_text().splitlines()
    # One line per change of state, no error of ours (the driver's pool may still log its own).
    assert [line for line in said if " ERROR orchestrator." in line] == []
    assert sum("heartbeat of attempt" in line and "failed" in line for line in said) <= 1


def test_an_end_held_up_past_the_lease_is_not_run_again_by_a_worker_that_can_reach_it(
    chaos: Chaos,
) -> None:
    release, record = chaos.tmp / "release", chaos.tmp / "runs"
    _, proxy, log = chaos.worker()
    script = {"record": str(record), "wait_for": str(release), "then_steps": 2}
    task = submit(chaos.services, script)
    wait_until(lambda: records(record), timeout=60, what="the run to start")
    chaos.worker()  # another host, whose reconciler reaches the database all along
    proxy.cut()
    release.touch()  # the run ends while its host cannot reach the database
    wait_until(lambda: "retrying its end" in log.read_text(), what="the end to be retried")
    lease = chaos.settings.heartbeat_timeout_s

    def lease_long_past() -> bool:
        with chaos.services.sessions() as session:
            silent = session.scalar(
                select(func.extract("epoch", func.now() - Attempt.heartbeat_at)).where(
                    Attempt.id == task.attempts[0].id
                )
            )
        return float(silent) > lease + 5 * chaos.settings.reconcile_interval_s

    wait_until(lease_long_past, timeout=60, what="the lease to run out on the database's clock")
    proxy.restore()
    done = ended(chaos.services, task.id)
    assert done.state == TaskState.SUCCEEDED, chaos.output()
    assert done.attempts[0].runs == 1 and len(records(record)) == 1  # not run again
    texts = [d["text"] for _, k, d in chaos.events(task.id) if k == "model.message"]
    assert texts == ["step 1", "then 1", "then 2"]
    one_outcome(chaos, task.id)


def test_a_frozen_worker_is_fenced_out_after_its_replacement_starts(chaos: Chaos) -> None:
    release, record = chaos.tmp / "release", chaos.tmp / "runs"
    frozen, _, _ = chaos.worker()
    script = {"record": str(record), "wait_for": str(release), "then_steps": 2}
    task = submit(chaos.services, script)
    wait_until(lambda: records(record), timeout=60, what="the first run to start")
    os.killpg(frozen.pid, signal.SIGSTOP)
    try:
        chaos.worker()
        wait_until(lambda: len(records(record)) == 2, timeout=60, what="the replacement run")
        release.touch()
        replacement_pid = int(records(record)[1][2])
        done = ended(chaos.services, task.id)
    finally:
        os.killpg(frozen.pid, signal.SIGCONT)
    assert done.state == TaskState.SUCCEEDED, chaos.output()
    assert done.attempts[0].runs == 2
    # The thawed run sees the release too and tries to write: refused, so nothing changes.
    wait_until(lambda: "was taken over" in chaos.pools[0].output(), what="the stale run to stop")
    events = chaos.events(task.id)
    second = next(seq for seq, k, d in events if k == "attempt.state" and d.get("run") == 2)
    late = [d for seq, k, d in events if seq > second and k == "model.message"]
    assert [d["text"] for d in late] == ["step 1", "then 1", "then 2"]  # the replacement's
    assert {d["pid"] for d in late if "pid" in d} == {replacement_pid}
    one_outcome(chaos, task.id)


def test_a_worker_cut_off_from_the_database_kills_its_sandbox_before_the_takeover(
    chaos: Chaos,
) -> None:
    record, pidfile, release = chaos.tmp / "runs", chaos.tmp / "pid", chaos.tmp / "release"
    _, proxy, log = chaos.worker()
    # The sandbox's work: a command that runs until `release` exists, or it is killed.
    command = ["sh", "-c", f"while [ ! -e {release} ]; do sleep 0.1; done"]
    script = {"record": str(record), "command": command, "pidfile": str(pidfile)}
    task = submit(chaos.services, script)
    first = int(wait_until(lambda: pidfile.exists() and pidfile.read_text(), timeout=60))
    proxy.cut()  # only this worker loses the database
    chaos.worker()
    wait_until(lambda: len(records(record)) == 2, timeout=60, what="the takeover")
    # By the time another worker took the attempt, the cut-off run had killed its command.
    assert not _alive(first), chaos.output()
    assert "stopping the run and its sandbox before its lease runs out" in log.read_text()
    release.touch()
    proxy.restore()
    done = ended(chaos.services, task.id)
    assert done.state == TaskState.SUCCEEDED, chaos.output()
    assert done.attempts[0].runs == 2
    one_outcome(chaos, task.id)


def test_redis_refusing_writes_makes_the_worker_wait_then_carry_on(
    chaos: Chaos, tmp_path: Path
) -> None:
    store = tmp_path / "redis"
    store.mkdir()
    server = subprocess.Popen(
        ["redis-server", "--port", "0", "--unixsocket", str(store / "r.sock"),
         "--unixsocketperm", "700", "--save", "3600 1", "--appendonly", "no", "--dir", str(store),
         "--enable-protected-configs", "yes"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _refusing_writes(chaos, server, store)
    finally:
        server.kill()
        server.wait()


def _refusing_writes(chaos: Chaos, server: subprocess.Popen[bytes], store: Path) -> None:
    url = f"unix://{store / 'r.sock'}"
    client = redis.Redis.from_url(url)
    wait_until(lambda: _pings(client), timeout=10, what="redis-server")
    chaos.settings = chaos.settings.model_copy(update={"redis_url": url})
    chaos.services.close()
    chaos.services = Services(chaos.settings, reporters=Reporters())
    worker, _, log = chaos.worker()
    wait_until(lambda: "ready" in log.read_text(), timeout=60, what="the worker to be ready")
    # A save that fails (a directory nothing can be written to, as on a full disk) makes
    # Redis refuse every write with MISCONF.
    client.config_set("dir", "/proc")
    client.bgsave()
    wait_until(lambda: _refuses(client), timeout=30, what="Redis to refuse writes")
    task = submit(chaos.services, {"steps": 1})  # stored; its job cannot be queued
    # Celery's consumer waits, saying why, instead of stopping the worker.
    wait_until(lambda: "Trying again in" in log.read_text(), timeout=60, what="a retry")
    assert "Cannot connect to" in log.read_text() and ": MISCONF Redis" in log.read_text()
    assert worker.poll() is None, chaos.output()
    client.config_set("dir", str(store))
    client.bgsave()
    wait_until(lambda: not _refuses(client), timeout=30, what="Redis to take writes again")
    done = ended(chaos.services, task.id, timeout=90)
    assert done.state == TaskState.SUCCEEDED, chaos.output()
    assert worker.poll() is None  # the same process all along
    assert "Unrecoverable error" not in log.read_text()
    one_outcome(chaos, task.id)
    client.close()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except (redis.ConnectionError, FileNotFoundError):
        return False


def _refuses(client: redis.Redis) -> bool:
    try:
        client.set("probe", "1")
    except redis.ResponseError as exc:
        return str(exc).startswith("MISCONF")
    return False


def _alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
