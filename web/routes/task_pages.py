"""The dashboard's task pages: the live list, one task, a new task, and the task buttons."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from orchestrator import access, store, task_lists, workspace_store
from orchestrator.access import Caller
from orchestrator.errors import InvalidSubmission
from orchestrator.live_link import FROM_CHECKOUT
from orchestrator.schemas import (
    MESSAGE_CHARS,
    ORIGIN_KINDS,
    OriginSpec,
    TaskRequest,
    TaskSpec,
    TaskSummary,
)
from orchestrator.states import TaskState
from orchestrator.store import Lineage
from sync.errors import WorkspaceNotFound
from sync.snapshots import is_workspace, workspace_of
from web import audit
from web.deps import (
    CheckedFormDep,
    LifecycleDep,
    ServicesDep,
    SessionDep,
    Viewer,
    ViewerDep,
    WebSettingsDep,
    may_change,
    owner_of,
    refuse_scope,
)
from web.repo_policy import check_repo
from web.routes.hooks import HubDep
from web.task_filters import FilterForm
from web.templating import render
from web.workspace_choice import choices, head_of

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
DIFF_LINES_SHOWN = 5000
HEADING_LENGTH = 120


QueryText = Annotated[str | None, Query(max_length=1024)]


@router.get("/tasks")
def tasks_page(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    state: QueryText = None,
    origin: QueryText = None,
    repo: QueryText = None,
    q: QueryText = None,
    since: QueryText = None,
    until: QueryText = None,
    cursor: QueryText = None,
    before: QueryText = None,
) -> Response:
    """The list: every filter optional and combined; a wrong one is said on the page."""
    form = FilterForm.of(state=state, origin=origin, repo=repo, q=q, since=since, until=until)
    page, error = task_lists.TaskList([], None, None), None
    try:
        page = task_lists.list_tasks(
            session, filters=form.parse(), limit=PAGE_SIZE, after=cursor, before=before
        )
    except ValueError as exc:
        error = str(exc)
    return render(
        request,
        "tasks.html",
        422 if error else 200,
        viewer=viewer,
        tasks=[TaskSummary.of(t) for t in page.items],
        form=form,
        error=error,
        api_query=form.query(cursor=cursor, before=before, limit=str(PAGE_SIZE)),
        next_query=form.query(cursor=page.next_cursor) if page.next_cursor else None,
        prev_query=form.query(before=page.prev_cursor) if page.prev_cursor else None,
        first_query=form.query() if cursor or before else None,
        states=[s.value for s in TaskState],
        origins=ORIGIN_KINDS,
    )


def _shown_result(task: Any, attempt: int | None) -> Any:
    """The result whose diff the page shows: the one asked for, else the chosen one."""
    if attempt is not None:
        for a in task.attempts:
            if a.number == attempt and a.result is not None:
                return a.result
    if task.result is not None:
        return task.result
    return next((a.result for a in task.attempts if a.result is not None), None)


def _workspace(session: Any, caller: Caller, repo: str) -> str | None:
    """A workspace task's source in words: `workspace NAME, version N` (None for a repository);
    the name only to those who reach the workspace."""
    if not is_workspace(repo):
        return None
    workspace_id, version = workspace_of(repo)
    try:
        name = workspace_store.get(session, workspace_id=workspace_id, caller=caller).name
    except WorkspaceNotFound:
        name = workspace_id[:8]
    return f"workspace {name}, version {version}"


def _from_checkout(session: Any, task_id: str, number: int | None) -> list[str]:
    """The lines of the developer's saves that flowed into attempt `number`'s sandbox, apart
    from its diff ([] when none did)."""
    found = [
        e.data
        for e in store.events_after(session, task_id=task_id, seq=0, kind=FROM_CHECKOUT)
        if number is not None and e.data.get("attempt") == number
    ]
    return str(found[-1].get("diff", "")).splitlines() if found else []


@router.get("/tasks/{task_id}")
def task_page(
    request: Request,
    task_id: str,
    services: ServicesDep,
    lifecycle: LifecycleDep,
    session: SessionDep,
    viewer: ViewerDep,
    attempt: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    task = lifecycle.get(task_id)
    first_line = task.instruction.strip().split("\n", 1)[0]
    can_change = viewer.caller.may_change(owner_of(services, task_id))
    shown = _shown_result(task, attempt)
    diff_lines = shown.diff.splitlines() if shown else []
    numbers = {a.id: a.number for a in task.attempts}
    shown_number = numbers.get(shown.attempt_id) if shown else None
    saved = _from_checkout(session, task_id, shown_number)
    return render(
        request,
        "task.html",
        viewer=viewer,
        task=task,
        heading=first_line[:HEADING_LENGTH] + ("…" if len(first_line) > HEADING_LENGTH else ""),
        workspace=_workspace(session, viewer.caller, task.repo),
        shown=shown,
        shown_number=shown_number,
        diff_lines=diff_lines[:DIFF_LINES_SHOWN],
        diff_cut=max(0, len(diff_lines) - DIFF_LINES_SHOWN),
        checkout_lines=saved[:DIFF_LINES_SHOWN],
        checkout_cut=max(0, len(saved) - DIFF_LINES_SHOWN),
        active=not task.state.terminal,
        max_attempts=lifecycle.settings.max_attempts,
        message_chars=MESSAGE_CHARS,
        can_change=can_change,
        continuable=[a.number for a in task.attempts if a.result is not None and a.result.diff],
    )


@router.post("/tasks/{task_id}/cancel")
def cancel(
    task_id: str,
    services: ServicesDep,
    lifecycle: LifecycleDep,
    viewer: ViewerDep,
    _: CheckedFormDep,
) -> Response:
    may_change(services, viewer.caller, task_id)
    lifecycle.cancel(task_id, by=f"{viewer.caller.token_name} (dashboard)")
    return RedirectResponse(f"/tasks/{task_id}", status_code=303)


@router.post("/tasks/{task_id}/again")
def run_again(
    task_id: str,
    request: Request,
    services: ServicesDep,
    lifecycle: LifecycleDep,
    viewer: ViewerDep,
    hub: HubDep,
    form: CheckedFormDep,
) -> Response:
    """Retry (the same number of attempts) or run again with more attempts: a new task."""
    may_change(services, viewer.caller, task_id)
    task = lifecycle.get(task_id)
    check_repo(request, viewer.caller, task.repo, task.ref, hub)
    attempts = task.attempts_requested
    if form.get("attempts"):
        if not form["attempts"].isdigit() or int(form["attempts"]) < 1:
            raise HTTPException(422, "attempts: a whole number, at least 1")
        attempts = int(form["attempts"])
    spec = TaskSpec(
        repo=task.repo,
        ref=task.ref,
        instruction=task.instruction,
        attempts=attempts,
        origin=OriginSpec(kind="web", data={"token": viewer.caller.token_name}),
    )
    again, _ = lifecycle.submit(
        spec, created_by=viewer.caller.user_id, lineage=Lineage(retry_of=task.id)
    )
    audit.note(request.state, detail=f"new task {again.id}")
    return RedirectResponse(f"/tasks/{again.id}", status_code=303)


def _new_form(request: Request, viewer: Any, settings: Any, **context: Any) -> Response:
    values = context.pop("values", {})
    return render(
        request,
        "new.html",
        context.pop("status_code", 200),
        viewer=viewer,
        values={"repo": "", "instruction": "", "ref": "", "attempts": "", "model": "", **values},
        errors=context.pop("errors", {}),
        models=settings.model_urls,
        workspaces=choices(request.app.state.services, viewer.caller),
    )


def _may_submit(viewer: Viewer) -> None:
    if not viewer.caller.can(access.WRITE):
        raise refuse_scope(viewer.caller, access.WRITE)


@router.get("/new")
def new_page(request: Request, viewer: ViewerDep, web_settings: WebSettingsDep) -> Response:
    _may_submit(viewer)
    return _new_form(request, viewer, web_settings)


@router.post("/new")
def submit(
    request: Request,
    services: ServicesDep,
    lifecycle: LifecycleDep,
    viewer: ViewerDep,
    web_settings: WebSettingsDep,
    hub: HubDep,
    form: CheckedFormDep,
) -> Response:
    _may_submit(viewer)
    fields = {k: form.get(k, "").strip() for k in ("repo", "instruction", "ref", "attempts")}
    if chosen := form.get("workspace", "").strip():
        if fields["repo"] or fields["ref"]:
            errors = {"workspace": "choose a repository or a workspace, not both"}
            return _new_form(
                request, viewer, web_settings, values=form, errors=errors, status_code=422
            )
        try:
            fields["repo"], fields["ref"] = head_of(request, services, viewer.caller, chosen)
        except HTTPException as exc:
            errors = {"workspace": str(exc.detail)}
            return _new_form(
                request,
                viewer,
                web_settings,
                values=form,
                errors=errors,
                status_code=exc.status_code,
            )
    try:
        request_ = TaskRequest(
            repo=fields["repo"],
            instruction=form.get("instruction", ""),
            ref=fields["ref"] or None,
            attempts=fields["attempts"] or None,
        )
    except ValidationError as exc:
        errors = {str(e["loc"][0]): e["msg"] for e in exc.errors()}
        return _new_form(request, viewer, web_settings, values=form, errors=errors, status_code=422)
    try:
        check_repo(request, viewer.caller, request_.repo, request_.ref, hub)
    except HTTPException as exc:
        errors = {"repo": str(exc.detail)}
        return _new_form(
            request, viewer, web_settings, values=form, errors=errors, status_code=exc.status_code
        )
    data: dict[str, Any] = {"token": viewer.caller.token_name}
    if form.get("model"):
        data["model"] = form["model"][:255]
    spec = TaskSpec(**request_.model_dump(), origin=OriginSpec(kind="web", data=data))
    try:
        task, _ = lifecycle.submit(spec, created_by=viewer.caller.user_id)
    except InvalidSubmission as exc:
        errors = {"attempts": str(exc)}
        return _new_form(request, viewer, web_settings, values=form, errors=errors, status_code=422)
    audit.note(request.state, target=task.id)
    return RedirectResponse(f"/tasks/{task.id}", status_code=303)
