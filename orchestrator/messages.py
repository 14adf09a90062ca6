"""Messages from a person to a running task: stored as events, taken by the attempt's inbox."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session, sessionmaker

from agent.base import Note
from orchestrator import store
from orchestrator.errors import TaskEnded, TaskNotFound
from orchestrator.events import event_view
from orchestrator.lifecycle import Lifecycle
from orchestrator.models import Event
from orchestrator.outbox import STORE_DOWN
from orchestrator.schemas import EventView
from orchestrator.states import ACTIVE_TASK_STATES, AttemptState

log = logging.getLogger(__name__)

KIND = "person.message"
DELIVERED = "person.delivered"


def say(
    lifecycle: Lifecycle,
    task_id: str,
    *,
    text: str,
    by: str,
    attempt: int | None = None,
    key: str | None = None,
) -> EventView:
    """Store a message for the task's live attempts (or the one numbered `attempt`); raises
    TaskNotFound for no such task or attempt, TaskEnded when it (or that attempt) has ended.
    A `key` (a webhook delivery's) stores the message once: said again, the first is returned."""
    with lifecycle.write() as (session, events):
        task = store.get_task(session, task_id=task_id)
        if key is not None and (earlier := _keyed(session, task_id, key)) is not None:
            return event_view(earlier)
        if task.state not in ACTIVE_TASK_STATES:
            raise TaskEnded(
                f"task {task_id} has ended ({task.state}): no agent is there to read it"
            )
        attempt_id = None
        if attempt is not None:
            chosen = next((a for a in task.attempts if a.number == attempt), None)
            if chosen is None:
                raise TaskNotFound(f"task {task_id} has no attempt {attempt}")
            if AttemptState(chosen.state).terminal:
                raise TaskEnded(f"attempt {attempt} of task {task_id} has ended ({chosen.state})")
            attempt_id = chosen.id
        data: dict[str, object] = {"text": text, "by": by, "attempt": attempt}
        if key is not None:
            data["key"] = key
        lifecycle.event(session, events, task_id, KIND, data, attempt_id=attempt_id)
        session.flush()
        return event_view(events[-1])


def _keyed(session: Session, task_id: str, key: str) -> Event | None:
    seq = 0
    while found := store.events_after(session, task_id=task_id, seq=seq, kind=KIND):
        if hit := next((e for e in found if e.data.get("key") == key), None):
            return hit
        seq = found[-1].seq
    return None


class Inbox:
    """The messages for one attempt not yet taken, read from the store when asked (before each
    model call). A store that cannot be reached yields none now; they come on a later call."""

    def __init__(self, sessions: sessionmaker[Session], task_id: str, attempt_id: str) -> None:
        self._sessions = sessions
        self._task_id = task_id
        self._attempt_id = attempt_id
        self._seen = 0

    def __call__(self) -> list[Note]:
        try:
            with self._sessions() as session:
                found = store.events_after(
                    session, task_id=self._task_id, seq=self._seen, kind=KIND
                )
        except STORE_DOWN as exc:
            log.warning("could not read messages for attempt %s: %s", self._attempt_id, exc)
            return []
        if found:
            self._seen = found[-1].seq
        return [
            Note(seq=e.seq, text=str(e.data.get("text", "")), by=str(e.data.get("by", "")))
            for e in found
            if e.attempt_id in (None, self._attempt_id)
        ]
