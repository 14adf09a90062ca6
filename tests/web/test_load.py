"""The API as a separate uvicorn process under 100 clients and 200 open event streams."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from orchestrator.models import Task
from tests.bench.api import run_load
from tests.bench.env import api_process, bench_env


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_many_clients_and_streams_get_answers_or_a_quick_503_never_a_hang(database: str) -> None:
    with bench_env(database, "none") as bench, api_process(bench) as base:
        # A thread of its own: the browser tests' Playwright keeps a loop in this one.
        with ThreadPoolExecutor(1) as pool:
            load = pool.submit(
                asyncio.run,
                run_load(base, bench.token, clients=100, submissions=300, streams=200),
            ).result()
        with bench.services.sessions() as session:
            stored = {t for (t,) in session.query(Task.id).filter(Task.instruction != "f")}
    assert load.bad == []
    assert set(load.codes) <= {200, 201, 503}, load.codes
    assert load.codes[201] > 0
    assert load.streams_done == 200
    assert set(load.livez) == {"200"}, load.livez
    # Every 201 a client heard is a stored task, and no task was stored unheard of.
    assert stored == load.created
