"""A store that fails under a run: claims, events, ends, leases and the schedule-to-start deadline.

The outage is a gate in front of every write transaction that raises what SQLAlchemy raises
for a lost server, for a given number of writes or until lifted; the chaos suite in
tests/e2e cuts a real PostgreSQL connection instead.
"""

from __future__ import annotations

import logging
import threading
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from orchestrator.base import AttemptContext, AttemptFailed, AttemptOutcome
from orchestrator.config import OrchestratorSettings
from orchestrator.errors import LeaseLost
from orchestrator.executor import AttemptExecutor
from orchestrator.lifecycle import Lifecycle
from orchestrator.models import Event, utcnow
from orchestrator.queue import JOBS_KEY, priority_lists
from orchestrator.reconcile import Reconciled, reconcile
from orchestrator.services import Services
from orchestrator.states import AttemptState, TaskState
from tests.orchestrator.conftest import Clock
from tests.orchestrator.test_reconcile_report import submit


class Outage:
    """Wraps the lifecycle's write gate: while `down` (or for the next `writes`), writes fail."""

    def __init__(self, inner: AbstractContextManager[Any]) -> None:
        self.inner = inner
        self.down = False
        self.writes = 0
        self.refused = 0
        self.lost_answers = 0
        """The next writes commit, then fail as if the connection dropped before the answer."""
        self.hang = threading.Event()
        self.lifted = threading.Event()

    def __enter__(self) -> Any:
        if self.hang.is_set():
            self.lifted.wait(60)  # a database behind a dropped network: no answer at all
        if self.down or self.writes > 0:
            self.writes = max(0, self.writes - 1)
            self.refused += 1
            raise OperationalError("BEGIN", {}, ConnectionError("server closed the connection"))
        return self.inner.__enter__()

    def __exit__(self, *exc: Any) -> Any:
        done = self.inner.__exit__(*exc)
        if exc[0] is None and self.lost_answers > 0:
            self.lost_answers -= 1
            raise OperationalError("COMMIT", {}, ConnectionError("server closed the connection"))
        return done


@pytest.fixture
def outage(services: Services) -> Outage:
    gate = Outage(services.lifecycle.gate)
    services.lifecycle.gate = gate
    return gate


def stored_events(services: Services, task_id: str) -> list[tuple[str, dict[str, Any]]]:
    with services.sessions() as session:
        rows = session.execute(
            select(Event.kind, Event.data).where(Event.task_id == task_id).order_by(Event.seq)
        )
        return [(kind, data) for kind, data in rows]


class Steps:
    """A runner that emits through an outage it starts and ends itself."""

    def __init__(self, outage: Outage, *, fail_end_writes: int = 0) -> None:
        self.outage = outage
        self.fail_end_writes = fail_end_writes

    def run(self, ctx: AttemptContext) -> AttemptOutcome:
        ctx.emit("model.message", {"text": "before"})
        self.outage.down = True
        for n in range(3):
            ctx.emit("model.message", {"text": f"during {n}"})
        self.outage.down = False
        ctx.emit("model.message", {"text": "after"})
        self.outage.writes = self.fail_end_writes  # the end meets the outage's tail
        return AttemptOutcome(summary="done", diff="d\n", verified=True)


def test_a_claim_the_store_refuses_clears_the_job_marker_for_the_reconciler(
    services: Services, outage: Outage, clock: Clock
) -> None:
    task = submit(services.lifecycle)
    attempt_id = task.attempts[0].id
    assert services.redis.hexists(JOBS_KEY, attempt_id)
    outage.down = True
    executor = AttemptExecutor(services.lifecycle, Steps(outage), "w")
    assert executor.execute(attempt_id) == "not taken: the store is unreachable"
    assert not services.redis.hexists(JOBS_KEY, attempt_id)
    outage.down = False
    clock.advance(services.settings.requeue_grace_s + 1)
    assert reconcile(services.lifecycle) == Reconciled(job_lost=1)
    assert services.redis.hexists(JOBS_KEY, attempt_id)
    assert services.lifecycle.get(task.id).attempts[0].state == AttemptState.QUEUED


def test_an_attempt_never_claimed_is_queued_again_ahead_of_the_backlog(
    services: Services, clock: Clock
) -> None:
    waiting = submit(services.lifecycle)
    clock.advance(services.settings.schedule_to_start_s - 1)
    backlog = [submit(services.lifecycle) for _ in range(3)]
    assert reconcile(services.lifecycle) == Reconciled()  # marker there, deadline not past
    clock.advance(2)
    # Its marker says a job waits, but none took it past the deadline: queue it again.
    assert reconcile(services.lifecycle) == Reconciled(job_lost=1)
    assert services.queue.depth() == 5
    assert reconcile(services.lifecycle) == Reconciled()  # one more job per deadline at most
    first = services.redis.rpop(services.settings.queue_name)
    assert first is not None and waiting.attempts[0].id.encode() in first
    assert all(t.attempts[0].state == AttemptState.QUEUED for t in backlog)


def test_an_attempt_whose_worker_was_lost_is_queued_ahead_of_the_backlog(
    services: Services, clock: Clock
) -> None:
    lost = submit(services.lifecycle)
    assert services.lifecycle.claims.claim(lost.attempts[0].id, worker="gone") is not None
    services.redis.delete(*priority_lists(services.settings.queue_name))  # that worker took it
    backlog = [submit(services.lifecycle) for _ in range(3)]
    clock.advance(services.settings.heartbeat_timeout_s + 1)
    assert reconcile(services.lifecycle) == Reconciled(worker_lost=1)
    assert services.queue.depth() == 4
    # A worker pops the list of the first priority before the others: the lost one first.
    first = services.redis.rpop(services.settings.queue_name)
    assert first is not None and lost.attempts[0].id.encode() in first
    assert services.redis.rpop(services.settings.queue_name) is None  # the backlog waits behind
    assert all(t.attempts[0].state == AttemptState.QUEUED for t in backlog)


def test_events_made_during_an_outage_are_kept_in_order_and_the_end_is_retried(
    services: Services, outage: Outage
) -> None:
    task = submit(services.lifecycle)
    executor = AttemptExecutor(services.lifecycle, Steps(outage, fail_end_writes=2), "w")
    assert executor.execute(task.attempts[0].id) == "succeeded"
    assert outage.refused >= 5  # three events and two tries of the end
    done = services.lifecycle.get(task.id)
    assert done.state == TaskState.SUCCEEDED
    assert done.attempts[0].runs == 1
    assert done.result is not None and done.result.summary == "done"
    messages = [d["text"] for k, d in stored_events(services, task.id) if k == "model.message"]
    assert messages == ["before", "during 0", "during 1", "during 2", "after"]
    kinds = [k for k, _ in stored_events(services, task.id)]
    assert kinds.count("task.finished") == 1


class LosesAnAnswer:
    """A runner one of whose events is stored but whose answer never comes back."""

    def __init__(self, outage: Outage) -> None:
        self.outage = outage

    def run(self, ctx: AttemptContext) -> AttemptOutcome:
        ctx.emit("model.message", {"text": "before"})
        self.outage.lost_answers = 1
        ctx.emit("model.message", {"text": "stored, answer lost"})
        ctx.emit("model.message", {"text": "after"})
        return AttemptOutcome(summary="done", diff="d\n", verified=True)


def test_an_event_stored_whose_answer_was_lost_is_not_stored_twice(
    services: Services, outage: Outage
) -> None:
    task = submit(services.lifecycle)
    executor = AttemptExecutor(services.lifecycle, LosesAnAnswer(outage), "w")
    assert executor.execute(task.attempts[0].id) == "succeeded"
    assert outage.lost_answers == 0
    messages = [d["text"] for k, d in stored_events(services, task.id) if k == "model.message"]
    assert messages == ["before", "stored, answer lost", "after"]


class Waits:
    """A runner that cuts the store, waits for its stop, and lifts the outage once stopped."""

    def __init__(self, outage: Outage) -> None:
        self.outage = outage
        self.stopped = threading.Event()

    def run(self, ctx: AttemptContext) -> AttemptOutcome:
        self.outage.down = True
        ctx.emit("model.message", {"text": "kept, then dropped with the run"})
        ctx.stop.wait(60)
        self.stopped.set()
        self.outage.down = False
        raise AttemptFailed("stopped")


def test_a_run_cut_off_from_the_store_stops_itself_before_its_lease_ends(
    services: Services, outage: Outage, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="orchestrator")
    task = submit(services.lifecycle)
    runner = Waits(outage)
    executor = AttemptExecutor(services.lifecycle, runner, "w")
    assert executor.execute(task.attempts[0].id) == "stopped: the store is unreachable"
    assert runner.stopped.is_set()
    attempt = services.lifecycle.get(task.id).attempts[0]
    assert attempt.state == AttemptState.QUEUED  # given back at once, the store being back
    assert services.queue.depth() == 2
    assert stored_events(services, task.id)[-1] == (
        "attempt.state",
        {"state": "queued", "number": 1, "reason": "its worker could not reach the store; "
         "running it again"},
    )  # fmt: skip
    failed = [r for r in caplog.records if "heartbeat of attempt" in r.getMessage()]
    assert len(failed) == 1 and failed[0].exc_info is None  # one line, not a traceback a beat


class Hangs:
    """A runner that makes the store hang (no error, no answer) and waits for its stop."""

    def __init__(self, outage: Outage) -> None:
        self.outage = outage

    def run(self, ctx: AttemptContext) -> AttemptOutcome:
        self.outage.hang.set()
        stopped = ctx.stop.wait(60)
        self.outage.hang.clear()
        self.outage.lifted.set()
        raise AttemptFailed(f"stopped: {stopped}")


def test_a_heartbeat_that_hangs_does_not_hold_up_the_self_stop(
    services: Services, outage: Outage
) -> None:
    task = submit(services.lifecycle)
    executor = AttemptExecutor(services.lifecycle, Hangs(outage), "w")
    assert executor.execute(task.attempts[0].id) == "stopped: the store is unreachable"
    attempt = services.lifecycle.get(task.id).attempts[0]
    assert attempt.state == AttemptState.QUEUED and attempt.runs == 1


def test_a_run_that_lost_its_lease_writes_nothing_more(services: Services, clock: Clock) -> None:
    task = submit(services.lifecycle)
    attempt_id = task.attempts[0].id
    old = services.lifecycle.claims.claim(attempt_id, worker="frozen")
    assert old is not None
    clock.advance(services.settings.heartbeat_timeout_s + 1)
    assert reconcile(services.lifecycle).worker_lost == 1
    new = services.lifecycle.claims.claim(attempt_id, worker="fresh")
    assert new is not None and new.runs == 2
    before = stored_events(services, task.id)
    with pytest.raises(LeaseLost):
        services.lifecycle.claims.emit(old, "model.message", {"text": "stale"})
    with pytest.raises(LeaseLost):
        services.lifecycle.claims.set_phase(old, AttemptState.VERIFYING)
    with pytest.raises(LeaseLost):
        services.lifecycle.claims.finish(
            old, AttemptState.SUCCEEDED, outcome=AttemptOutcome(verified=True)
        )
    assert stored_events(services, task.id) == before
    services.lifecycle.claims.emit(new, "model.message", {"text": "fresh"})
    services.lifecycle.claims.finish(
        new, AttemptState.SUCCEEDED, outcome=AttemptOutcome(verified=True)
    )
    done = services.lifecycle.get(task.id)
    assert done.state == TaskState.SUCCEEDED and done.attempts[0].runs == 2


@pytest.mark.parametrize(
    ("timeout", "interval", "outage_s", "self_stop"),
    [(60.0, 2.0, 40.0, 40.0), (30.0, 2.0, 40.0, 22.5), (3.0, 0.2, 40.0, 2.25)],
)
def test_a_run_stops_itself_well_before_its_lease_runs_out(
    timeout: float, interval: float, outage_s: float, self_stop: float
) -> None:
    settings = OrchestratorSettings(
        heartbeat_timeout_s=timeout, heartbeat_interval_s=interval, store_outage_s=outage_s
    )
    assert settings.self_stop_s == self_stop
    assert settings.self_stop_s + 2 * interval <= timeout


def test_leases_are_judged_on_the_database_s_clock_not_a_worker_s(services: Services) -> None:
    # A worker whose host clock runs an hour late claims and beats; a reconciler on a host
    # with the right time must not take its fresh heartbeats for an hour-old silence.
    late = Lifecycle(
        sessions=services.sessions,
        settings=services.settings,
        queue=services.queue,
        bus=services.lifecycle.bus,
        gate=services.lifecycle.gate,
        clock=lambda: utcnow() - timedelta(hours=1),
    )
    task = submit(services.lifecycle)
    claim = late.claims.claim(task.attempts[0].id, worker="late")
    assert claim is not None
    assert late.claims.heartbeat(claim) is False
    assert reconcile(services.lifecycle) == Reconciled()
    attempt = services.lifecycle.get(task.id).attempts[0]
    assert attempt.state == AttemptState.PROVISIONING and attempt.runs == 1
