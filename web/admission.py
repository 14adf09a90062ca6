"""Load shedding: a request that would wait behind too many others gets 503 at once, not a hang."""

from __future__ import annotations

from collections import Counter

from anyio.to_thread import current_default_thread_limiter
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

EXEMPT = frozenset({"/livez", "/readyz"})
"""Answered from memory, without a thread: a probe must answer most when the API is busiest."""


class Admission:
    """Refuses new requests while more than `max_waiting` wait for one of the API's threads.

    Every blocking step (a handler, a store read of a stream) runs on that bounded pool
    of threads; past it, requests would only queue, each holding a client open for as
    long as the queue is deep. Streams already open are not counted: they hold no
    thread between reads.
    """

    def __init__(self, app: ASGIApp, *, max_waiting: int, retry_after_s: int) -> None:
        self.app = app
        self.max_waiting = max_waiting
        self.retry_after_s = retry_after_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in EXEMPT:
            waiting = current_default_thread_limiter().statistics().tasks_waiting
            if waiting >= self.max_waiting:
                detail = (
                    f"the API is overloaded: {waiting} requests wait for a thread; "
                    f"retry in {self.retry_after_s} s"
                )
                response = JSONResponse(
                    {"detail": detail, "part": "api"},
                    status_code=503,
                    headers={"Retry-After": str(self.retry_after_s)},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class Slot:
    """One taken place; giving it back twice counts once."""

    def __init__(self, slots: Slots, kind: str) -> None:
        self._slots: Slots | None = slots
        self.kind = kind
        self.following = 0

    def follows(self, tasks: int) -> None:
        """How many tasks the stream in this place follows now (for /metrics)."""
        if self._slots is not None:
            self._slots.following += tasks - self.following
            self.following = tasks

    def give_back(self) -> None:
        if self._slots is not None:
            self._slots.taken -= 1
            self._slots.open[self.kind] -= 1
            self._slots.following -= self.following
            self._slots = None


class Slots:
    """Places for event streams and long-polls: each holds a Redis connection while it waits,
    so their number is bounded like the connections are."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.taken = 0
        self.open: Counter[str] = Counter()
        """Places taken now by kind (`live`, `task`, `long-poll`), for /metrics."""
        self.following = 0
        """Tasks the live streams in these places follow now, all together."""

    def take(self, kind: str) -> Slot | None:
        # Called on the event loop only: no lock needed between the check and the count.
        if self.taken >= self.limit:
            return None
        self.taken += 1
        self.open[kind] += 1
        return Slot(self, kind)
