"""A task's events as Server-Sent Events: the stored backlog, then live, resumable by seq.

A stream holds no database connection between its reads: each read is a short
session of its own, and the waits in between are on Redis (or a timer without it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from redis.exceptions import RedisError
from starlette.background import BackgroundTask

from orchestrator import store
from orchestrator.claims import database_now
from orchestrator.events import END_KIND, stream_key
from orchestrator.schemas import EventView
from orchestrator.services import Services
from orchestrator.tokens import lookup
from web.admission import Slot
from web.deps import Reader, ServicesDep, WebSettingsDep, stream_slot
from web.errors import outage_of

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/tasks", tags=["events"])

StreamId = bytes | str
POLL_WITHOUT_REDIS_S = 1.0
PAGE = 500
"""Most stored events one read fetches; a stream reads on at once while pages come full."""


def _stored_after(services: Services, task_id: str, seq: int) -> tuple[list[EventView], bool]:
    """The events after `seq`, and whether the task had ended before they were read."""
    with services.sessions() as session:
        ended = store.get_task(session, task_id=task_id).finished_at is not None
        events = store.events_after(session, task_id=task_id, seq=seq, limit=PAGE)
        return [EventView.model_validate(e) for e in events], ended


def _task_ended(services: Services, task_id: str) -> bool:
    with services.sessions() as session:
        return store.get_task(session, task_id=task_id).finished_at is not None


def token_live(services: Services, token_id: str) -> bool:
    with services.sessions() as session:
        return lookup(session, token_id=token_id, now=database_now(session)) is not None


def closing(reason: str) -> str:
    """The last words of a stream the server ends early: a comment, since every event a
    client parses is a stored one; its reconnection then hears why (401, 503)."""
    return f": stream closed: {reason}\n\n"


def _frame(event: EventView) -> str:
    return f"id: {event.seq}\nevent: {event.kind}\ndata: {event.model_dump_json()}\n\n"


def _start_seq(last_event_id: str | None, after: int | None) -> int:
    if last_event_id is None:
        return after or 0
    if not last_event_id.isdigit():
        raise HTTPException(422, "Last-Event-ID: must be the id of an event this stream sent")
    return int(last_event_id)


@dataclass(frozen=True)
class Follow:
    """What one stream follows, and for whom."""

    task_id: str
    token_id: str
    follow: bool
    keepalive_s: float
    recheck_s: float


async def guarded(frames: AsyncIterator[str], slot: Slot, what: str) -> AsyncIterator[str]:
    """A stream's frames; a store outage or a revoked token ends it with a last comment
    that says why (a client reconnects, from where it stood, once it can). The stream's
    slot goes back however it ends."""
    try:
        async for frame in frames:
            yield frame
    except Exception as exc:
        outage = outage_of(exc)
        if outage is None:
            raise
        log.warning("%s ended: %s %s", what, outage.part, outage.reason)
        yield closing(f"{outage.part} is unavailable: {outage.reason}")
    finally:
        slot.give_back()


def sse_response(frames: AsyncIterator[str], slot: Slot) -> StreamingResponse:
    return StreamingResponse(
        frames,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        # A stream that never started never runs its `finally`: give the slot back here too.
        background=BackgroundTask(slot.give_back),
    )


async def _frames(
    services: Services, live: aioredis.Redis, what: Follow, seq: int
) -> AsyncIterator[str]:
    task_id = what.task_id
    key = stream_key(task_id)
    # Where the live stream stands now: anything after this is news; the store fills
    # in everything before it, so nothing falls between the two.
    cursors = await newest_ids(live, [key])
    cursor = None if cursors is None else cursors[key]
    yield "retry: 2000\n\n"
    checked = time.monotonic()
    while True:
        # `ended` is read before the events, in the same session: the end's own event
        # commits with it, and every earlier one before it, so this read holds them all.
        events, ended = await run_in_threadpool(_stored_after, services, task_id, seq)
        for event in events:
            seq = event.seq
            yield _frame(event)
            if event.kind == END_KIND:
                return  # the stream ends with the task's end, whatever was stored after it
        if len(events) == PAGE:
            continue  # more is stored: read on before waiting for news
        if ended or not what.follow:
            return
        if time.monotonic() - checked >= what.recheck_s:
            if not await run_in_threadpool(token_live, services, what.token_id):
                yield closing("the token was revoked")
                return
            checked = time.monotonic()
        moved, cursor = await wait_stream(live, key, cursor, min(what.keepalive_s, what.recheck_s))
        if not moved:
            yield ": keep-alive\n\n"


async def wait_stream(
    live: aioredis.Redis, key: str, cursor: StreamId | None, timeout_s: float
) -> tuple[bool, StreamId | None]:
    """Block until the stream moves past `cursor`, or time out.

    Returns whether to look at the store again, and the new cursor; a None cursor
    means Redis is away, and the store is polled instead until it is back.
    """
    cursors = None if cursor is None else {key: cursor}
    moved, cursors = await wait_streams(live, cursors, [key], timeout_s)
    return moved is None or bool(moved), None if cursors is None else cursors[key]


async def newest_ids(live: aioredis.Redis, keys: list[str]) -> dict[str, StreamId] | None:
    """Where each stream stands now ("0-0" for one not there yet); None when Redis is away."""
    try:
        cursors: dict[str, StreamId] = {}
        for key in keys:
            newest = await live.xrevrange(key, count=1)
            at = newest[0][0] if newest else None
            cursors[key] = b"0-0" if at is None else at
    except RedisError:
        return None
    return cursors


async def wait_streams(
    live: aioredis.Redis, cursors: dict[str, StreamId] | None, keys: list[str], timeout_s: float
) -> tuple[set[str] | None, dict[str, StreamId] | None]:
    """Block until any of `keys` moves past its cursor, or time out.

    Returns the keys that moved (None: look at every one in the store) and the new
    cursors; None cursors mean Redis is away, and the store is polled instead until
    it is back.
    """
    if cursors is None:
        await asyncio.sleep(POLL_WITHOUT_REDIS_S)
        return None, await newest_ids(live, keys)
    if not cursors:
        await asyncio.sleep(timeout_s)  # nothing to follow: only the keep-alive is due
        return set(), cursors
    try:
        streams: dict[Any, Any] = dict(cursors)
        got = await live.xread(streams, block=max(1, int(timeout_s * 1000)), count=1000)
    except RedisError as exc:
        log.warning("event streams %s lost Redis (%s); polling the store", sorted(cursors), exc)
        return None, None
    moved: set[str] = set()
    cursors = dict(cursors)
    # XREAD answers [[key, [(entry_id, fields), ...]], ...]; redis-py's stubs cover RESP3 too.
    answer: list[tuple[bytes | str, list[tuple[StreamId, Any]]]] = got  # type: ignore[assignment]
    for name, entries in answer:
        key = name.decode() if isinstance(name, bytes) else str(name)
        moved.add(key)
        cursors[key] = entries[-1][0]
    return moved, cursors


@router.get("/{task_id}/events")
async def task_events(
    task_id: str,
    request: Request,
    services: ServicesDep,
    web_settings: WebSettingsDep,
    caller: Reader,
    after: Annotated[int | None, Query(ge=0, description="Send events after this seq")] = None,
    follow: bool = True,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    seq = _start_seq(last_event_id, after)
    await run_in_threadpool(_task_ended, services, task_id)  # 404 for an unknown task
    slot = stream_slot(request, web_settings, "task")
    what = Follow(
        task_id=task_id,
        token_id=caller.token_id,
        follow=follow,
        keepalive_s=web_settings.sse_keepalive_s,
        recheck_s=web_settings.token_recheck_s,
    )
    frames = _frames(services, request.app.state.live_redis, what, seq)
    return sse_response(guarded(frames, slot, f"event stream of {task_id}"), slot)
