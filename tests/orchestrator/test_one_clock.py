"""Hosts whose clocks are minutes off, against PostgreSQL, whose clock is its own: leases,
lost workers, schedule-to-start and report deadlines all go by the database's clock."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from orchestrator.base import AttemptOutcome
from orchestrator.lifecycle import Lifecycle
from orchestrator.models import utcnow
from orchestrator.reconcile import Reconciled, reconcile
from orchestrator.services import Services
from orchestrator.states import AttemptState, TaskState
from tests.orchestrator.test_reconcile_report import submit
from tests.waiting import wait_until

OFF = timedelta(minutes=20)
"""Past the schedule-to-start deadline (15 minutes), so a slow clock would make a fresh
submission look overdue, and a fast one a finished task look years from due."""


def host(services: Services, off: timedelta) -> Lifecycle:
    """The lifecycle of an API or worker host whose own clock is `off` from the right time."""
    settings = services.settings.model_copy(update={"schedule_to_start_s": 2.0})

    def clock() -> datetime:
        return utcnow() + off

    return Lifecycle(
        sessions=services.sessions,
        settings=settings,
        queue=services.queue,
        bus=services.lifecycle.bus,
        gate=services.lifecycle.gate,
        clock=clock,
    )


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("off", [OFF, -OFF], ids=["fast", "slow"])
def test_a_host_whose_clock_is_minutes_off_changes_nothing(
    services: Services, off: timedelta
) -> None:
    skewed, right = host(services, off), host(services, timedelta(0))
    healthy, lost, waiting = (submit(skewed) for _ in range(3))
    # Fresh submissions from the skewed host are neither overdue nor lost, to either host.
    assert reconcile(right) == Reconciled() and reconcile(skewed) == Reconciled()

    beating = skewed.claims.claim(healthy.attempts[0].id, worker="skewed")
    dead = skewed.claims.claim(lost.attempts[0].id, worker="skewed-then-dead")
    assert beating is not None and dead is not None
    passes = Reconciled()

    def lost_one_queued() -> bool:
        nonlocal passes
        assert skewed.claims.heartbeat(beating) is False  # still held: never taken for lost
        for lifecycle in (skewed, right):
            done = reconcile(lifecycle)
            passes = Reconciled(
                passes.worker_lost + done.worker_lost, passes.job_lost + done.job_lost
            )
        return skewed.get(lost.id).attempts[0].state == AttemptState.QUEUED

    # The silent one is taken for lost once its lease has run out on the database's clock
    # (3 s), not 20 minutes early or late; the one never claimed goes again after 2 s.
    wait_until(lost_one_queued, timeout=30, what="the silent attempt taken for lost")
    assert passes.worker_lost == 1
    assert passes.job_lost >= 1 and skewed.get(waiting.id).attempts[0].runs == 0
    held = skewed.get(healthy.id).attempts[0]
    assert (held.state, held.runs, held.worker) == (AttemptState.PROVISIONING, 1, "skewed")

    skewed.claims.finish(beating, AttemptState.SUCCEEDED, outcome=AttemptOutcome(verified=True))
    done = skewed.get(healthy.id)
    assert done.state == TaskState.SUCCEEDED and done.finished_at is not None
    assert abs(done.finished_at - utcnow()) < timedelta(minutes=1)  # the database's time
    # Its report job is never run here: the reconciler queues it again after five graces.
    wait_until(
        lambda: reconcile(right).reports == 1, timeout=30, what="the unreported task re-queued"
    )
