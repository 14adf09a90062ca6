"""One browser's live stream: the events of every task its open pages follow, on one connection.

A browser holds one such stream for all its tabs (web/static/live-worker.js); the page-per-task
stream (web/routes/events.py) stays for the CLI and other clients. The stream's set of tasks
is fixed when it opens; a browser that follows another task opens a new one with its place
in each (`task=ID:SEQ`) and closes the old.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

import redis.asyncio as aioredis
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from orchestrator import store
from orchestrator.events import END_KIND, stream_key
from orchestrator.schemas import EventView
from orchestrator.services import Services
from web.admission import Slot
from web.deps import Reader, ServicesDep, WebSettingsDep, stream_slot
from web.routes.events import (
    PAGE,
    closing,
    guarded,
    newest_ids,
    sse_response,
    token_live,
    wait_streams,
)

router = APIRouter(prefix="/api", tags=["events"])

Backlog = dict[str, tuple[list[EventView], bool]]


def parse_follows(values: list[str], most: int) -> dict[str, int]:
    """`ID` or `ID:SEQ` per task (the events after SEQ are sent) -> {task id: seq}."""
    if not values:
        raise HTTPException(422, "task: name at least one task to follow (task=ID or task=ID:SEQ)")
    if len(values) > most:
        raise HTTPException(422, f"task: at most {most} tasks on one stream, not {len(values)}")
    follows: dict[str, int] = {}
    for value in values:
        task_id, _, seq = value.partition(":")
        if not task_id or (seq and not seq.isdigit()):
            raise HTTPException(422, f"task: {value!r} is not ID or ID:SEQ (SEQ a whole number)")
        follows[task_id] = int(seq or 0)
    return follows


def _stored_after(services: Services, follows: dict[str, int]) -> Backlog:
    """Per task, the events after its seq and whether it had ended before they were read;
    404 for a task that does not exist."""
    with services.sessions() as session:
        found: Backlog = {}
        for task_id, seq in follows.items():
            ended = store.get_task(session, task_id=task_id).finished_at is not None
            events = store.events_after(session, task_id=task_id, seq=seq, limit=PAGE)
            found[task_id] = [EventView.model_validate(e) for e in events], ended
        return found


def _known(services: Services, task_ids: list[str]) -> None:
    """404 naming the first task that does not exist."""
    with services.sessions() as session:
        for task_id in task_ids:
            store.get_task(session, task_id=task_id)


def _frame(event: EventView) -> str:
    # One kind of message for every task: the event says which task and which kind it is.
    return f"data: {event.model_dump_json()}\n\n"


def _drain(found: Backlog, follows: dict[str, int]) -> tuple[list[str], set[str], set[str]]:
    """The frames of what was read (each task's place moved past them), the tasks with more
    stored than one read fetches, and the tasks whose events have all been sent."""
    frames: list[str] = []
    more: set[str] = set()
    ended: set[str] = set()
    for task_id, (events, finished) in found.items():
        closed = False
        for event in events:
            follows[task_id] = event.seq
            frames.append(_frame(event))
            if event.kind == END_KIND:
                closed = True  # a task's events end with its end, whatever was stored after it
                break
        if closed or (finished and len(events) < PAGE):
            ended.add(task_id)
        elif len(events) == PAGE:
            more.add(task_id)  # read on before waiting for news
    return frames, more, ended


@dataclass(frozen=True)
class Watch:
    """Who the stream is for, and its timings."""

    token_id: str
    keepalive_s: float
    recheck_s: float


async def _frames(
    services: Services, live: aioredis.Redis, watch: Watch, follows: dict[str, int], slot: Slot
) -> AsyncIterator[str]:
    keys = {stream_key(task_id): task_id for task_id in follows}
    slot.follows(len(follows))
    # Where the live streams stand now: news is after this, the store has all before it.
    cursors = await newest_ids(live, list(keys))
    yield "retry: 2000\n\n"
    checked = time.monotonic()
    due = set(follows)
    while True:
        found = await run_in_threadpool(_stored_after, services, {t: follows[t] for t in due})
        frames, due, ended = _drain(found, follows)
        for frame in frames:
            yield frame
        for task_id in ended:
            del follows[task_id]  # nothing more will come: stop asking
            if cursors is not None:
                cursors.pop(stream_key(task_id), None)
        slot.follows(len(follows))
        if due:
            continue
        if time.monotonic() - checked >= watch.recheck_s:
            if not await run_in_threadpool(token_live, services, watch.token_id):
                yield closing("the token was revoked")
                return
            checked = time.monotonic()
        waiting = [stream_key(task_id) for task_id in follows]
        timeout_s = min(watch.keepalive_s, watch.recheck_s)
        moved, cursors = await wait_streams(live, cursors, waiting, timeout_s)
        if moved is None:
            due = set(follows)
        elif moved:
            due = {keys[key] for key in moved if keys[key] in follows}
        else:
            yield ": keep-alive\n\n"


@router.get("/live")
async def live_events(
    request: Request,
    services: ServicesDep,
    web_settings: WebSettingsDep,
    caller: Reader,
    task: Annotated[
        list[str] | None,
        Query(description="A task to follow: ID, or ID:SEQ for the events after SEQ"),
    ] = None,
) -> StreamingResponse:
    """Server-Sent Events of every task named, each event one `data:` line of JSON with its
    `task_id` and `seq`; a task that ends is dropped, the stream stays open for the rest."""
    follows = parse_follows(task or [], web_settings.live_max_tasks)
    await run_in_threadpool(_known, services, list(follows))
    slot = stream_slot(request, web_settings, "live")
    watch = Watch(
        token_id=caller.token_id,
        keepalive_s=web_settings.sse_keepalive_s,
        recheck_s=web_settings.token_recheck_s,
    )
    frames = _frames(services, request.app.state.live_redis, watch, follows, slot)
    return sse_response(guarded(frames, slot, "live stream"), slot)
