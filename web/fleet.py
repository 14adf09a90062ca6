"""What the Fleet page shows: workers, running sandboxes, the queue, and each model's load."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orchestrator.models import Attempt, WorkerPresence
from orchestrator.states import LIVE_ATTEMPT_STATES

log = logging.getLogger(__name__)


@dataclass
class WorkerRow:
    name: str
    running: int
    last_heartbeat: datetime | None
    host: str = ""
    concurrency: int | None = None
    """None: a worker that has not reported itself (one from before workers did)."""
    silent: bool = False
    """Its last report is older than the lease: stopped, or cut off from the store."""


@dataclass
class EndpointLoad:
    """One model endpoint as vLLM's own /metrics describe it; `error` set when unreachable."""

    url: str
    error: str | None = None
    running: float | None = None
    waiting: float | None = None
    kv_cache: float | None = None
    """Fraction of the KV cache in use, 0 to 1."""
    ttft_s: float | None = None
    """Mean time to first token since the server started."""
    models: list[str] = field(default_factory=list)


def fleet_workers(session: Session, *, now: datetime, lease_s: float) -> list[WorkerRow]:
    """Every worker that reports itself, busy or idle, with the attempts it runs now; and any
    worker that runs an attempt without having reported itself."""
    running = {
        name: (count, beat)
        for name, count, beat in session.execute(
            select(Attempt.worker, func.count(), func.max(Attempt.heartbeat_at))
            .where(Attempt.state.in_(LIVE_ATTEMPT_STATES), Attempt.worker.is_not(None))
            .group_by(Attempt.worker)
        )
    }
    silent_before = now - timedelta(seconds=lease_s)
    rows = [
        WorkerRow(
            name=w.name,
            running=running.pop(w.name, (0, None))[0],
            last_heartbeat=w.heartbeat_at,
            host=w.host,
            concurrency=w.concurrency,
            silent=w.heartbeat_at < silent_before,
        )
        for w in session.scalars(select(WorkerPresence))
    ]
    rows += [
        WorkerRow(name or "", count, beat, host=(name or "").rpartition(":")[0])
        for name, (count, beat) in running.items()
    ]
    return sorted(rows, key=lambda row: row.name)


def metrics_url(model_url: str) -> str:
    """vLLM serves /metrics at its root, beside the OpenAI API under /v1."""
    base = model_url.rstrip("/")
    return base.removesuffix("/v1") + "/metrics"


def parse_vllm(text: str, load: EndpointLoad) -> EndpointLoad:
    totals: dict[str, float] = {}
    models: set[str] = set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
            if "model_name" in sample.labels:
                models.add(sample.labels["model_name"])
    load.running = totals.get("vllm:num_requests_running")
    load.waiting = totals.get("vllm:num_requests_waiting")
    # vLLM renamed gpu_cache_usage_perc to kv_cache_usage_perc (v0.10); read either.
    load.kv_cache = totals.get("vllm:kv_cache_usage_perc", totals.get("vllm:gpu_cache_usage_perc"))
    count = totals.get("vllm:time_to_first_token_seconds_count")
    if count:
        load.ttft_s = totals.get("vllm:time_to_first_token_seconds_sum", 0.0) / count
    load.models = sorted(models)
    return load


async def _probe(client: httpx.AsyncClient, url: str) -> EndpointLoad:
    load = EndpointLoad(url=url)
    try:
        response = await client.get(metrics_url(url))
    except httpx.HTTPError as exc:
        load.error = f"unreachable ({type(exc).__name__})"
        return load
    if response.status_code != 200:
        load.error = f"unreachable (/metrics answered {response.status_code})"
        return load
    try:
        return parse_vllm(response.text, load)
    except ValueError as exc:
        load.error = f"unreadable metrics ({exc})"
        return load


async def endpoint_loads(urls: list[str], timeout_s: float) -> list[EndpointLoad]:
    """Every endpoint at once, so one that hangs costs the page `timeout_s`, not more."""
    if not urls:
        return []
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        return list(await asyncio.gather(*(_probe(client, u) for u in urls)))
