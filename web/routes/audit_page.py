"""The dashboard's audit page (admins): the newest entries of the audit log, filtered."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response

from orchestrator import access, audit
from web.deps import SessionDep, ViewerDep, refuse_scope
from web.templating import render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 100


@router.get("/audit")
def audit_page(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    actor: Annotated[str | None, Query(max_length=255)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    outcome: Literal["ok", "refused", "rejected", "failed", ""] = "",
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    if not viewer.caller.is_admin:
        raise refuse_scope(viewer.caller, access.ADMIN)
    filters = {"actor": actor or "", "action": action or "", "outcome": outcome}
    try:
        entries, next_cursor = audit.entries(
            session, actor=actor or None, action=action or None, outcome=outcome or None,
            limit=PAGE_SIZE, cursor=cursor,
        )  # fmt: skip
    except ValueError as exc:
        raise HTTPException(422, "cursor: not one this page gave out") from exc
    return render(
        request,
        "audit.html",
        viewer=viewer,
        entries=entries,
        filters=filters,
        outcomes=audit.OUTCOMES,
        next_cursor=next_cursor,
    )
