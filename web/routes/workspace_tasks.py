"""The way back to the checkout: a workspace's tasks, the agent's edits (long-poll), blobs to
download, and the conflicts the daemon reports."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from redis.exceptions import RedisError

from orchestrator import store as task_store
from orchestrator import workspace_store as store
from orchestrator.errors import TaskNotFound
from orchestrator.events import stream_key
from orchestrator.live_link import CHANGED
from orchestrator.models import Task, utcnow
from orchestrator.schemas import TaskSummary
from orchestrator.services import Services
from sync import snapshots
from sync.base import Storage
from sync.errors import ObjectMissing, SyncError
from sync.hashing import is_digest
from sync.schemas import (
    AgentChange,
    ConflictReport,
    ConflictView,
    TaskChanges,
    WorkspaceTask,
)
from web.deps import (
    Admin,
    ServicesDep,
    SessionDep,
    WebSettingsDep,
    WorkspaceOwner,
    stream_slot,
)
from web.routes.events import wait_stream
from web.routes.workspaces_api import BlobsDep, _http

router = APIRouter(prefix="/api", tags=["workspaces"])

MAX_WAIT_S = 60.0


def _stream(blobs: Storage, digest: str) -> StreamingResponse:
    if not is_digest(digest):
        raise HTTPException(422, f"{digest!r} is not a blob hash (64 lowercase hex digits)")
    try:
        chunks = blobs.open(digest)
    except ObjectMissing:
        raise HTTPException(404, f"no blob {digest}") from None
    return StreamingResponse(chunks, media_type="application/octet-stream")


@router.get("/blobs/{digest}")
def download_blob(digest: str, blobs: BlobsDep, _: Admin) -> StreamingResponse:
    """Any blob's content, streamed from the store: an admin's, as blobs are shared between
    workspaces (others fetch a task's through the task, below)."""
    return _stream(blobs, digest)


@router.get("/workspaces/{workspace_id}/tasks/{task_id}/blobs/{digest}")
def task_blob(
    workspace_id: str, task_id: str, digest: str, session: SessionDep, blobs: BlobsDep,
    _: WorkspaceOwner,
) -> StreamingResponse:  # fmt: skip
    """A blob of the workspace's files, or one the task's agent wrote (its `sync.changed`
    events name it), streamed: the daemon brings the agent's edits home this way."""
    _task_of(session, workspace_id, task_id)
    if not store.holds(session, workspace_id=workspace_id, digest=digest) and not _names(
        session, task_id, digest
    ):
        raise HTTPException(
            404, f"neither workspace {workspace_id} nor task {task_id} names blob {digest}"
        )
    return _stream(blobs, digest)


def _names(session: Any, task_id: str, digest: str) -> bool:
    """Whether one of the task's `sync.changed` events names blob `digest`."""
    seq = 0
    while events := task_store.events_after(session, task_id=task_id, seq=seq, kind=CHANGED):
        for event in events:
            rows = [*event.data.get("changes", []), *event.data.get("bases", {}).values()]
            if any(row and row.get("hash") == digest for row in rows):
                return True
        seq = events[-1].seq
    return False


def _task_of(session: Any, workspace_id: str, task_id: str) -> Task:
    """The task, when it started from the workspace; 404 otherwise."""
    try:
        task = task_store.get_task(session, task_id=task_id)
    except TaskNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    if not task.repo.startswith(f"{snapshots.PREFIX}{workspace_id}@"):
        raise HTTPException(404, f"task {task_id} did not start from workspace {workspace_id}")
    return task


@router.get("/workspaces/{workspace_id}/tasks", response_model=list[WorkspaceTask])
def workspace_tasks(
    workspace_id: str, session: SessionDep, _: WorkspaceOwner
) -> list[WorkspaceTask]:
    """The newest tasks started from the workspace."""
    try:
        store.get(session, workspace_id=workspace_id)
    except SyncError as exc:
        raise _http(exc) from exc
    found = []
    for task in store.tasks_of(session, workspace_id=workspace_id):
        summary = TaskSummary.of(task)
        found.append(
            WorkspaceTask(
                id=task.id,
                state=summary.state.value,
                title=summary.title,
                version=snapshots.workspace_of(task.repo)[1],
                finished=task.finished_at is not None,
                created_at=task.created_at,
            )
        )
    return found


def _changes(services: Services, workspace_id: str, task_id: str, after: int) -> TaskChanges:
    with services.sessions() as session:
        task = _task_of(session, workspace_id, task_id)
        finished = task.finished_at is not None
        events = task_store.events_after(session, task_id=task_id, seq=after, kind=CHANGED)
        changes = [_agent_change(e.seq, e.data) for e in events]
        chosen = None
        if finished and task.result is not None:
            chosen = next(a.number for a in task.attempts if a.id == task.result.attempt_id)
        last = changes[-1].seq if changes else after
        return TaskChanges(
            task_id=task_id, version=snapshots.workspace_of(task.repo)[1], finished=finished,
            chosen=chosen, changes=changes, last=last,
        )  # fmt: skip


def _agent_change(seq: int, data: dict[str, Any]) -> AgentChange:
    try:
        return AgentChange.model_validate({**data, "seq": seq})
    except ValidationError as exc:  # written by our own workers: say so loudly
        raise HTTPException(500, f"event {seq} is not a valid sync.changed event: {exc}") from exc


DISCONNECT_CHECK_S = 1.0
"""How often a long-poll looks whether its client is still there."""


@router.get("/workspaces/{workspace_id}/tasks/{task_id}/changes", response_model=TaskChanges)
async def task_changes(
    workspace_id: str,
    task_id: str,
    request: Request,
    services: ServicesDep,
    web_settings: WebSettingsDep,
    _: WorkspaceOwner,
    after: Annotated[int, Query(ge=0, description="Send changes after this seq")] = 0,
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT_S, description="Seconds to wait")] = 0,
) -> TaskChanges:
    """The agent's edits after `after`; with `wait`, held until there are some (long-poll)."""
    live = request.app.state.live_redis
    key = stream_key(task_id)
    try:
        newest = await live.xrevrange(key, count=1)
        cursor: bytes | str | None = newest[0][0] if newest else b"0-0"
    except RedisError:
        cursor = None
    deadline = time.monotonic() + wait
    slot = stream_slot(request, web_settings, "long-poll") if wait > 0 else None
    try:
        while True:
            found = await run_in_threadpool(_changes, services, workspace_id, task_id, after)
            left = deadline - time.monotonic()
            if found.changes or found.finished or left <= 0 or await request.is_disconnected():
                return found  # a client gone (a daemon stopped) frees its slot within a second
            _moved, cursor = await wait_stream(
                live, key, cursor, min(left, web_settings.sse_keepalive_s, DISCONNECT_CHECK_S)
            )
    finally:
        if slot is not None:
            slot.give_back()


@router.post("/workspaces/{workspace_id}/conflicts", status_code=204)
def report_conflicts(
    workspace_id: str, body: ConflictReport, session: SessionDep, _: WorkspaceOwner
) -> None:
    """The daemon's open conflicts of a task from the workspace (404 for another task); the
    ones it no longer lists are resolved."""
    _task_of(session, workspace_id, body.task_id)
    store.set_conflicts(
        session, workspace_id=workspace_id, task_id=body.task_id, side="local",
        conflicts=[(c.path, c.copy_path) for c in body.conflicts], now=utcnow(),
    )  # fmt: skip
    session.commit()


@router.get("/workspaces/{workspace_id}/conflicts", response_model=list[ConflictView])
def list_conflicts(workspace_id: str, session: SessionDep, _: WorkspaceOwner) -> list[ConflictView]:
    rows = store.open_conflicts(session, workspace_id=workspace_id)
    return [ConflictView.model_validate(r) for r in rows]
