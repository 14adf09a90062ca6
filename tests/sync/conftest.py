"""Sync fixtures: a checkout on disk, a counting HTTP transport, daemons on the live API."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn

from orchestrator.services import Services
from sync.config import DaemonConfig
from sync.daemon import SyncDaemon
from sync.remote import HttpRemote
from sync.state import state_file
from tests.live import LiveApi
from tests.object_storage import S3Server
from tests.waiting import wait_until
from web.app import create_app
from web.config import WebSettings


class _CountedBody(httpx.SyncByteStream):
    """A request body that adds the length of each chunk to `sizes[index]` as it goes out."""

    def __init__(self, body: httpx.SyncByteStream, sizes: list[int], index: int) -> None:
        self._body, self._sizes, self._index = body, sizes, index

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._body:
            self._sizes[self._index] += len(chunk)
            yield chunk

    def close(self) -> None:
        self._body.close()


class CountingTransport(httpx.HTTPTransport):
    """The real HTTP transport, keeping a list of the requests it sent (method and path) and
    the bytes of each one's body as it went out (JSON, or a streamed upload)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, str]] = []
        self.body_bytes: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.method, request.url.path))
        self.body_bytes.append(0)
        assert isinstance(request.stream, httpx.SyncByteStream)
        request.stream = _CountedBody(request.stream, self.body_bytes, len(self.sent) - 1)
        return super().handle_request(request)

    def count(self, method: str, prefix: str) -> int:
        return sum(1 for m, p in self.sent if m == method and p.startswith(prefix))

    def clear(self) -> None:
        self.sent.clear()
        self.body_bytes.clear()


@dataclass
class Daemons:
    """Makes daemons of checkouts against one server, and runs them in threads."""

    url: str
    token: str
    state_dir: Path
    transports: list[CountingTransport] = field(default_factory=list)
    remotes: list[HttpRemote] = field(default_factory=list)
    running: list[tuple[threading.Thread, threading.Event, SyncDaemon]] = field(
        default_factory=list
    )

    def make(self, root: Path, **config: float | str) -> SyncDaemon:
        transport = CountingTransport()
        self.transports.append(transport)
        remote = HttpRemote(self.url, self.token, transport=transport)
        self.remotes.append(remote)
        return SyncDaemon(
            root, remote, server=self.url, state_path=state_file(self.state_dir, root),
            config=DaemonConfig(**config),  # type: ignore[arg-type]
        )  # fmt: skip

    def start(self, daemon: SyncDaemon) -> threading.Event:
        stop = threading.Event()
        thread = threading.Thread(target=daemon.run, args=(stop,), name="sync-daemon")
        thread.start()
        self.running.append((thread, stop, daemon))
        return stop

    def stop_all(self) -> None:
        for thread, stop, _ in self.running:
            stop.set()
            thread.join(timeout=30)
            assert not thread.is_alive()
        self.running.clear()
        for remote in self.remotes:
            remote.close()
        self.remotes.clear()


@pytest.fixture
def paired_storage(database_url: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """The embedded set-up (SQLite, blobs on disk) and the production one (PostgreSQL, S3 on
    the test suite's moto server): both backends at no extra run. A module opts in with
    `storage_fields = paired_storage`."""
    if database_url.startswith("sqlite"):
        return {}
    server: S3Server = request.getfixturevalue("s3_server")
    return server.settings(server.bucket())


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    root.mkdir()
    return root


@pytest.fixture
def daemons(live_api: LiveApi, tmp_path: Path) -> Iterator[Daemons]:
    made = Daemons(live_api.url, live_api.token, tmp_path / "sync-state")
    yield made
    made.stop_all()


@dataclass
class Server:
    """The real API on a fixed port, that a test can take down and bring back."""

    services: Services
    port: int
    server: uvicorn.Server | None = None
    thread: threading.Thread | None = None

    def up(self) -> None:
        app = create_app(self.services, WebSettings(host="127.0.0.1", port=self.port))
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="api", daemon=True)
        self.thread.start()
        server = self.server
        wait_until(lambda: server.started, timeout=15, what="uvicorn to start")

    def down(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(timeout=15)
            self.server = self.thread = None


def git_checkout(root: Path, committed: dict[str, str], uncommitted: dict[str, str]) -> Path:
    """A git repository at `root` with `committed` in its one commit and `uncommitted` beside."""
    from tests.agent.bugs import git

    root.mkdir(parents=True, exist_ok=True)
    for name, text in committed.items():
        (root / name).write_text(text)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "start")
    for name, text in uncommitted.items():
        (root / name).write_text(text)
    return root
