"""Webhooks from GitHub, Slack, Jira and Sentry: raw body to the integration, answer at once.

The integration verifies, de-duplicates and queues the rest for a worker (the `.intake`
queue), so nothing slow runs here and nothing accepted lives only in this process."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from integrations.errors import (
    IntegrationError,
    InvalidPayload,
    MalformedRequest,
    NotConfigured,
    QueueUnavailable,
    SignatureInvalid,
)
from integrations.hub import Hub
from orchestrator.services import Services
from web import audit
from web.deps import ServicesDep

router = APIRouter(prefix="/hooks", tags=["hooks"])

STATUS: dict[type[IntegrationError], int] = {
    NotConfigured: 503,
    QueueUnavailable: 503,
    SignatureInvalid: 401,
    MalformedRequest: 400,
    InvalidPayload: 422,
}


def hub_of(request: Request, services: Services) -> Hub:
    """The app's intakes; built from the environment on first use unless the app was given
    one. Never fails: a connector whose settings are wrong only refuses its own deliveries."""
    hub: Hub | None = getattr(request.app.state, "hooks", None)
    if hub is None:
        hub = request.app.state.hooks = Hub.from_env(services.lifecycle, services.redis)
    return hub


def get_hub(request: Request, services: ServicesDep) -> Hub:
    return hub_of(request, services)


HubDep = Annotated[Hub, Depends(get_hub)]


async def _handle(hub: Hub, name: str, request: Request) -> JSONResponse:
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        answer = await run_in_threadpool(hub.intake(name).receive, body, headers)
    except IntegrationError as exc:
        status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 502)
        raise HTTPException(status, encodable(str(exc))) from exc
    made = f" (task {answer.task_id})" if answer.task_id else ""
    audit.note(request.state, detail=f"{answer.outcome}: {answer.reason}"[:500] + made)
    return AsciiJSONResponse(answer.json(), status_code=200)


def encodable(text: str) -> str:
    """`text` with lone surrogates (valid in JSON, a sender's field may hold one) escaped:
    UTF-8 cannot encode them, and an answer that cannot be encoded would be a 500."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class AsciiJSONResponse(JSONResponse):
    """JSON with everything beyond ASCII escaped, so a lone surrogate echoed from a sender's
    payload is sent as `\\ud800`, not a failure to encode."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False).encode("ascii")


@router.post("/github")
async def github_hook(request: Request, hub: HubDep) -> JSONResponse:
    return await _handle(hub, "github", request)


@router.post("/slack/commands")
async def slack_command(request: Request, hub: HubDep) -> JSONResponse:
    return await _handle(hub, "slack", request)


@router.post("/slack/events")
async def slack_events(request: Request, hub: HubDep) -> JSONResponse:
    """The Slack app's Events API request URL: replies in a task's thread."""
    return await _handle(hub, "slack", request)


@router.post("/jira")
async def jira_hook(request: Request, hub: HubDep) -> JSONResponse:
    return await _handle(hub, "jira", request)


@router.post("/sentry")
async def sentry_hook(request: Request, hub: HubDep) -> JSONResponse:
    return await _handle(hub, "sentry", request)
