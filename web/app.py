"""The FastAPI application: API routes, event streams, the dashboard, health and metrics."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from anyio.to_thread import current_default_thread_limiter
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry

from integrations.telemetry import init_sentry_from_env
from orchestrator.config import OrchestratorSettings
from orchestrator.services import Services
from web import error_pages, errors
from web.admission import Admission, Slots
from web.audit import AuditTrail
from web.config import WebSettings
from web.metrics import StoreCollector
from web.oidc import Provider
from web.rate_limits import Rate, WriteLimits
from web.readiness import Readiness, Refresher, watch_writes
from web.routes import (
    api_docs,
    audit,
    audit_page,
    events,
    fleet,
    health,
    hooks,
    live,
    signin,
    sso,
    task_messages,
    task_pages,
    tasks,
    tokens,
    trajectories,
    users,
    workspace_tasks,
    workspaces,
    workspaces_api,
)
from web.security import SecurityHeaders
from web.templating import STATIC

LIVE_REDIS_SPARE = 20
"""Connections beyond the streams' own, for the reads that open a stream or a long-poll."""


def create_app(
    services: Services | None = None, web_settings: WebSettings | None = None
) -> FastAPI:
    """Build the app; with no arguments it reads its settings from the environment."""
    web_settings = web_settings or WebSettings()
    services = services or Services(OrchestratorSettings(), pool=web_settings.pool())
    init_sentry_from_env()
    readiness = Readiness(min_free_bytes=web_settings.min_free_disk_mb * 2**20)
    watch_writes(services, readiness)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services.migrate()
        # One database connection per thread at most: the pool is sized from this number.
        current_default_thread_limiter().total_tokens = web_settings.api_threads
        # The streams block in XREAD for up to the keep-alive interval; left unset, redis-py
        # reads with the connect timeout (5 s) and every quiet stream fell back to polling.
        app.state.live_redis = aioredis.Redis.from_url(
            services.settings.resolved_redis_url,
            socket_connect_timeout=5,
            socket_timeout=web_settings.sse_keepalive_s + 30,
            # One connection per waiting stream (redis-py's default cap is 100): the
            # slots bound the streams, so the pool never refuses one.
            max_connections=web_settings.max_streams + LIVE_REDIS_SPARE,
        )
        # Everything imported and built so far lives as long as the process: move it out
        # of the collector's sight, or every full collection walks it (a ~100 ms pause).
        gc.collect()
        gc.freeze()
        refresher = Refresher(services, readiness, web_settings.health_interval_s)
        refresher.start()
        try:
            yield
        finally:
            refresher.stop()
            await app.state.live_redis.aclose()
            services.close()

    # FastAPI's own /docs and /redoc load scripts and fonts from public CDNs: off, and
    # web.routes.api_docs serves a page of our own when AUTAN_API_DOCS=true.
    app = FastAPI(
        title="Autan",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.services = services
    app.state.web_settings = web_settings
    app.state.readiness = readiness
    app.state.oidc = Provider(web_settings) if web_settings.sso else None
    app.state.stream_slots = Slots(web_settings.max_streams)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(services, readiness, app.state.stream_slots))
    app.state.metrics = registry
    errors.install(app, retry_after_s=web_settings.retry_after_s, noted=readiness.noted)
    error_pages.install(app)
    app.add_middleware(WriteLimits, rate=Rate.parse(web_settings.write_rate))
    app.add_middleware(
        Admission, max_waiting=web_settings.max_waiting, retry_after_s=web_settings.retry_after_s
    )
    # Outermost: a request the admission sheds is recorded too.
    app.add_middleware(AuditTrail, services=services)
    routers = (
        audit,
        audit_page,
        tasks,
        tokens,
        users,
        events,
        live,
        health,
        hooks,
        signin,
        sso,
        task_pages,
        task_messages,
        fleet,
        workspaces,
        workspaces_api,
        workspace_tasks,
        trajectories,
    )
    for module in routers:
        app.include_router(module.router)
    if web_settings.api_docs:
        app.include_router(api_docs.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # Outermost but for Starlette's own error middleware, whose 500s carry them anyway.
    app.add_middleware(SecurityHeaders)
    return app
