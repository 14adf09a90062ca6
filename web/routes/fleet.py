"""The Fleet page: workers, sandboxes running, queue depth, free disk, what is not ready, and
each model endpoint's load."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from redis.exceptions import RedisError

from orchestrator.services import Services
from web.deps import ServicesDep, ViewerDep, WebSettingsDep
from web.fleet import WorkerRow, busy_workers, endpoint_loads
from web.templating import render

router = APIRouter(include_in_schema=False)


def _store_side(services: Services) -> tuple[list[WorkerRow], int | None]:
    with services.sessions() as session:
        workers = busy_workers(session)
    try:
        depth: int | None = services.queue.depth()
    except RedisError:
        depth = None
    return workers, depth


@router.get("/fleet")
async def fleet_page(
    request: Request, services: ServicesDep, web_settings: WebSettingsDep, viewer: ViewerDep
) -> Response:
    workers, depth = await run_in_threadpool(_store_side, services)
    loads = await endpoint_loads(web_settings.model_urls, web_settings.fleet_probe_timeout_s)
    return render(
        request,
        "fleet.html",
        viewer=viewer,
        workers=workers,
        sandboxes=sum(w.running for w in workers),
        depth=depth,
        loads=loads,
        readiness=request.app.state.readiness,
    )
