"""Fixtures over real services: a private Redis, SQLite and PostgreSQL stores, worker processes."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from orchestrator.config import OrchestratorSettings
from orchestrator.models import utcnow
from orchestrator.reporting import Reporters
from orchestrator.services import Services
from orchestrator.tokens import create_token
from tests.live import LiveApi, serve
from tests.object_storage import S3Server
from tests.services import PostgresDatabases, RedisServer
from tests.workers import WorkerPool
from web.app import create_app
from web.config import WebSettings

TEST_RUNNER = "tests.orchestrator.runners:ScriptedRunner"

# The suite's API servers let admins submit repositories on this machine, as `autan up` does
# for its own admin token: most tests work on a local repository.
os.environ["AUTAN_ALLOW_LOCAL_REPOS"] = "true"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    if redis_server.process is None:  # a test restarted it and failed half-way
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresDatabases]:
    databases = PostgresDatabases()
    yield databases
    databases.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'autan.db'}"
        return
    databases: PostgresDatabases = request.getfixturevalue("postgres")
    url = databases.create()
    yield url
    databases.drop(url)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("s3") / "moto.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def storage_fields() -> dict[str, str]:
    """OrchestratorSettings fields of the object store: none, blobs in the data directory.
    A module overrides it to run on S3 (tests/sync/conftest.py's `paired_storage`)."""
    return {}


@pytest.fixture
def settings(
    tmp_path: Path, database_url: str, redis_url: str, storage_fields: dict[str, str]
) -> OrchestratorSettings:
    return OrchestratorSettings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        redis_url=redis_url,
        runner=TEST_RUNNER,
        heartbeat_interval_s=0.2,
        # Generous: a loaded 2-core CI machine must not make a live worker look dead.
        heartbeat_timeout_s=3.0,
        reconcile_interval_s=0.3,
        requeue_grace_s=0.5,
        attempt_time_limit_s=60,
        queue_name=f"autan.test.{uuid.uuid4().hex[:8]}",
        **storage_fields,
    )


@pytest.fixture
def services(settings: OrchestratorSettings) -> Iterator[Services]:
    services = Services(settings, reporters=Reporters())
    services.migrate()
    yield services
    services.close()


@pytest.fixture
def workers(settings: OrchestratorSettings, tmp_path: Path) -> Iterator[WorkerPool]:
    logs = tmp_path / "worker-logs"
    logs.mkdir()
    pool = WorkerPool(settings, logs)
    yield pool
    pool.stop_all()


@pytest.fixture
def admin_token(services: Services) -> str:
    with services.sessions.begin() as session:
        return create_token(session, name="admin", is_admin=True, now=utcnow())


@pytest.fixture
def api(services: Services, admin_token: str) -> Iterator[TestClient]:
    """The app in-process, with the admin token on every request."""
    app = create_app(services, WebSettings())
    with TestClient(app, headers={"Authorization": f"Bearer {admin_token}"}) as client:
        yield client


@contextmanager
def without_token(api: TestClient) -> Iterator[TestClient]:
    """The same client with no token: on the app's own event loop, which a second
    TestClient of the same app would not share with the app's async Redis client."""
    token = api.headers.pop("Authorization")
    try:
        yield api
    finally:
        api.headers["Authorization"] = token


@pytest.fixture
def live_api(services: Services, admin_token: str) -> Iterator[LiveApi]:
    """The app served for real on a loopback port (for the CLI and streaming clients)."""
    live = serve(services, admin_token)
    yield live
    live.stop()
