"""The task lifecycle: submit, cancel, end a task with its best attempt, report it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from typing import Any

import redis
from kombu.exceptions import OperationalError as QueueUnreachable
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from orchestrator import repo_urls, store
from orchestrator.choose import choose_result, task_ending
from orchestrator.claims import Claims, database_now
from orchestrator.config import OrchestratorSettings
from orchestrator.errors import IdempotencyConflict, InvalidSubmission
from orchestrator.events import EventBus, event_view
from orchestrator.models import Attempt, Event, Task, utcnow
from orchestrator.queue import AttemptQueue
from orchestrator.report_runs import run_report
from orchestrator.reporting import Reporters
from orchestrator.review import Reviewer, reviewed
from orchestrator.schemas import TaskSpec, TaskView
from orchestrator.states import (
    ACTIVE_TASK_STATES,
    AttemptState,
    TaskState,
)

log = logging.getLogger(__name__)


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
        lease_clock: Callable[[Session], datetime] = database_now,
        reviewer: Reviewer | None = None,
    ) -> None:
        self.sessions = sessions
        self.gate = gate or nullcontext()
        self.settings = settings
        self.queue = queue
        self.bus = bus
        self.clock = clock
        self.lease_clock = lease_clock
        """Now for leases and deadlines (heartbeats, claims, the reconciler): the database's."""
        self.claims = Claims(self)
        """The worker's side: claim an attempt, keep it, end it."""
        self.reviewer = reviewer
        """The model's pick between two verified attempts (AUTAN_CHOOSE_REVIEW); None: off."""

    @contextmanager
    def write(self) -> Iterator[tuple[Session, list[Event]]]:
        """A transaction whose events are published once it has committed."""
        events: list[Event] = []
        with self.gate, self.sessions.begin() as session:
            yield session, events
            session.flush()
            views = [event_view(e) for e in events]
        self.bus.publish(views)

    def event(
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

    def submit(
        self, spec: TaskSpec, *, created_by: str | None = None, lineage: store.Lineage | None = None
    ) -> tuple[TaskView, bool]:
        """Store a task and queue its attempts; returns the task and whether it is new."""
        if refused := repo_urls.refusal(spec.repo):
            raise InvalidSubmission(refused)
        attempts = spec.attempts or self.settings.default_attempts
        if attempts > self.settings.max_attempts:
            raise InvalidSubmission(
                f"attempts: at most {self.settings.max_attempts} per task, asked for {attempts}"
            )
        if spec.idempotency_key and (existing := self._same_key(spec, attempts)):
            return existing, False
        try:
            with self.write() as (session, events):
                # The database's clock: the schedule-to-start deadline runs from this stamp.
                now = self.lease_clock(session)
                task = store.create_task(
                    session, spec=spec, attempts=attempts, created_by=created_by, now=now,
                    lineage=lineage,
                )  # fmt: skip
                self.event(session, events, task.id, "task.created", {"attempts": attempts})
                view = TaskView.model_validate(task)
        except IntegrityError:
            # Another submission with the same key won the race: answer with its task.
            existing = self._same_key(spec, attempts)
            if existing is None:
                raise
            return existing, False
        for attempt in view.attempts:
            self.enqueue(attempt.id)
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

    def enqueue(self, attempt_id: str, *, first: bool = False) -> None:
        """Queue a job for the attempt; `first`: ahead of the backlog (one that ran before)."""
        try:
            self.queue.enqueue(attempt_id, first=first)
        except (redis.RedisError, QueueUnreachable, OSError) as exc:
            # The attempt is stored as queued: the reconciler queues it when Redis is back.
            log.warning("could not queue attempt %s now (%s); the reconciler will", attempt_id, exc)

    def get(self, task_id: str) -> TaskView:
        """The task, with the tasks that run it again or continue it."""
        with self.sessions() as session:
            view = TaskView.model_validate(store.get_task(session, task_id=task_id))
            retried, continued = store.later_tasks(session, task_id=task_id)
        return view.model_copy(update={"retried_as": retried, "continued_as": continued})

    def cancel(self, task_id: str, *, by: str = "a user") -> TaskView:
        """Cancel a task that has not ended; running attempts stop at their next heartbeat."""
        with self.write() as (session, events):
            now = self.lease_clock(session)
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
                self.event(session, events, task.id, "task.finished", self._ending(task))
            view = TaskView.model_validate(task)
        if events:
            self.after_end(task_id)
        return view

    def finalize(self, task_id: str) -> bool:
        """End the task once all its attempts have ended, keeping the best result."""
        # The review's model call happens here, before and outside the ending transaction;
        # it is recorded, so a retried end reuses it.
        picked = reviewed(self, task_id) if self.reviewer is not None else None
        with self.write() as (session, events):
            # A session of its own: this reads the row as stored, no refresh needed.
            task = store.get_task(session, task_id=task_id)
            if task.state not in ACTIVE_TASK_STATES:
                return False
            attempts = list(session.scalars(select(Attempt).where(Attempt.task_id == task_id)))
            if any(not AttemptState(a.state).terminal for a in attempts):
                return False
            results = {a.result.id: a.result for a in attempts if a.result is not None}
            best = results.get(picked) if picked is not None else None
            best = best or choose_result(attempts)
            state, reason = task_ending(attempts, best)
            ended = store.changed(
                session,
                update(Task)
                .where(Task.id == task_id, Task.state.in_(ACTIVE_TASK_STATES))
                .values(
                    state=state,
                    reason=reason,
                    result_id=best.id if best else None,
                    # The database's clock: the reconciler's report deadline runs from it.
                    finished_at=self.lease_clock(session),
                ),
            )
            if not ended:
                return False
            # The UPDATE set these on `task` too (the ORM's synchronize_session).
            self.event(session, events, task_id, "task.finished", self._ending(task))
        self.after_end(task_id)
        return True

    @staticmethod
    def _ending(task: Task) -> dict[str, Any]:
        return {"state": task.state, "reason": task.reason, "result_id": task.result_id}

    def after_end(self, task_id: str) -> None:
        try:
            self.queue.enqueue_report(task_id)
        except (redis.RedisError, QueueUnreachable, OSError) as exc:
            log.warning("could not queue the report of %s (%s); the reconciler will", task_id, exc)

    def report(self, task_id: str, reporters: Reporters) -> str:
        """One try of the report of an ended task (see `report_runs`); what happened."""
        return run_report(self, task_id, reporters)
