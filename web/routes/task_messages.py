"""The task page's message box and continue form: a signed-in person's word to the agents."""

from __future__ import annotations

from typing import TypeVar

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from orchestrator import continuation, messages
from orchestrator.schemas import ContinueRequest, MessageRequest, OriginSpec
from web import audit
from web.deps import (
    CheckedFormDep,
    LifecycleDep,
    ServicesDep,
    ViewerDep,
    may_change,
)
from web.repo_policy import check_repo
from web.routes.hooks import HubDep

router = APIRouter(include_in_schema=False)


Form = TypeVar("Form", MessageRequest, ContinueRequest)


def _parsed(model: type[Form], form: dict[str, str], field: str, refused: str) -> Form:
    """The form's `field` and `attempt` as `model`, or a 422 saying what is wrong."""
    try:
        return model.model_validate(
            {field: form.get(field, ""), "attempt": form.get("attempt") or None}
        )
    except ValidationError as exc:
        why = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
        raise HTTPException(422, f"{refused}: {why}") from exc


@router.post("/tasks/{task_id}/messages")
def send_message(
    task_id: str,
    request: Request,
    services: ServicesDep,
    lifecycle: LifecycleDep,
    viewer: ViewerDep,
    form: CheckedFormDep,
) -> Response:
    """Like POST /api/tasks/{id}/messages, from a form: back to the task page, where the
    message shows in the trajectory as it is stored."""
    may_change(services, viewer.caller, task_id)
    body = _parsed(MessageRequest, form, "text", "the message was not sent")
    event = messages.say(
        lifecycle, task_id, text=body.text, by=viewer.caller.user_name, attempt=body.attempt
    )
    audit.note(request.state, detail=f"seq {event.seq}")
    return RedirectResponse(f"/tasks/{task_id}#message", status_code=303)


@router.post("/tasks/{task_id}/continue")
def continue_task(
    task_id: str,
    request: Request,
    services: ServicesDep,
    lifecycle: LifecycleDep,
    viewer: ViewerDep,
    hub: HubDep,
    form: CheckedFormDep,
) -> Response:
    """Like POST /api/tasks/{id}/continue, from a form: on to the new task's page."""
    may_change(services, viewer.caller, task_id)
    body = _parsed(ContinueRequest, form, "instruction", "the task was not continued")
    prior = lifecycle.get(task_id)
    check_repo(request, viewer.caller, prior.repo, prior.ref, hub)
    task = continuation.continue_task(
        lifecycle, task_id, instruction=body.instruction, attempt=body.attempt,
        origin=OriginSpec(kind="web", data={"token": viewer.caller.token_name}),
        created_by=viewer.caller.user_id,
    )  # fmt: skip
    audit.note(request.state, detail=f"new task {task.id}")
    return RedirectResponse(f"/tasks/{task.id}", status_code=303)
