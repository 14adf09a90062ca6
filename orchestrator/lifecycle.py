"""The task lifecycle: submit, claim, heartbeat, finish, choose the best attempt, cancel."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from orchestrator import store
from orchestrator.base import AttemptOutcome
from orchestrator.choose import choose_result, task_ending
from orchestrator.config import OrchestratorSettings
from orchestrator.errors import IdempotencyConflict, InvalidSubmission, LeaseLost
from orchestrator.events import EventBus, event_view
from orchestrator.models import Attempt, Event, Task, new_id, utcnow
from orchestrator.queue import AttemptQueue
from orchestrator.reporting import Reporters
from orchestrator.schemas import EventView, TaskSpec, TaskView
from orchestrator.states import (
    ACTIVE_TASK_STATES,
    LIVE_ATTEMPT_STATES,
    AttemptState,
    TaskState,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    """A worker's hold on one run of an attempt; every later write checks the lease."""

    attempt_id: str
    task_id: str
    number: int
    lease: str
    runs: int
    task: TaskView


class Lifecycle:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        settings: OrchestratorSettings,
        queue: AttemptQueue,
        bus: EventBus,
        gate: AbstractContextManager[Any] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.gate = gate or nullcontext()
        self.settings = settings
        self.queue = queue
        self.bus = bus
        self.clock = clock

    @contextmanager
    def _write(self) -> Iterator[tuple[Session, list[Event]]]:
        """A transaction whose events are published once it has committed."""
        events: list[Event] = []
        with self.gate, self.sessions.begin() as session:
            yield session, events
            session.flush()
            views = [event_view(e) for e in events]
        self.bus.publish(views)

    def _event(
        self,
        session: Session,
        events: list[Event],
        task_id: str,
        kind: str,
        data: dict[str, Any],
        attempt_id: str | None = None,
    ) -> None:
        events.append(
            store.add_event(
                session,
                task_id=task_id,
                kind=kind,
                data=data,
                now=self.clock(),
                attempt_id=attempt_id,
            )
        )

    # -- the requesting side ---------------------------------------------------------

    def submit(self, spec: TaskSpec, *, created_by: str | None = None) -> tuple[TaskView, bool]:
        """Store a task and queue its attempts; returns the task and whether it is new."""
        attempts = spec.attempts or self.settings.default_attempts
        if attempts > self.settings.max_attempts:
            raise InvalidSubmission(
                f"attempts: at most {self.settings.max_attempts} per task, asked for {attempts}"
            )
        if spec.idempotency_key and (existing := self._same_key(spec, attempts)):
            return existing, False
        try:
            with self._write() as (session, events):
                task = store.create_task(
                    session, spec=spec, attempts=attempts, created_by=created_by, now=self.clock()
                )
                self._event(session, events, task.id, "task.created", {"attempts": attempts})
                view = TaskView.model_validate(task)
        except IntegrityError:
            # Another submission with the same key won the race: answer with its task.
            existing = self._same_key(spec, attempts)
            if existing is None:
                raise
            return existing, False
        for attempt in view.attempts:
            self._enqueue(attempt.id)
        return view, True

    def _same_key(self, spec: TaskSpec, attempts: int) -> TaskView | None:
        assert spec.idempotency_key
        with self.sessions() as session:
            task = store.find_task_by_key(session, idempotency_key=spec.idempotency_key)
            if task is None:
                return None
            asked = (spec.repo, spec.ref, spec.instruction, attempts)
            if (task.repo, task.ref, task.instruction, task.attempts_requested) != asked:
                raise IdempotencyConflict(
                    f"idempotency_key {spec.idempotency_key!r} was used for task {task.id} "
                    "with a different repo, ref, instruction or attempts; use a new key"
                )
            return TaskView.model_validate(task)

    def _enqueue(self, attempt_id: str) -> None:
        try:
            self.queue.enqueue(attempt_id)
        except (redis.RedisError, OSError) as exc:
            # The attempt is stored as queued: the reconciler queues it when Redis is back.
            log.warning("could not queue attempt %s now (%s); the reconciler will", attempt_id, exc)

    def get(self, task_id: str) -> TaskView:
        with self.sessions() as session:
            return TaskView.model_validate(store.get_task(session, task_id=task_id))

    def cancel(self, task_id: str, *, by: str = "a user") -> TaskView:
        """Cancel a task that has not ended; running attempts stop at their next heartbeat."""
        now = self.clock()
        with self._write() as (session, events):
            task = store.get_task(session, task_id=task_id)
            if task.state in ACTIVE_TASK_STATES:
                task.state = TaskState.CANCELLED
                task.reason = f"cancelled by {by}"
                task.cancel_requested = True
                task.finished_at = now
                for attempt in task.attempts:
                    if attempt.state == AttemptState.QUEUED:
                        attempt.state = AttemptState.CANCELLED
                        attempt.reason = task.reason
                        attempt.finished_at = now
                self._event(session, events, task.id, "task.finished", self._ending(task))
            view = TaskView.model_validate(task)
        if events:
            self._after_end(task_id)
        return view

    # -- the worker side -------------------------------------------------------------

    def claim(self, attempt_id: str, *, worker: str) -> Claim | None:
        """Take an attempt to run it, or None when it is not there to take.

        Only a queued attempt, or a live one whose worker has fallen silent, can be
        taken: so an attempt never runs twice at once.
        """
        now = self.clock()
        stale = now - timedelta(seconds=self.settings.heartbeat_timeout_s)
        lease = new_id()
        with self._write() as (session, events):
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
            if task.cancel_requested or attempt.runs > self.settings.max_runs_per_attempt:
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
                self._event(
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
            self.finalize(task.id)
            return None
        try:
            self.queue.taken(attempt_id)
        except (redis.RedisError, OSError) as exc:
            log.warning("could not clear the job marker of %s: %s", attempt_id, exc)
        return claim

    def heartbeat(self, claim: Claim) -> bool:
        """Prove the worker alive; returns True when the task was cancelled."""
        with self._write() as (session, _):
            beat = store.changed(
                session,
                update(Attempt)
                .where(Attempt.id == claim.attempt_id, Attempt.lease == claim.lease)
                .where(Attempt.state.in_(LIVE_ATTEMPT_STATES))
                .values(heartbeat_at=self.clock()),
            )
            if not beat:
                raise LeaseLost(f"attempt {claim.attempt_id} was taken over by another worker")
            cancelled = session.scalar(
                select(Task.cancel_requested).where(Task.id == claim.task_id)
            )
        return bool(cancelled)

    def set_phase(self, claim: Claim, state: AttemptState) -> None:
        with self._write() as (session, events):
            changed = store.changed(
                session,
                update(Attempt)
                .where(Attempt.id == claim.attempt_id, Attempt.lease == claim.lease)
                .where(Attempt.state.in_(LIVE_ATTEMPT_STATES))
                .values(state=state),
            )
            if not changed:
                raise LeaseLost(f"attempt {claim.attempt_id} is no longer held by this worker")
            self._event(
                session,
                events,
                claim.task_id,
                "attempt.state",
                {"state": str(state), "number": claim.number},
                claim.attempt_id,
            )

    def emit(self, claim: Claim, kind: str, data: dict[str, Any]) -> EventView:
        with self._write() as (session, events):
            self._event(session, events, claim.task_id, kind, data, claim.attempt_id)
            return event_view(events[0])

    def finish(
        self,
        claim: Claim,
        state: AttemptState,
        *,
        reason: str | None = None,
        outcome: AttemptOutcome | None = None,
    ) -> None:
        """Record how the attempt ended, then end the task if it was the last."""
        now = self.clock()
        with self._write() as (session, events):
            # Clearing the lease under its own guard is what makes this worker the one
            # that ends the attempt: the row stays locked until commit.
            held = store.changed(
                session,
                update(Attempt)
                .where(Attempt.id == claim.attempt_id, Attempt.lease == claim.lease)
                .where(Attempt.state.in_(LIVE_ATTEMPT_STATES))
                .values(lease=None),
            )
            if not held:
                raise LeaseLost(f"attempt {claim.attempt_id} is no longer held by this worker")
            attempt = session.get_one(Attempt, claim.attempt_id)
            if outcome is not None and state == AttemptState.SUCCEEDED:
                store.add_result(
                    session,
                    attempt_id=attempt.id,
                    diff_lines=outcome.diff.count("\n"),
                    **outcome.__dict__,
                )
            self._end_attempt(session, events, attempt, state, reason, now=now)
        self.finalize(claim.task_id)

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
        self._event(
            session,
            events,
            attempt.task_id,
            "attempt.state",
            {"state": str(state), "number": attempt.number, "reason": reason},
            attempt.id,
        )

    def finalize(self, task_id: str) -> bool:
        """End the task once all its attempts have ended, keeping the best result."""
        with self._write() as (session, events):
            task = store.get_task(session, task_id=task_id)
            session.refresh(task)
            if task.state not in ACTIVE_TASK_STATES:
                return False
            attempts = list(session.scalars(select(Attempt).where(Attempt.task_id == task_id)))
            if any(not AttemptState(a.state).terminal for a in attempts):
                return False
            state, reason = task_ending(attempts)
            best = choose_result(attempts)
            ended = store.changed(
                session,
                update(Task)
                .where(Task.id == task_id, Task.state.in_(ACTIVE_TASK_STATES))
                .values(
                    state=state,
                    reason=reason,
                    result_id=best.id if best else None,
                    finished_at=self.clock(),
                ),
            )
            if not ended:
                return False
            session.refresh(task)
            self._event(session, events, task_id, "task.finished", self._ending(task))
        self._after_end(task_id)
        return True

    @staticmethod
    def _ending(task: Task) -> dict[str, Any]:
        return {"state": task.state, "reason": task.reason, "result_id": task.result_id}

    def _after_end(self, task_id: str) -> None:
        try:
            self.queue.enqueue_report(task_id)
        except (redis.RedisError, OSError) as exc:
            log.warning("could not queue the report of %s (%s); the reconciler will", task_id, exc)

    def report(self, task_id: str, reporters: Reporters) -> str:
        """Answer the origin of an ended task, once; a crash between the two steps repeats
        the call, which is why reporters key what they post by the task."""
        with self.sessions() as session:
            task = store.get_task(session, task_id=task_id)
            if task.reported_at is not None or task.state in ACTIVE_TASK_STATES:
                return "nothing to report"
            view = TaskView.model_validate(task)
        reporter = reporters.get(view.origin.kind)
        if reporter is not None:
            reporter.report(view)
        with self._write() as (session, events):
            marked = store.changed(
                session,
                update(Task)
                .where(Task.id == task_id, Task.reported_at.is_(None))
                .values(reported_at=self.clock()),
            )
            if marked:
                self._event(
                    session,
                    events,
                    task_id,
                    "task.reported",
                    {"origin": view.origin.kind, "reporter": reporter is not None},
                )
        return "reported" if reporter else f"no reporter for origin {view.origin.kind}"
