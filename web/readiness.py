"""What /readyz and /metrics say about the platform, kept in memory and refreshed in the background.

The probes answer from this state alone, so they answer at once even when every
thread and every database connection is busy.
"""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import RedisError
from sqlalchemy import event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from orchestrator.services import Services
from sync.errors import StorageError
from web.audit import AUDIT_WRITE
from web.errors import Outage, outage_of

WRITE_FAILURE_HOLDS_S = 60.0
"""How long a failed write keeps /readyz failing when no write follows: a replica taken out
of rotation gets no writes to prove itself, so it must come back and try."""

NO_BLOB = "0" * 64
"""A blob name no content hashes to, asked for to see that the object store answers."""

PING_TIMEOUT_S = 1.0
"""How long a refresh waits for the workers to answer a ping."""


@dataclass
class Readiness:
    """The last refresh's findings, plus the outcome of the writes this process made."""

    min_free_bytes: int
    checks: dict[str, str] = field(default_factory=lambda: {"refresh": "not run yet"})
    workers_alive: int = 0
    disk_free_bytes: int = -1
    last_write_ok: float = 0.0
    last_write_failed: float = 0.0
    write_error: str = ""

    def failing(self) -> dict[str, str]:
        """Each part that is not ready, with why."""
        bad = {part: why for part, why in self.checks.items() if why != "ok"}
        recent = time.monotonic() - self.last_write_failed < WRITE_FAILURE_HOLDS_S
        if recent and self.last_write_failed > self.last_write_ok:
            bad["writes"] = f"the last write failed: {self.write_error}"
        return bad

    def disk_low(self) -> str | None:
        """Why new work should be refused for lack of disk, or None."""
        if 0 <= self.disk_free_bytes < self.min_free_bytes:
            return (
                f"{self.disk_free_bytes // 2**20} MiB free in the data directory, "
                f"below the {self.min_free_bytes // 2**20} MiB minimum"
            )
        return None

    def wrote(self) -> None:
        self.last_write_ok = time.monotonic()

    def noted(self, outage: Outage, *, writing: bool) -> None:
        """A request met an outage: if it was writing, a failed write until a later one
        succeeds or WRITE_FAILURE_HOLDS_S pass."""
        if writing and outage.part in ("database", "disk"):
            self.last_write_failed = time.monotonic()
            self.write_error = f"{outage.part}: {outage.reason}"


def watch_writes(services: Services, readiness: Readiness) -> None:
    """Count every commit of this process's sessions as a write that worked, but the audit
    log's: the entry of a refused write must not make that refusal look healed."""

    def committed(session: Session) -> None:
        if not session.info.get(AUDIT_WRITE):
            readiness.wrote()

    event.listen(services.sessions, "after_commit", committed)


def _database(services: Services) -> str:
    try:
        with services.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        outage = outage_of(exc)
        return f"{outage.reason}" if outage else f"error: {type(exc).__name__}"
    return "ok"


def _redis(services: Services) -> str:
    try:
        services.redis.ping()
    except (RedisError, OSError) as exc:
        return f"unreachable ({type(exc).__name__})"
    return "ok"


def _storage(services: Services) -> str:
    try:
        services.storage.has(NO_BLOB)  # absent: a HEAD (or a stat) that proves the way there
    except StorageError as exc:
        return str(exc)
    return "ok"


def _workers(services: Services) -> tuple[int, str]:
    try:
        replies = services.celery.control.ping(timeout=PING_TIMEOUT_S)
    except (KombuOperationalError, RedisError, OSError) as exc:
        return 0, f"cannot ask the workers ({type(exc).__name__})"
    if not replies:
        return 0, f"no worker answered a ping within {PING_TIMEOUT_S:g} s"
    return len(replies), "ok"


def _disk(directory: Path, readiness: Readiness) -> str:
    # Before anything is written there, the data directory may not exist yet.
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    try:
        readiness.disk_free_bytes = shutil.disk_usage(directory).free
    except OSError as exc:
        return f"cannot read free space of {directory} ({exc.strerror})"
    low = readiness.disk_low()
    return low or "ok"


def refresh(services: Services, readiness: Readiness) -> None:
    """One round of probes (blocking: run it in a thread of its own). The store first and
    the slow ping last: a refresh that outlives the app must not open a connection after
    the pool was closed."""
    database = _database(services)
    redis = _redis(services)
    disk = _disk(services.settings.data_dir, readiness)
    storage = _storage(services)
    workers, workers_check = _workers(services)
    readiness.workers_alive = workers
    readiness.checks = {
        "database": database,
        "redis": redis,
        "workers": workers_check,
        "disk": disk,
        "storage": storage,
    }


class Refresher:
    """Refreshes the readiness state every `interval_s` on a thread of its own, so the
    probes never wait for a request thread, and a slow probe never holds up shutdown."""

    def __init__(self, services: Services, readiness: Readiness, interval_s: float) -> None:
        self._services, self._readiness, self._interval_s = services, readiness, interval_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="autan-readiness", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop, and wait for a refresh under way: it must not use a store being closed."""
        self._stopped.set()
        self._thread.join(timeout=PING_TIMEOUT_S + 5)

    def _run(self) -> None:
        while not self._stopped.is_set():
            refresh(self._services, self._readiness)
            self._stopped.wait(self._interval_s)
