"""A task's events as Server-Sent Events: the stored backlog, then live, resumable by seq."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from redis.exceptions import RedisError

from orchestrator import store
from orchestrator.events import END_KIND, stream_key
from orchestrator.schemas import EventView
from orchestrator.services import Services
from web.deps import CurrentToken, ServicesDep, WebSettingsDep

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/tasks", tags=["events"])

StreamId = bytes | str
POLL_WITHOUT_REDIS_S = 1.0


def _stored_after(services: Services, task_id: str, seq: int) -> list[EventView]:
    with services.sessions() as session:
        events = store.events_after(session, task_id=task_id, seq=seq)
        return [EventView.model_validate(e) for e in events]


def _task_ended(services: Services, task_id: str) -> bool:
    with services.sessions() as session:
        return store.get_task(session, task_id=task_id).finished_at is not None


def _frame(event: EventView) -> str:
    return f"id: {event.seq}\nevent: {event.kind}\ndata: {event.model_dump_json()}\n\n"


def _start_seq(last_event_id: str | None, after: int | None) -> int:
    if last_event_id is None:
        return after or 0
    if not last_event_id.isdigit():
        raise HTTPException(422, "Last-Event-ID: must be the id of an event this stream sent")
    return int(last_event_id)


async def _follow(
    services: Services,
    live: aioredis.Redis,
    task_id: str,
    seq: int,
    follow: bool,
    keepalive_s: float,
) -> AsyncIterator[str]:
    key = stream_key(task_id)
    # Where the live stream stands now: anything after this is news; the store fills
    # in everything before it, so nothing falls between the two.
    try:
        newest = await live.xrevrange(key, count=1)
        cursor = newest[0][0] if newest else b"0-0"
    except RedisError:
        cursor = None
    yield "retry: 2000\n\n"
    ended = False
    while True:
        for event in await run_in_threadpool(_stored_after, services, task_id, seq):
            seq = event.seq
            ended = ended or event.kind == END_KIND
            yield _frame(event)
        if not follow or ended or await run_in_threadpool(_task_ended, services, task_id):
            # One more read closes the gap between the last read and the end.
            for event in await run_in_threadpool(_stored_after, services, task_id, seq):
                seq = event.seq
                yield _frame(event)
            return
        moved, cursor = await wait_stream(live, key, cursor, keepalive_s)
        if not moved:
            yield ": keep-alive\n\n"


async def wait_stream(
    live: aioredis.Redis, key: str, cursor: StreamId | None, timeout_s: float
) -> tuple[bool, StreamId | None]:
    """Block until the stream moves past `cursor`, or time out.

    Returns whether to look at the store again, and the new cursor; a None cursor
    means Redis is away, and the store is polled instead until it is back.
    """
    if cursor is None:
        await asyncio.sleep(POLL_WITHOUT_REDIS_S)
        try:
            newest = await live.xrevrange(key, count=1)
        except RedisError:
            return True, None
        return True, newest[0][0] if newest else b"0-0"
    try:
        got = await live.xread({key: cursor}, block=max(1, int(timeout_s * 1000)), count=1000)
    except RedisError as exc:
        log.warning("event stream %s lost Redis (%s); polling the store", key, exc)
        return True, None
    if not got:
        return False, cursor
    # XREAD answers [[key, [(entry_id, fields), ...]]]; redis-py's stubs cover RESP3 too.
    entries: list[tuple[StreamId, Any]] = got[0][1]  # type: ignore[index,assignment]
    return True, entries[-1][0]


@router.get("/{task_id}/events")
async def task_events(
    task_id: str,
    request: Request,
    services: ServicesDep,
    web_settings: WebSettingsDep,
    _: CurrentToken,
    after: Annotated[int | None, Query(ge=0, description="Send events after this seq")] = None,
    follow: bool = True,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    seq = _start_seq(last_event_id, after)
    await run_in_threadpool(_task_ended, services, task_id)  # 404 for an unknown task
    stream = _follow(
        services, request.app.state.live_redis, task_id, seq, follow, web_settings.sse_keepalive_s
    )
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
