"""The new-task form's workspaces: those the person reaches, and the snapshot one starts from."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import HTTPException, Request

from orchestrator import workspace_store
from orchestrator.access import Caller
from orchestrator.services import Services
from sync.snapshots import repo_of
from web.deps import reached


@dataclass(frozen=True)
class Choice:
    id: str
    name: str
    head: int


def choices(services: Services, caller: Caller) -> list[Choice]:
    """The workspaces the caller reaches that have a version to start from."""
    with services.sessions() as session:
        return [
            Choice(w.id, w.name, w.head)
            for w in workspace_store.list_all(session, caller=caller)
            if w.head > 0
        ]


def head_of(
    request: Request, services: Services, caller: Caller, workspace_id: str
) -> tuple[str, str]:
    """The task `repo` and `ref` of the workspace's head version, its snapshot written once;
    404 alike for no such workspace and another's (audited), and for one with no version."""
    with services.sessions() as session:
        workspace = reached(request, session, caller, workspace_id)
        if workspace.head == 0:
            raise HTTPException(404, f"workspace {workspace.name!r} has no version yet")
        row = workspace_store.snapshot(
            session, workspace_id=workspace_id, number=workspace.head, blobs=services.storage
        )
        session.commit()
        return repo_of(workspace_id, row.number), str(row.manifest_hash)
