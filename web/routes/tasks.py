"""Tasks: submit, list, show, cancel, continue, a person's message to a running one, a diff."""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from pydantic import BaseModel

from orchestrator import continuation, messages, task_lists
from orchestrator.schemas import (
    ContinueRequest,
    EventView,
    MessageRequest,
    OriginSpec,
    TaskRequest,
    TaskSpec,
    TaskSummary,
    TaskView,
)
from orchestrator.states import TaskState
from web import audit
from web.deps import (
    LifecycleDep,
    Reader,
    RoomToWrite,
    ServicesDep,
    SessionDep,
    Writer,
    may_change,
)
from web.repo_policy import check_repo
from web.routes.hooks import HubDep
from web.task_filters import FilterForm

router = APIRouter(prefix="/api/tasks", tags=["tasks"])


class TaskCreate(TaskRequest):
    """A task submitted over the API (integrations submit theirs through the orchestrator)."""

    origin: Literal["api", "cli", "web"] = "api"


class ContinueCreate(ContinueRequest):
    """A continuation asked for over the API; the CLI says it is the CLI."""

    origin: Literal["api", "cli", "web"] = "api"


class TaskPage(BaseModel):
    items: list[TaskSummary]
    next_cursor: str | None
    prev_cursor: str | None


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=TaskView, dependencies=[RoomToWrite]
)
def create_task(
    body: TaskCreate,
    request: Request,
    lifecycle: LifecycleDep,
    caller: Writer,
    hub: HubDep,
    response: Response,
) -> TaskView:
    check_repo(request, caller, body.repo, body.ref, hub)
    spec = TaskSpec(
        **body.model_dump(exclude={"origin"}),
        origin=OriginSpec(kind=body.origin, data={"token": caller.token_name}),
    )
    task, created = lifecycle.submit(spec, created_by=caller.user_id)
    audit.note(request.state, target=task.id, detail=None if created else "the same key: existing")
    if not created:
        response.status_code = status.HTTP_200_OK
    return task


@router.get("", response_model=TaskPage)
def list_tasks(
    request: Request,
    session: SessionDep,
    _: Reader,
    state: str | None = None,
    repo: str | None = None,
    origin: str | None = None,
    q: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    before: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    """Newest first. The filters combine; empty or "any" is no filter. `cursor` pages to
    older tasks (`next_cursor`), `before` to newer ones (`prev_cursor`). The ETag is the
    page's hash: with `If-None-Match` an unchanged page is a 304 with no body."""
    form = FilterForm.of(state=state, origin=origin, repo=repo, q=q, since=since, until=until)
    try:
        page = task_lists.list_tasks(
            session, filters=form.parse(), limit=limit, after=cursor, before=before
        )
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    body = TaskPage(
        items=[TaskSummary.of(t) for t in page.items],
        next_cursor=page.next_cursor,
        prev_cursor=page.prev_cursor,
    ).model_dump_json()
    # Read fresh every time and compared by content: a 304 is never stale.
    etag = '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    return Response(body, media_type="application/json", headers={"ETag": etag})


@router.get("/{task_id}", response_model=TaskView)
def get_task(task_id: str, lifecycle: LifecycleDep, _: Reader) -> TaskView:
    return lifecycle.get(task_id)


@router.post("/{task_id}/cancel", response_model=TaskView)
def cancel_task(
    task_id: str, services: ServicesDep, lifecycle: LifecycleDep, caller: Writer
) -> TaskView:
    may_change(services, caller, task_id)
    task = lifecycle.cancel(task_id, by=f"token {caller.token_name}")
    if task.state not in (TaskState.CANCELLED,):
        raise HTTPException(409, f"task {task_id} already ended: {task.state}")
    return task


@router.post("/{task_id}/messages", status_code=status.HTTP_201_CREATED, response_model=EventView)
def send_message(
    task_id: str,
    body: MessageRequest,
    request: Request,
    services: ServicesDep,
    lifecycle: LifecycleDep,
    caller: Writer,
) -> EventView:
    """Stored as a `person.message` event; each attempt's agent takes it before its next
    model call. 409 when the task (or the attempt named) has ended."""
    may_change(services, caller, task_id)
    event = messages.say(
        lifecycle, task_id, text=body.text, by=caller.user_name, attempt=body.attempt
    )
    audit.note(request.state, detail=f"seq {event.seq}")
    return event


@router.post(
    "/{task_id}/continue",
    status_code=status.HTTP_201_CREATED,
    response_model=TaskView,
    dependencies=[RoomToWrite],
)
def continue_task(
    task_id: str,
    body: ContinueCreate,
    request: Request,
    services: ServicesDep,
    lifecycle: LifecycleDep,
    caller: Writer,
    hub: HubDep,
) -> TaskView:
    """A new task from a finished one: its base, one attempt's diff applied (the kept one
    unless `attempt` names another), the conversation so far, then `instruction`. 409 while
    the task runs; 404 for no such attempt; 422 for an attempt that left no diff."""
    may_change(services, caller, task_id)
    prior = lifecycle.get(task_id)
    check_repo(request, caller, prior.repo, prior.ref, hub)
    task = continuation.continue_task(
        lifecycle, task_id, instruction=body.instruction, attempt=body.attempt,
        origin=OriginSpec(kind=body.origin, data={"token": caller.token_name}),
        created_by=caller.user_id,
    )  # fmt: skip
    audit.note(request.state, detail=f"new task {task.id}")
    return task


@router.get("/{task_id}/diff", response_class=Response)
def get_diff(
    task_id: str,
    lifecycle: LifecycleDep,
    _: Reader,
    attempt: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """An attempt's diff as text/x-diff: the attempt asked for, else the kept one, else the
    best one left (partial work too); which one, its commit and whether it is partial are
    in the X-Autan-* headers."""
    task = lifecycle.get(task_id)
    if attempt is not None:
        chosen = next((a for a in task.attempts if a.number == attempt), None)
        if chosen is None:
            raise HTTPException(404, f"task {task_id} has no attempt {attempt}")
    else:
        chosen = continuation.default_attempt(task)
        if chosen is None:
            raise HTTPException(404, f"no attempt of task {task_id} left a diff ({task.state})")
    result = chosen.result
    if result is None or not result.diff:
        why = "an empty diff" if result is not None else f"no result ({chosen.state})"
        raise HTTPException(404, f"attempt {chosen.number} of task {task_id} left {why}")
    headers = {
        "X-Autan-Attempt": str(chosen.number),
        "X-Autan-Partial": "true" if result.partial else "false",
    }
    if chosen.commit is not None:
        headers["X-Autan-Commit"] = chosen.commit
    return Response(result.diff, media_type="text/x-diff", headers=headers)
