"""A PostgreSQL server that accepts and then goes silent fails a caller within the connect timeout."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from orchestrator.db import PoolConfig, make_engine
from tests.services import PostgresDatabases


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts TCP connections and never answers them: a database behind a dropped network."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, name="silent", daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()
    for conn in accepted:
        conn.close()


def test_a_silent_server_fails_the_connect_instead_of_hanging(silent_server: int) -> None:
    engine = make_engine(
        f"postgresql://autan@127.0.0.1:{silent_server}/autan",
        PoolConfig(size=1, overflow=0, connect_timeout_s=2),
    )
    outcome: list[BaseException] = []

    def connect() -> None:
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except BaseException as exc:  # the outcome is what the test asserts
            outcome.append(exc)

    caller = threading.Thread(target=connect, daemon=True)
    caller.start()
    # Generous against a loaded machine, and far below the minutes libpq waits without it.
    caller.join(timeout=30)
    assert not caller.is_alive(), "the connect still hangs on a silent server"
    assert len(outcome) == 1 and isinstance(outcome[0], OperationalError)
    assert "timeout" in str(outcome[0]).lower()
    engine.dispose()


def test_connections_to_postgresql_carry_the_timeouts_and_keepalives(
    postgres: PostgresDatabases,
) -> None:
    url = postgres.create()
    engine = make_engine(url, PoolConfig(connect_timeout_s=3, keepalive_idle_s=7))
    try:
        with engine.connect() as connection:
            params = connection.connection.driver_connection.info.get_parameters()  # type: ignore[union-attr]
    finally:
        engine.dispose()
        postgres.drop(url)
    assert params["connect_timeout"] == "3"
    assert params["keepalives"] == "1"
    assert params["keepalives_idle"] == "7"
    assert params["keepalives_count"] == "3"
    assert params["tcp_user_timeout"] == str((7 + 5 * 3) * 1000)
