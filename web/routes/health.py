"""Health and metrics: what a load balancer, an orchestrator's probes and Prometheus ask."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from web.deps import ServicesDep
from web.readiness import Readiness
from web.routes.hooks import hub_of

router = APIRouter(tags=["health"])


@router.get("/livez")
async def livez() -> JSONResponse:
    """200 while the process serves requests at all; touches nothing else."""
    return JSONResponse({"status": "ok"})


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """200 when the database, Redis, a worker, the disk and the last write are all well;
    503 naming each that is not. Read from memory: the state is refreshed in the background.
    Each connector's state is listed too, but one that is off or misconfigured does not fail
    readiness: it refuses only its own deliveries. `warnings` names an edit of autan.toml that
    was refused (the last good version serves meanwhile)."""
    readiness: Readiness = request.app.state.readiness
    failing = readiness.failing()
    checks = dict(readiness.checks)
    checks["writes"] = failing.get("writes", "ok")
    hub = hub_of(request, request.app.state.services)
    return JSONResponse(
        {
            "status": "failing" if failing else "ok",
            "failing": sorted(failing),
            "checks": checks,
            "connectors": {state.name: state.line() for state in hub.states()},
            "warnings": hub.warnings(),
            "workers_alive": readiness.workers_alive,
            "disk_free_bytes": readiness.disk_free_bytes,
        },
        status_code=503 if failing else 200,
    )


@router.get("/healthz")
def healthz(services: ServicesDep) -> JSONResponse:
    """200 when the store and Redis answer now; 503 naming what does not (asks both)."""
    checks: dict[str, str] = {}
    try:
        with services.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except SQLAlchemyError as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        services.redis.ping()
        checks["redis"] = "ok"
    except (RedisError, OSError) as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    healthy = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if healthy else "degraded", "checks": checks},
        status_code=200 if healthy else 503,
    )


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """Prometheus text; 503 naming the part when the store or Redis cannot be read."""
    return Response(generate_latest(request.app.state.metrics), media_type=CONTENT_TYPE_LATEST)
