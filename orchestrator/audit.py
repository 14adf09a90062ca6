"""The audit log: append an entry, read entries with filters, and drop those past retention."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from orchestrator.models import AuditEntry

OUTCOMES = ("ok", "refused", "rejected", "failed")


def outcome_of(status: int) -> str:
    """What an HTTP status says happened: ok, refused (401, 403), rejected, failed (5xx)."""
    if status < 400:
        return "ok"
    if status in (401, 403):
        return "refused"
    return "rejected" if status < 500 else "failed"


@dataclass(frozen=True)
class Entry:
    """One action to record: who, what, to what, from where, and how it ended."""

    actor: str
    action: str
    status: int
    token: str | None = None
    target: str | None = None
    address: str | None = None
    detail: str | None = None
    outcome: str | None = None
    """What happened, where the status alone would say otherwise (a refusal answered 404)."""


def append(session: Session, entry: Entry, *, now: datetime) -> None:
    """Append an entry; nothing here ever updates or deletes one."""
    session.add(
        AuditEntry(
            at=now, actor=storable(entry.actor, 255) or "?", token=storable(entry.token, 255),
            action=storable(entry.action, 64) or "?", target=storable(entry.target, 255),
            address=storable(entry.address, 64), outcome=entry.outcome or outcome_of(entry.status),
            status=entry.status, detail=storable(entry.detail, 2000),
        )
    )  # fmt: skip


def storable(text: str | None, limit: int) -> str | None:
    """Text from a request as either store keeps it: a lone surrogate (which UTF-8 cannot
    encode) and a NUL (which PostgreSQL refuses) written as escapes, cut to `limit`."""
    if not text:
        return None
    safe = text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
    return safe[:limit]


def _cursor(entry_id: int) -> str:
    return base64.urlsafe_b64encode(str(entry_id).encode()).decode()


def _after(cursor: str) -> int:
    """The id a cursor names; ValueError for one this module did not make."""
    return int(base64.urlsafe_b64decode(cursor.encode()).decode())


def entries(
    session: Session,
    *,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> tuple[list[AuditEntry], str | None]:
    """Entries newest first, filtered, a page at a time; and the next page's cursor."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit + 1)
    for column, value in (
        (AuditEntry.actor, actor),
        (AuditEntry.action, action),
        (AuditEntry.target, target),
        (AuditEntry.outcome, outcome),
    ):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    if cursor is not None:
        query = query.where(AuditEntry.id < _after(cursor))
    found = list(session.scalars(query))
    more = len(found) > limit
    found = found[:limit]
    return found, _cursor(found[-1].id) if more else None


def prune(session: Session, *, before: datetime) -> int:
    """The retention setting's deletion, the only one: entries older than `before`."""
    result = session.execute(delete(AuditEntry).where(AuditEntry.at < before))
    return int(getattr(result, "rowcount", 0) or 0)
