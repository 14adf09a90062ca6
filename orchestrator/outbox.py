"""A run's writes while the store is unreachable: kept in order, in memory, sent when it returns."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import InterfaceError, OperationalError

from orchestrator.errors import StoreUnavailable
from orchestrator.states import AttemptState

if TYPE_CHECKING:
    from orchestrator.claims import Claim, Claims
    from orchestrator.schemas import EventView

log = logging.getLogger(__name__)

STORE_DOWN = (OperationalError, InterfaceError)
"""What SQLAlchemy raises when the database cannot be reached (or, on SQLite, stays locked)."""

Write = tuple[str, Any]
"""("event", (kind, data)) or ("phase", state)."""


class Outbox:
    """Sends a run's events and phases through its claim, or keeps them while the store is down.

    Every send is fenced by the claim's lease (a run that lost it gets LeaseLost), and
    what was kept goes first, in order, in one transaction, so the store sees the run's
    writes in the order it made them.
    """

    def __init__(self, claims: Claims, claim: Claim, *, limit: int) -> None:
        self._claims = claims
        self._claim = claim
        self._limit = limit
        self._kept: deque[Write] = deque()
        self._lock = threading.Lock()
        self._seq: int | None = None
        """The task's seq of the last event the store confirmed for this run."""
        self._unsure = False
        """A send failed without an answer: its commit may have happened all the same."""
        self.last_ok = time.monotonic()
        """When the store last took a write or a heartbeat of this run (monotonic)."""

    @property
    def kept(self) -> int:
        return len(self._kept)

    def event(self, kind: str, data: dict[str, Any]) -> None:
        self._send(("event", (kind, data)))

    def phase(self, state: AttemptState) -> None:
        self._send(("phase", state))

    def reached(self) -> None:
        """The store answered (a heartbeat): note it, and send what was kept."""
        self.last_ok = time.monotonic()
        self.flush()

    def flush(self) -> None:
        """Send what was kept; raises what the store raises (nothing is lost on failure)."""
        with self._lock:
            self._drop_stored()
            if self._kept:
                try:
                    self._stored(self._claims.write_many(self._claim, list(self._kept)))
                except STORE_DOWN:
                    self._unsure = True
                    raise
                self._sent_kept()

    def _stored(self, views: list[EventView]) -> None:
        if views:
            self._seq = views[-1].seq
        self._unsure = False

    def _drop_stored(self) -> None:
        """After a send whose answer was lost, drop from what is kept the writes that the
        store took after all, so the retry never stores an event twice."""
        if not (self._unsure and self._kept):
            return
        stored = [
            _same(kind, data) for kind, data in self._claims.stored_since(self._claim, self._seq)
        ]
        taken = 0
        for event in stored:  # in order; others' events about the attempt may sit between
            if taken < len(self._kept) and self._as_event(self._kept[taken]) == event:
                taken += 1
        for _ in range(taken):
            self._kept.popleft()
        if taken:
            log.info(
                "attempt %s: %d kept event(s) had been stored after all",
                self._claim.attempt_id,
                taken,
            )
        self._unsure = False

    def _as_event(self, write: Write) -> tuple[str, Any]:
        what, value = write
        if what == "phase":
            return _same("attempt.state", {"state": str(value), "number": self._claim.number})
        kind, data = value
        return _same(kind, data)

    def _sent_kept(self) -> None:
        log.info(
            "attempt %s: the store is back; sent the %d event(s) kept meanwhile",
            self._claim.attempt_id,
            len(self._kept),
        )
        self._kept.clear()
        self.last_ok = time.monotonic()

    def _send(self, write: Write) -> None:
        with self._lock:
            try:
                self._drop_stored()
                self._stored(self._claims.write_many(self._claim, [*self._kept, write]))
            except STORE_DOWN as exc:
                self._unsure = True
                if len(self._kept) >= self._limit:
                    raise StoreUnavailable(
                        f"the store has been unreachable while this run made {self._limit} "
                        f"events, the most it keeps: {first_line(exc)}"
                    ) from exc
                if not self._kept:
                    log.warning(
                        "attempt %s: the store is unreachable (%s); keeping its events until "
                        "it is back",
                        self._claim.attempt_id,
                        first_line(exc),
                    )
                self._kept.append(write)
                return
            if self._kept:
                self._sent_kept()
            self.last_ok = time.monotonic()


def _same(kind: str, data: Any) -> tuple[str, Any]:
    """An event as the store gives it back (JSON), to compare a kept write with a stored one."""
    return kind, json.loads(json.dumps(data, default=str))


def first_line(exc: BaseException) -> str:
    """The first line of a driver's error, without SQLAlchemy's statement and links."""
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
