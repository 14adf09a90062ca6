"""The task page's message box: a signed-in person's message to the running task's agents."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from orchestrator import messages
from orchestrator.schemas import MessageRequest
from web import audit
from web.deps import CheckedFormDep, LifecycleDep, ServicesDep, ViewerDep, may_change

router = APIRouter(include_in_schema=False)


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
    try:
        body = MessageRequest.model_validate(
            {"text": form.get("text", ""), "attempt": form.get("attempt") or None}
        )
    except ValidationError as exc:
        why = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
        raise HTTPException(422, f"the message was not sent: {why}") from exc
    event = messages.say(
        lifecycle, task_id, text=body.text, by=viewer.caller.user_name, attempt=body.attempt
    )
    audit.note(request.state, detail=f"seq {event.seq}")
    return RedirectResponse(f"/tasks/{task_id}#message", status_code=303)
