"""Lists of tasks: filters that combine freely, and keyset pages in both directions."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, and_, exists, or_, select
from sqlalchemy.orm import Session

from orchestrator.models import Origin, Task


@dataclass(frozen=True)
class TaskFilter:
    """What a list keeps; an empty field keeps everything."""

    state: str | None = None
    origin: str | None = None
    repo: str | None = None
    text: str | None = None
    """Found anywhere in the instruction, ignoring case."""
    since: datetime | None = None
    """Created at or after this moment."""
    until: datetime | None = None
    """Created before this moment."""


@dataclass(frozen=True)
class TaskList:
    """One page, newest first, with the cursors of the pages on either side (None at an end)."""

    items: list[Task]
    next_cursor: str | None
    prev_cursor: str | None


CURSOR_REFUSED = "cursor: not one that a list of tasks gave out; start from the first page"


def encode_cursor(task: Task) -> str:
    raw = f"{task.created_at.isoformat()}|{task.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Raises ValueError when the cursor was not made by encode_cursor."""
    padded = cursor + "=" * (-len(cursor) % 4)
    try:
        created, _, task_id = base64.urlsafe_b64decode(padded.encode()).decode().partition("|")
        if task_id:
            return datetime.fromisoformat(created), task_id
    except ValueError:  # UnicodeDecodeError and binascii.Error are ValueErrors too
        pass
    raise ValueError(CURSOR_REFUSED)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _filtered(filters: TaskFilter) -> Select[Task]:
    query = select(Task)
    if filters.state:
        query = query.where(Task.state == filters.state)
    if filters.repo:
        query = query.where(Task.repo == filters.repo)
    if filters.origin:
        query = query.join(Task.origin).where(Origin.kind == filters.origin)
    if filters.text:
        query = query.where(Task.instruction.ilike(_like(filters.text), escape="\\"))
    if filters.since:
        query = query.where(Task.created_at >= filters.since)
    if filters.until:
        query = query.where(Task.created_at < filters.until)
    return query


def _older(cursor: str) -> ColumnElement[bool]:
    created, task_id = decode_cursor(cursor)
    return or_(Task.created_at < created, and_(Task.created_at == created, Task.id < task_id))


def _newer(cursor: str) -> ColumnElement[bool]:
    created, task_id = decode_cursor(cursor)
    return or_(Task.created_at > created, and_(Task.created_at == created, Task.id > task_id))


def list_tasks(
    session: Session,
    *,
    filters: TaskFilter | None = None,
    limit: int = 50,
    after: str | None = None,
    before: str | None = None,
) -> TaskList:
    """The page of tasks just older than `after`, just newer than `before`, or the newest.

    Raises ValueError for a cursor this module did not make.
    """
    base = _filtered(filters or TaskFilter())
    if before:
        query = base.where(_newer(before)).order_by(Task.created_at.asc(), Task.id.asc())
        rows = list(session.scalars(query.limit(limit + 1)).unique())
        items = list(reversed(rows[:limit]))
        more_newer, more_older = len(rows) > limit, True
    else:
        query = base.where(_older(after)) if after else base
        query = query.order_by(Task.created_at.desc(), Task.id.desc())
        rows = list(session.scalars(query.limit(limit + 1)).unique())
        items = rows[:limit]
        more_older = len(rows) > limit
        more_newer = bool(items) and after is not None and _any(session, base, items[0])
    if not items:
        return TaskList([], None, None)
    return TaskList(
        items,
        encode_cursor(items[-1]) if more_older else None,
        encode_cursor(items[0]) if more_newer else None,
    )


def _any(session: Session, base: Select[Task], first: Task) -> bool:
    """Whether a task the filters keep is newer than `first`."""
    newer = base.where(_newer(encode_cursor(first))).limit(1)
    return bool(session.scalar(select(exists(newer))))
