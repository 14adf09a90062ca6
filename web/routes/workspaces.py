"""The Workspaces page: each synced checkout the person reaches, its head version, its tasks and
open conflicts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from orchestrator import workspace_store as store
from orchestrator.access import Caller
from orchestrator.models import WorkspaceConflict
from orchestrator.services import Services
from web.deps import ServicesDep, ViewerDep
from web.templating import render

router = APIRouter(include_in_schema=False)


@dataclass
class WorkspaceRow:
    id: str
    name: str
    root: str
    key: str
    head: int
    files: int
    bytes: int
    changed_at: datetime
    running: list[tuple[str, str]] = field(default_factory=list)
    """Tasks started from it that have not ended: (id, title)."""
    conflicts: list[WorkspaceConflict] = field(default_factory=list)


def _rows(services: Services, caller: Caller) -> list[WorkspaceRow]:
    with services.sessions() as session:
        conflicts: dict[str, list[WorkspaceConflict]] = {}
        for conflict in store.open_conflicts(session):
            conflicts.setdefault(conflict.workspace_id, []).append(conflict)
        rows = []
        for workspace in store.list_all(session, caller=caller):
            head = store.version(session, workspace_id=workspace.id, number=workspace.head)
            running = [
                (t.id, t.instruction.splitlines()[0][:120] if t.instruction else "")
                for t in store.tasks_of(session, workspace_id=workspace.id, limit=20)
                if t.finished_at is None
            ]
            row = WorkspaceRow(
                id=workspace.id, name=workspace.name, root=workspace.root, key=workspace.key,
                head=workspace.head, files=head.files if head else 0,
                bytes=head.bytes if head else 0, changed_at=workspace.updated_at,
                running=running, conflicts=conflicts.get(workspace.id, []),
            )  # fmt: skip
            rows.append(row)
        return rows


@router.get("/workspaces")
async def workspaces_page(request: Request, services: ServicesDep, viewer: ViewerDep) -> Response:
    rows = await run_in_threadpool(_rows, services, viewer.caller)
    return render(request, "workspaces.html", viewer=viewer, workspaces=rows)
