"""Real services for the tests: private redis-server processes and throwaway PostgreSQL databases."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import psycopg
import redis

from tests.waiting import wait_until

POSTGRES_URL = os.environ.get(
    "AUTAN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


class RedisServer:
    """A redis-server of the test's own, on a Unix socket, keeping nothing on disk."""

    def __init__(self, directory: Path) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed: run `make install`")
        self.directory = directory
        self.socket = directory / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                "0",
                "--unixsocket",
                str(self.socket),
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(unix_socket_path=str(self.socket))
        wait_until(lambda: self._pings(client), timeout=10, what="redis-server to answer")
        client.close()

    @staticmethod
    def _pings(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except (redis.ConnectionError, FileNotFoundError):
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None
        self.socket.unlink(missing_ok=True)

    def restart(self) -> None:
        """Like a crash and restart of a Redis that persists nothing: every key is gone."""
        self.stop()
        self.start()


class PostgresDatabases:
    """Makes a fresh database per test; fails loudly when PostgreSQL is not there."""

    def __init__(self, admin_url: str = POSTGRES_URL) -> None:
        self.admin_url = admin_url
        try:
            self._conn = psycopg.connect(admin_url, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError as exc:
            raise RuntimeError(
                f"PostgreSQL is not reachable at {admin_url} ({exc}); "
                "run infra/scripts/ensure-services.sh or set AUTAN_TEST_POSTGRES_URL"
            ) from exc
        self._made: list[str] = []

    def create(self) -> str:
        name = f"autan_test_{uuid.uuid4().hex[:12]}"
        self._conn.execute(f'CREATE DATABASE "{name}"')
        self._made.append(name)
        base = self.admin_url.rsplit("/", 1)[0]
        return f"{base}/{name}"

    def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        self._conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._made.remove(name)

    def close(self) -> None:
        for name in list(self._made):
            self._conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._conn.close()
