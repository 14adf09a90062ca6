"""The live side of events: publishing stored events on a Redis stream per task."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

import redis

from orchestrator.schemas import EventView

if TYPE_CHECKING:
    from orchestrator.models import Event

log = logging.getLogger(__name__)

STREAM_MAXLEN = 10_000
ENDED_STREAM_TTL_S = 24 * 3600
"""A task's live stream outlives its end by a day; later readers replay the store."""
END_KIND = "task.finished"


def stream_key(task_id: str) -> str:
    return f"autan:task:{task_id}:events"


def event_view(event: Event) -> EventView:
    return EventView.model_validate(event)


class EventBus:
    """Publishes events after they are committed; the store stays the truth.

    A publish that fails is logged and dropped: readers catch up from the store
    (they resume by `seq`), so a Redis outage delays live views and loses nothing.
    """

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def publish(self, events: Iterable[EventView]) -> None:
        events = list(events)
        if not events:
            return
        try:
            pipe = self._redis.pipeline(transaction=False)
            for ev in events:
                key = stream_key(ev.task_id)
                pipe.xadd(
                    key,
                    {"seq": ev.seq, "event": ev.model_dump_json()},
                    maxlen=STREAM_MAXLEN,
                    approximate=True,
                )
                if ev.kind == END_KIND:
                    pipe.expire(key, ENDED_STREAM_TTL_S)
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("could not publish %d event(s) live: %s", len(events), exc)


def decode_stream_entry(fields: dict[bytes, bytes]) -> EventView:
    return EventView.model_validate(json.loads(fields[b"event"]))
