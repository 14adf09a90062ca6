"""The Fleet page: workers, sandboxes running, queue depth, free disk, what is not ready, and
each model endpoint's load."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from redis.exceptions import RedisError

from orchestrator.services import Services
from web.deps import ServicesDep, ViewerDep, WebSettingsDep
from web.fleet import WorkerRow, endpoint_loads, fleet_workers
from web.templating import render

router = APIRouter(include_in_schema=False)


def _store_side(services: Services) -> tuple[list[WorkerRow], int | None, datetime]:
    with services.sessions() as session:
        now = services.lifecycle.lease_clock(session)
        workers = fleet_workers(session, now=now, lease_s=services.settings.heartbeat_timeout_s)
    try:
        depth: int | None = services.queue.depth()
    except RedisError:
        depth = None
    return workers, depth, now


@router.get("/fleet")
async def fleet_page(
    request: Request, services: ServicesDep, web_settings: WebSettingsDep, viewer: ViewerDep
) -> Response:
    workers, depth, now = await run_in_threadpool(_store_side, services)
    loads = await endpoint_loads(web_settings.model_urls, web_settings.fleet_probe_timeout_s)
    return render(
        request,
        "fleet.html",
        viewer=viewer,
        workers=workers,
        sandboxes=sum(w.running for w in workers),
        depth=depth,
        loads=loads,
        now=now,
        readiness=request.app.state.readiness,
    )
