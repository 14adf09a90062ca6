"""An attempt's end through a store that fails: retried through an outage longer than the lease,
given up after AUTAN_STORE_OUTAGE_S, and not retried when the store refuses it for good."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy.exc import DataError

from orchestrator.base import AttemptContext, AttemptOutcome
from orchestrator.executor import AttemptExecutor
from orchestrator.lifecycle import Lifecycle
from orchestrator.queue import ENDING_KEY
from orchestrator.reconcile import Reconciled, reconcile
from orchestrator.services import Services
from orchestrator.states import AttemptState, TaskState
from tests.orchestrator.conftest import Clock
from tests.orchestrator.test_reconcile_report import submit
from tests.orchestrator.test_store_faults import Outage, outage, stored_events
from tests.waiting import wait_until

__all__ = ["outage"]  # the fixture, used here by name


class EndsIntoOutage:
    """A runner whose work is done just as the store goes away."""

    def __init__(self, outage: Outage) -> None:
        self.outage = outage

    def run(self, ctx: AttemptContext) -> AttemptOutcome:
        ctx.emit("model.message", {"text": "done"})
        self.outage.down = True
        return AttemptOutcome(summary="kept", diff="d\n", verified=True)


def other_worker(services: Services, outage: Outage, clock: Clock) -> Lifecycle:
    """A worker on another host whose connection to the store still works."""
    return Lifecycle(
        sessions=services.sessions,
        settings=services.settings,
        queue=services.queue,
        bus=services.lifecycle.bus,
        gate=outage.inner,
        clock=clock,
        lease_clock=lambda _session: clock(),
    )


def test_an_end_retried_past_the_lease_is_not_run_again_and_its_result_stands(
    services: Services, outage: Outage, clock: Clock
) -> None:
    task = submit(services.lifecycle)
    attempt_id = task.attempts[0].id
    other = other_worker(services, outage, clock)
    seen: dict[str, Any] = {}

    def elsewhere() -> None:
        wait_until(lambda: outage.refused >= 2, what="the end to be refused")
        seen["marked"] = services.redis.exists(f"{ENDING_KEY}{attempt_id}")
        clock.advance(services.settings.heartbeat_timeout_s + 1)  # its lease has run out
        seen["while ending"] = reconcile(other)
        services.redis.delete(f"{ENDING_KEY}{attempt_id}")  # as if Redis had lost the mark
        seen["without the mark"] = reconcile(other)
        outage.down = False

    helper = threading.Thread(target=elsewhere)
    helper.start()
    assert (
        AttemptExecutor(services.lifecycle, EndsIntoOutage(outage), "w").execute(attempt_id)
        == "succeeded"
    )
    helper.join()
    assert seen["marked"] == 1
    assert seen["while ending"] == Reconciled()  # left alone while its end is retried
    assert seen["without the mark"] == Reconciled(worker_lost=1)
    done = services.lifecycle.get(task.id)
    assert done.state == TaskState.SUCCEEDED and done.result is not None
    assert done.result.summary == "kept"
    assert (done.attempts[0].state, done.attempts[0].runs) == (AttemptState.SUCCEEDED, 1)
    assert not services.redis.exists(f"{ENDING_KEY}{attempt_id}")
    # The job queued for it meanwhile finds nothing to take.
    assert (
        AttemptExecutor(services.lifecycle, EndsIntoOutage(outage), "w2").execute(attempt_id)
        == "not taken: ended, cancelled, or held by a live worker"
    )
    assert [k for k, _ in stored_events(services, task.id)].count("task.finished") == 1


def test_an_end_the_store_refuses_past_the_outage_limit_is_given_up(
    services: Services, outage: Outage
) -> None:
    services.lifecycle.settings = services.settings.model_copy(update={"store_outage_s": 1.0})
    task = submit(services.lifecycle)
    executor = AttemptExecutor(services.lifecycle, EndsIntoOutage(outage), "w")
    assert executor.execute(task.attempts[0].id) == "store unreachable"
    assert outage.refused >= 3  # tried, backed off, tried again: not once and not forever
    outage.down = False
    attempt = services.lifecycle.get(task.id).attempts[0]
    assert attempt.state == AttemptState.RUNNING and attempt.runs == 1  # the reconciler's now


class Refuses(Outage):
    """Refuses the next write for good, as a store refusing a value does (not an outage)."""

    def __enter__(self) -> Any:
        if self.writes > 0:
            self.writes -= 1
            self.refused += 1
            raise DataError("INSERT", {}, ValueError("value too long for type"))
        return self.inner.__enter__()


class EndsRefused:
    def __init__(self, gate: Refuses) -> None:
        self.gate = gate

    def run(self, ctx: AttemptContext) -> AttemptOutcome:
        self.gate.writes = 1
        return AttemptOutcome(summary="refused", verified=True)


def test_an_end_the_store_refuses_for_good_fails_the_attempt_saying_why_at_once(
    services: Services,
) -> None:
    gate = Refuses(services.lifecycle.gate)
    services.lifecycle.gate = gate
    task = submit(services.lifecycle)
    executor = AttemptExecutor(services.lifecycle, EndsRefused(gate), "w")
    assert executor.execute(task.attempts[0].id) == "failed"
    assert gate.refused == 1  # not retried
    done = services.lifecycle.get(task.id)
    assert done.state == TaskState.FAILED and done.result is None
    assert done.attempts[0].reason == "its result could not be stored: value too long for type"
