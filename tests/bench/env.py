"""The services a benchmark runs against: a private Redis, a fresh store, an API, workers."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from orchestrator.config import OrchestratorSettings
from orchestrator.models import utcnow
from orchestrator.reporting import Reporters
from orchestrator.services import Services
from orchestrator.tokens import create_token
from tests.live import free_port
from tests.services import PostgresDatabases, RedisServer
from tests.waiting import wait_until
from tests.workers import ROOT, WorkerPool, settings_env


@dataclass
class Bench:
    settings: OrchestratorSettings
    services: Services
    token: str
    workdir: Path
    workers: WorkerPool


@contextmanager
def bench_env(database: str, runner: str) -> Iterator[Bench]:
    with tempfile.TemporaryDirectory(prefix="autan-bench-") as tmp:
        workdir = Path(tmp)
        redis = RedisServer(workdir)
        redis.start()
        postgres = PostgresDatabases() if database == "postgresql" else None
        url = postgres.create() if postgres else f"sqlite:///{workdir / 'autan.db'}"
        settings = OrchestratorSettings(
            data_dir=workdir / "data",
            database_url=url,
            redis_url=redis.url,
            runner=runner,
            queue_name=f"autan.bench.{uuid.uuid4().hex[:6]}",
        )
        services = Services(settings, reporters=Reporters())
        services.migrate()
        with services.sessions.begin() as session:
            token = create_token(session, name="bench", is_admin=True, now=utcnow())
        (workdir / "logs").mkdir()
        workers = WorkerPool(settings, workdir / "logs")
        try:
            yield Bench(settings, services, token, workdir, workers)
        finally:
            workers.stop_all()
            services.close()
            if postgres:
                postgres.close()
            redis.stop()


@contextmanager
def api_process(
    bench: Bench, *, workers: int = 1, env: dict[str, str] | None = None
) -> Iterator[str]:
    """The API under uvicorn in its own process, as production runs it; `env` adds settings."""
    port = free_port()
    # Its admin may submit local repositories, as under `autan up`.
    env = settings_env(bench.settings) | {"AUTAN_ALLOW_LOCAL_REPOS": "true"} | (env or {})
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "web.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
        cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(base), timeout=30, what="the API to start")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=15)


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
