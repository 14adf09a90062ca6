"""The worker's side of the lifecycle: claim an attempt, keep it alive, end it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import redis
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from orchestrator import store
from orchestrator.base import AttemptOutcome
from orchestrator.errors import LeaseLost
from orchestrator.events import event_view
from orchestrator.models import Attempt, Event, Task, new_id, utcnow
from orchestrator.schemas import EventView, TaskView
from orchestrator.states import LIVE_ATTEMPT_STATES, AttemptState, TaskState

if TYPE_CHECKING:
    from orchestrator.lifecycle import Lifecycle

log = logging.getLogger(__name__)


def database_now(session: Session) -> datetime:
    """Now on the database's clock, for leases and deadlines: workers on hosts whose clocks
    differ still judge a heartbeat alike. SQLite lives on this host, so its clock is ours."""
    if session.get_bind().dialect.name == "postgresql":
        now: datetime = session.execute(select(func.statement_timestamp())).scalar_one()
        return now.astimezone(UTC)
    return utcnow()


@dataclass(frozen=True)
class Claim:
    """A worker's hold on one run of an attempt; every later write checks the lease."""

    attempt_id: str
    task_id: str
    number: int
    lease: str
    runs: int
    task: TaskView


class Claims:
    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle

    def claim(self, attempt_id: str, *, worker: str) -> Claim | None:
        """Take an attempt to run it, or None when it is not there to take.

        Only a queued attempt, or a live one whose worker has fallen silent, can be
        taken: so an attempt never runs twice at once.
        """
        lease = new_id()
        with self.lifecycle.write() as (session, events):
            now = self.lifecycle.lease_clock(session)
            stale = now - timedelta(seconds=self.lifecycle.settings.heartbeat_timeout_s)
            taken = store.changed(
                session,
                update(Attempt)
                .where(Attempt.id == attempt_id)
                .where(
                    (Attempt.state == AttemptState.QUEUED)
                    | (Attempt.state.in_(LIVE_ATTEMPT_STATES) & (Attempt.heartbeat_at < stale))
                )
                .values(
                    state=AttemptState.PROVISIONING,
                    lease=lease,
                    worker=worker,
                    runs=Attempt.runs + 1,
                    started_at=now,
                    heartbeat_at=now,
                ),
            )
            if not taken:
                return None
            attempt = session.get_one(Attempt, attempt_id)
            session.refresh(attempt)
            task = attempt.task
            if task.cancel_requested or attempt.runs > self.lifecycle.settings.max_runs_per_attempt:
                ending = (
                    (AttemptState.CANCELLED, task.reason or "cancelled")
                    if task.cancel_requested
                    else (
                        AttemptState.FAILED,
                        f"its worker was lost {attempt.runs - 1} times; not trying again",
                    )
                )
                self._end_attempt(session, events, attempt, *ending, now=now)
                claim = None
            else:
                if task.state == TaskState.QUEUED:
                    task.state = TaskState.RUNNING
                    task.started_at = now
                self.lifecycle.event(
                    session,
                    events,
                    task.id,
                    "attempt.state",
                    {"state": "provisioning", "number": attempt.number, "run": attempt.runs},
                    attempt.id,
                )
                claim = Claim(
                    attempt.id,
                    task.id,
                    attempt.number,
                    lease,
                    attempt.runs,
                    TaskView.model_validate(task),
                )
        if claim is None:
            self.lifecycle.finalize(task.id)
            return None
        try:
            self.lifecycle.queue.taken(attempt_id)
        except (redis.RedisError, OSError) as exc:
            log.warning("could not clear the job marker of %s: %s", attempt_id, exc)
        return claim

    def heartbeat(self, claim: Claim) -> bool:
        """Prove the worker alive; returns True when the task was cancelled."""
        with self.lifecycle.write() as (session, _):
            self._update_held(session, claim, heartbeat_at=self.lifecycle.lease_clock(session))
            cancelled = session.scalar(
                select(Task.cancel_requested).where(Task.id == claim.task_id)
            )
        return bool(cancelled)

    def pin_commit(self, claim: Claim, commit: str) -> str:
        """Record the commit the attempt works on and return it: the task's, which the first
        attempt to get here set, so every attempt of a task works on one commit."""
        with self.lifecycle.write() as (session, _):
            session.execute(
                update(Task)
                .where(Task.id == claim.task_id, Task.commit.is_(None))
                .values(commit=commit)
            )
            pinned = session.scalar(select(Task.commit).where(Task.id == claim.task_id))
            assert pinned is not None  # set above, or before by another attempt
            self._update_held(session, claim, commit=pinned)
        return pinned

    @staticmethod
    def _update_held(session: Session, claim: Claim, **values: Any) -> None:
        """Update the attempt only while this claim still holds it, or raise LeaseLost."""
        held = store.changed(
            session,
            update(Attempt)
            .where(Attempt.id == claim.attempt_id, Attempt.lease == claim.lease)
            .where(Attempt.state.in_(LIVE_ATTEMPT_STATES))
            .values(**values),
        )
        if not held:
            raise LeaseLost(f"attempt {claim.attempt_id} is no longer held by this worker")

    @staticmethod
    def _end_held(session: Session, claim: Claim) -> bool:
        """Take the attempt to end it: while this claim holds it, or once the reconciler has
        queued it again for a silent lease (an end retried through a store outage longer than
        the lease) as long as no run has taken it since; its run is over, so the result stands
        and the job queued for it finds nothing to take."""
        held = (Attempt.lease == claim.lease) & Attempt.state.in_(LIVE_ATTEMPT_STATES)
        untaken = (
            (Attempt.state == AttemptState.QUEUED)
            & Attempt.lease.is_(None)
            & (Attempt.runs == claim.runs)
        )
        return bool(
            store.changed(
                session,
                update(Attempt)
                .where(Attempt.id == claim.attempt_id, held | untaken)
                .values(lease=None),
            )
        )

    def set_phase(self, claim: Claim, state: AttemptState) -> None:
        self.write_many(claim, [("phase", state)])

    def emit(self, claim: Claim, kind: str, data: dict[str, Any]) -> EventView:
        """Store one event of the run, refused (LeaseLost) once another run holds the attempt."""
        return self.write_many(claim, [("event", (kind, data))])[0]

    def write_many(self, claim: Claim, writes: list[tuple[str, Any]]) -> list[EventView]:
        """Store a run's events ("event", (kind, data)) and phases ("phase", state) in order,
        in one transaction fenced by the lease: all of them, or none and LeaseLost."""
        with self.lifecycle.write() as (session, events):
            # The guarded UPDATE locks the attempt's row until commit: a takeover waits
            # for these writes, or these writes see the new lease and are refused.
            self._update_held(session, claim, lease=claim.lease)
            for what, value in writes:
                if what == "phase":
                    self._update_held(session, claim, state=value)
                    kind, data = "attempt.state", {"state": str(value), "number": claim.number}
                else:
                    kind, data = value
                self.lifecycle.event(session, events, claim.task_id, kind, data, claim.attempt_id)
            return [event_view(e) for e in events]

    def stored_since(self, claim: Claim, after_seq: int | None) -> list[tuple[str, Any]]:
        """The events of this claim's run stored after `after_seq` (None: since the run was
        claimed), as (kind, data) in order: what a write whose answer was lost left behind."""
        with self.lifecycle.sessions() as session:
            rows = session.execute(
                select(Event.seq, Event.kind, Event.data)
                .where(Event.attempt_id == claim.attempt_id, Event.seq > (after_seq or 0))
                .order_by(Event.seq)
            ).all()
        if after_seq is None:  # after this run's own claim event, not an earlier run's
            starts = [
                n
                for n, (_, kind, data) in enumerate(rows)
                if kind == "attempt.state"
                and data.get("state") == "provisioning"
                and data.get("run") == claim.runs
            ]
            rows = rows[starts[-1] + 1 :] if starts else []
        return [(kind, data) for _, kind, data in rows]

    def release(self, claim: Claim, reason: str) -> bool:
        """Give a held attempt back to the queue (a run that stopped itself); False if not held."""
        with self.lifecycle.write() as (session, events):
            released = store.changed(
                session,
                update(Attempt)
                .where(Attempt.id == claim.attempt_id, Attempt.lease == claim.lease)
                .where(Attempt.state.in_(LIVE_ATTEMPT_STATES))
                .values(
                    state=AttemptState.QUEUED,
                    lease=None,
                    enqueued_at=self.lifecycle.lease_clock(session),
                ),
            )
            if released:
                self.lifecycle.event(
                    session,
                    events,
                    claim.task_id,
                    "attempt.state",
                    {"state": "queued", "number": claim.number, "reason": reason},
                    claim.attempt_id,
                )
        if released:
            self.lifecycle.enqueue(claim.attempt_id, first=True)
        return bool(released)

    def finish(
        self,
        claim: Claim,
        state: AttemptState,
        *,
        reason: str | None = None,
        outcome: AttemptOutcome | None = None,
    ) -> None:
        """Record how the attempt ended, then end the task if it was the last."""
        self.record_end(claim, state, reason=reason, outcome=outcome)
        self.lifecycle.finalize(claim.task_id)

    def record_end(
        self,
        claim: Claim,
        state: AttemptState,
        *,
        reason: str | None = None,
        outcome: AttemptOutcome | None = None,
    ) -> None:
        """Record how the attempt ended and its result, fenced by the lease (LeaseLost)."""
        with self.lifecycle.write() as (session, events):
            now = self.lifecycle.lease_clock(session)
            # Clearing the lease under its own guard is what makes this worker the one
            # that ends the attempt: the row stays locked until commit.
            if not self._end_held(session, claim):
                raise LeaseLost(f"attempt {claim.attempt_id} is no longer held by this worker")
            attempt = session.get_one(Attempt, claim.attempt_id)
            if outcome is not None:  # a failed attempt's partial work is kept too
                fields = {**outcome.__dict__, "partial": outcome.partial or state != "succeeded"}
                store.add_result(
                    session, attempt_id=attempt.id, diff_lines=outcome.diff.count("\n"), **fields
                )
            self._end_attempt(session, events, attempt, state, reason, now=now)

    def _end_attempt(
        self,
        session: Session,
        events: list[Event],
        attempt: Attempt,
        state: AttemptState,
        reason: str | None,
        *,
        now: datetime,
    ) -> None:
        attempt.state = state
        attempt.reason = reason
        attempt.lease = None
        attempt.finished_at = now
        if attempt.started_at is not None:
            attempt.duration_s = (now - attempt.started_at).total_seconds()
        self.lifecycle.event(
            session,
            events,
            attempt.task_id,
            "attempt.state",
            {"state": str(state), "number": attempt.number, "reason": reason},
            attempt.id,
        )
