"""The audit log over the API (admins): who did what, when, from where, and the outcome."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict

from orchestrator import audit
from web.deps import Admin, SessionDep

router = APIRouter(prefix="/api/audit", tags=["audit"])


class AuditView(BaseModel):
    """One entry of the audit log."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    token: str | None
    action: str
    target: str | None
    address: str | None
    outcome: str
    status: int
    detail: str | None


class AuditPage(BaseModel):
    items: list[AuditView]
    next_cursor: str | None


@router.get("", response_model=AuditPage)
def list_entries(
    session: SessionDep,
    _: Admin,
    actor: Annotated[str | None, Query(max_length=255)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    target: Annotated[str | None, Query(max_length=255)] = None,
    outcome: Literal["ok", "refused", "rejected", "failed"] | None = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> AuditPage:
    """Entries newest first; every filter given must hold."""
    try:
        found, next_cursor = audit.entries(
            session, actor=actor, action=action, target=target, outcome=outcome,
            since=since, until=until, limit=limit, cursor=cursor,
        )  # fmt: skip
    except ValueError as exc:
        raise HTTPException(422, "cursor: not a cursor this API gave out") from exc
    return AuditPage(items=[AuditView.model_validate(e) for e in found], next_cursor=next_cursor)
