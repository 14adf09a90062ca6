"""Reads and writes of tasks, attempts, results and events, in the caller's transaction."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, Executable, func, select, update
from sqlalchemy.orm import Session

from orchestrator.errors import TaskNotFound
from orchestrator.models import Attempt, Event, Origin, Result, Task
from orchestrator.schemas import TaskSpec
from orchestrator.states import AttemptState, TaskState


@dataclass(frozen=True)
class Lineage:
    """What a new task comes from: a retry's original, or a continuation's task, attempt,
    pinned commit, starting patch and conversation."""

    retry_of: str | None = None
    continued_from_task: str | None = None
    continued_from_attempt: int | None = None
    commit: str | None = None
    start_patch: str | None = None
    conversation: str | None = None


def create_task(
    session: Session,
    *,
    spec: TaskSpec,
    attempts: int,
    created_by: str | None,
    now: datetime,
    lineage: Lineage | None = None,
) -> Task:
    origin = Origin(
        kind=spec.origin.kind, external_id=spec.origin.external_id, data=spec.origin.data
    )
    task = Task(
        repo=spec.repo,
        ref=spec.ref,
        instruction=spec.instruction,
        attempts_requested=attempts,
        state=TaskState.QUEUED,
        idempotency_key=spec.idempotency_key,
        origin=origin,
        created_by=created_by,
        created_at=now,
        cancel_requested=False,
        event_seq=0,
        **asdict(lineage or Lineage()),
    )
    task.attempts = [
        # result=None marks the relationship loaded: no query for what cannot exist yet.
        Attempt(number=n, state=AttemptState.QUEUED, runs=0, enqueued_at=now, result=None)
        for n in range(1, attempts + 1)
    ]
    session.add(task)
    session.flush()
    return task


def changed(session: Session, statement: Executable) -> int:
    """Run a guarded UPDATE and say how many rows it changed (0: the guard held)."""
    result: CursorResult[Any] = session.execute(statement)  # type: ignore[assignment]
    return result.rowcount


def get_task(session: Session, *, task_id: str) -> Task:
    task = session.get(Task, task_id)
    if task is None:
        raise TaskNotFound(f"no task with id {task_id!r}")
    return task


def later_tasks(session: Session, *, task_id: str) -> tuple[list[str], list[str]]:
    """The tasks that run `task_id` again and those that continue it, oldest first."""
    rows = session.execute(
        select(Task.id, Task.retry_of)
        .where((Task.retry_of == task_id) | (Task.continued_from_task == task_id))
        .order_by(Task.created_at, Task.id)
    )
    retried: list[str] = []
    continued: list[str] = []
    for later_id, retry_of in rows:
        (retried if retry_of == task_id else continued).append(later_id)
    return retried, continued


def find_task_by_key(session: Session, *, idempotency_key: str) -> Task | None:
    return session.scalars(select(Task).where(Task.idempotency_key == idempotency_key)).first()


def find_tasks_by_origin(session: Session, *, kind: str, external_id: str) -> list[Task]:
    """The tasks from this origin (a Slack thread, a GitHub issue or pull request), newest first."""
    query = select(Task).join(Origin, Origin.id == Task.origin_id)
    query = query.where(Origin.kind == kind, Origin.external_id == external_id)
    return list(session.scalars(query.order_by(Task.created_at.desc())))


def add_event(
    session: Session,
    *,
    task_id: str,
    kind: str,
    data: dict[str, Any],
    now: datetime,
    attempt_id: str | None = None,
) -> Event:
    """Append an event in the caller's transaction.

    The task row's counter is bumped with UPDATE ... RETURNING, which locks the row until
    commit: events of one task therefore commit in `seq` order and readers that resume
    from a seq never skip one that commits late.
    """
    seq = session.execute(
        update(Task)
        .where(Task.id == task_id)
        .values(event_seq=Task.event_seq + 1)
        .returning(Task.event_seq)
    ).scalar_one()
    event = Event(
        task_id=task_id, seq=seq, attempt_id=attempt_id, kind=kind, data=data, created_at=now
    )
    session.add(event)
    session.flush()
    return event


def events_after(
    session: Session, *, task_id: str, seq: int, limit: int = 500, kind: str | None = None
) -> list[Event]:
    query = select(Event).where(Event.task_id == task_id, Event.seq > seq)
    if kind is not None:
        query = query.where(Event.kind == kind)
    return list(session.scalars(query.order_by(Event.seq).limit(limit)))


def add_result(session: Session, *, attempt_id: str, **fields: Any) -> Result:
    result = Result(attempt_id=attempt_id, **fields)
    session.add(result)
    session.flush()
    return result


def count_tasks_by_state(session: Session) -> dict[str, int]:
    rows = session.execute(select(Task.state, func.count()).group_by(Task.state))
    return {state: count for state, count in rows}
