"""Engines, sessions and migrations for the store (SQLite embedded, PostgreSQL in production)."""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from pydantic import BaseModel, Field
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.errors import StoreUnavailable

MIGRATIONS = Path(__file__).with_name("migrations")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    # WAL lets the API read while a worker writes; busy_timeout makes writers queue, not fail.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class PoolConfig(BaseModel):
    """How many connections a process keeps to the store, and how long it waits for one.

    A process needs one connection per thread that touches the store at once: the API
    holds one per worker thread (never two), a worker one per attempt plus its heartbeats.
    """

    size: int = Field(default=10, ge=1)
    """Connections kept open."""

    overflow: int = Field(default=20, ge=0)
    """Connections opened past `size` under a burst, closed again when returned."""

    timeout_s: float = Field(default=30.0, gt=0)
    """How long a caller waits for a free connection before the pool gives up (TimeoutError)."""

    connect_timeout_s: int = Field(default=5, ge=1)
    """PostgreSQL: how long opening a connection (TCP, TLS, authentication) may take."""

    keepalive_idle_s: int = Field(default=10, ge=1)
    """PostgreSQL: silence on a connection after which TCP keepalive probes start."""

    keepalive_interval_s: int = Field(default=5, ge=1)
    """PostgreSQL: time between unanswered keepalive probes."""

    keepalive_count: int = Field(default=3, ge=1)
    """PostgreSQL: unanswered probes after which the connection is declared dead."""

    def postgres_connect_args(self) -> dict[str, int]:
        """libpq options that bound how long a dropped network can block a caller.

        Keepalives find a dead peer on an idle connection; they are not sent while a
        write is unacknowledged, so `tcp_user_timeout` bounds that case with the same
        budget (otherwise the kernel retransmits for about 15 minutes).
        """
        dead_after_s = self.keepalive_idle_s + self.keepalive_interval_s * self.keepalive_count
        return {
            "connect_timeout": self.connect_timeout_s,
            "keepalives": 1,
            "keepalives_idle": self.keepalive_idle_s,
            "keepalives_interval": self.keepalive_interval_s,
            "keepalives_count": self.keepalive_count,
            "tcp_user_timeout": dead_after_s * 1000,
        }


def make_engine(url: str, pool: PoolConfig | None = None) -> Engine:
    pool = pool or PoolConfig()
    sizing: dict[str, Any] = {
        "pool_size": pool.size,
        "max_overflow": pool.overflow,
        "pool_timeout": pool.timeout_s,
    }
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        if parsed.database in (None, "", ":memory:"):
            sizing = {}  # one shared in-memory connection (SingletonThreadPool), nothing to size
        engine = create_engine(url, connect_args={"timeout": 30}, **sizing)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return create_engine(
        url, pool_pre_ping=True, connect_args=pool.postgres_connect_args(), **sizing
    )


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def write_gate(engine: Engine) -> AbstractContextManager[Any]:
    """What a writer holds in this process while its transaction runs.

    SQLite has one writer at a time, and its busy handler waits in sleeps of up to
    100 ms; queueing this process's writers on a lock keeps that back-off for the
    rare writer of another process. PostgreSQL needs no gate.
    """
    return threading.Lock() if engine.dialect.name == "sqlite" else nullcontext()


MIGRATION_LOCK_ID = 0x4155_5441_4E  # "AUTAN": one advisory lock for every process


@contextmanager
def _sqlite_migration_lock(engine: Engine) -> Iterator[None]:
    """SQLite runs DDL outside the driver's transactions: lock a file beside the database,
    held until the migration has committed."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (`alembic upgrade head`)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        # Only one process migrates at a time; the others wait, then find nothing to do.
        with _sqlite_migration_lock(engine), engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                # Held until this transaction commits, migration included.
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID}
                )
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except OperationalError as exc:
        raise StoreUnavailable(
            f"cannot migrate the database at {engine.url.render_as_string(hide_password=True)}: "
            f"{exc.orig}; check AUTAN_DATABASE_URL and that the server is running"
        ) from exc
