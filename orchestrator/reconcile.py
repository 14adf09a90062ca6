"""The reconciler: the store is the truth, so re-queue what the queue or a worker lost."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import timedelta

import redis
from sqlalchemy import exists, select, update

from orchestrator import audit, store
from orchestrator.lifecycle import Lifecycle
from orchestrator.models import Attempt, AuditEntry, Report, Task
from orchestrator.outbox import STORE_DOWN, first_line
from orchestrator.report_runs import due
from orchestrator.states import LIVE_ATTEMPT_STATES, TERMINAL_TASK_STATES, AttemptState

log = logging.getLogger(__name__)

BATCH = 500


@dataclass(frozen=True)
class Reconciled:
    worker_lost: int = 0
    job_lost: int = 0
    reports: int = 0
    audit_pruned: int = 0


def reconcile(lifecycle: Lifecycle) -> Reconciled:
    """One pass; safe to run from every worker at once (each change is a guarded UPDATE)."""
    return Reconciled(
        worker_lost=_requeue_silent_attempts(lifecycle),
        job_lost=_requeue_lost_jobs(lifecycle),
        reports=_requeue_reports(lifecycle),
        audit_pruned=_prune_audit(lifecycle),
    )


def _prune_audit(lifecycle: Lifecycle) -> int:
    """Drop audit entries past AUTAN_AUDIT_RETENTION_DAYS (the log's only deletion); a read
    first, so a pass with nothing to drop writes nothing."""
    days = lifecycle.settings.audit_retention_days
    if days is None:
        return 0
    with lifecycle.sessions() as session:
        before = lifecycle.lease_clock(session) - timedelta(days=days)
        if not session.scalar(select(exists().where(AuditEntry.at < before))):
            return 0
    with lifecycle.write() as (session, _events):
        return audit.prune(session, before=before)


def _requeue_silent_attempts(lifecycle: Lifecycle) -> int:
    settings = lifecycle.settings
    with lifecycle.sessions() as session:
        now = lifecycle.lease_clock(session)
        stale = now - timedelta(seconds=settings.heartbeat_timeout_s)
        silent = session.execute(
            select(Attempt.id, Attempt.lease)
            .where(Attempt.state.in_(LIVE_ATTEMPT_STATES), Attempt.heartbeat_at < stale)
            .limit(BATCH)
        ).all()
    try:
        ending = lifecycle.queue.still_ending(attempt_id for attempt_id, _ in silent)
    except (redis.RedisError, OSError):
        ending = set()  # Redis is away too: no job can be queued for them either way
    requeued = 0
    for attempt_id, lease in silent:
        if attempt_id in ending:
            # Its run is over and its end is being retried through a store outage longer
            # than the lease: running it again would throw its result away.
            continue
        with lifecycle.write() as (session, events):
            moved = store.changed(
                session,
                update(Attempt)
                .where(Attempt.id == attempt_id, Attempt.lease == lease)
                .where(Attempt.state.in_(LIVE_ATTEMPT_STATES), Attempt.heartbeat_at < stale)
                .values(state=AttemptState.QUEUED, lease=None, enqueued_at=now),
            )
            if moved:
                attempt = session.get_one(Attempt, attempt_id)
                lifecycle.event(
                    session,
                    events,
                    attempt.task_id,
                    "attempt.state",
                    {
                        "state": "queued",
                        "number": attempt.number,
                        "reason": "its worker stopped answering; running it again",
                    },
                    attempt_id,
                )
        if moved:
            log.warning("attempt %s lost its worker; queued again", attempt_id)
            lifecycle.enqueue(attempt_id, first=True)
            requeued += 1
    return requeued


def _requeue_lost_jobs(lifecycle: Lifecycle) -> int:
    """Queue again what waits with no job: a missing marker past the grace, or, whatever the
    marker says, no claim past the schedule-to-start deadline (a job that failed before its
    claim and left its marker, a marker whose job Redis lost)."""
    settings = lifecycle.settings
    with lifecycle.sessions() as session:
        now = lifecycle.lease_clock(session)
        old = now - timedelta(seconds=settings.requeue_grace_s)
        overdue = now - timedelta(seconds=settings.schedule_to_start_s)
        waiting = session.execute(
            select(Attempt.id, Attempt.enqueued_at)
            .where(Attempt.state == AttemptState.QUEUED, Attempt.enqueued_at < old)
            .order_by(Attempt.enqueued_at)
            .limit(BATCH)
        ).all()
    unmarked = set(lifecycle.queue.without_job([attempt_id for attempt_id, _ in waiting]))
    lost = [
        (attempt_id, "had no job in the queue" if attempt_id in unmarked else "was never claimed")
        for attempt_id, enqueued_at in waiting
        if attempt_id in unmarked or (enqueued_at is not None and enqueued_at < overdue)
    ]
    for attempt_id, why in lost:
        with lifecycle.write() as (session, _):
            # enqueued_at restarts both clocks: one more job per deadline at most.
            session.execute(
                update(Attempt)
                .where(Attempt.id == attempt_id, Attempt.state == AttemptState.QUEUED)
                .values(enqueued_at=now)
            )
        log.warning("attempt %s %s; queued again", attempt_id, why)
        lifecycle.enqueue(attempt_id, first=True)
    return len(lost)


def _requeue_reports(lifecycle: Lifecycle) -> int:
    # Reports are quick; one still missing after several graces was lost with its job.
    # One that has started is queued only when its next try is due and no job holds it.
    with lifecycle.sessions() as session:
        now = lifecycle.lease_clock(session)
        old = now - timedelta(seconds=5 * lifecycle.settings.requeue_grace_s)
        unreported = session.scalars(
            select(Task.id)
            .outerjoin(Report, Report.task_id == Task.id)
            .where(Task.state.in_(TERMINAL_TASK_STATES), Task.reported_at.is_(None))
            .where(Task.finished_at < old)
            .where(Report.task_id.is_(None) | due(now))
            .limit(BATCH)
        ).all()
    for task_id in unreported:
        lifecycle.after_end(task_id)
    return len(unreported)


class Reconciler(threading.Thread):
    """Runs `reconcile` every interval until stopped; errors are logged, never fatal."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        super().__init__(name="autan-reconciler", daemon=True)
        self._lifecycle = lifecycle
        self._stopping = threading.Event()

    def run(self) -> None:
        failing = False
        while not self._stopping.wait(self._lifecycle.settings.reconcile_interval_s):
            try:
                done = reconcile(self._lifecycle)
            except STORE_DOWN as exc:
                # Expected while the database is away: one line when it starts, not a
                # traceback every interval.
                if not failing:
                    log.warning("reconcile passes fail (%s); trying each interval", first_line(exc))
                failing = True
                continue
            except Exception:
                log.exception("reconcile pass failed; trying again next interval")
                continue
            if failing:
                log.info("reconcile passes work again")
                failing = False
            if done != Reconciled():
                log.info("reconciled: %s", done)

    def stop(self) -> None:
        self._stopping.set()
