"""The API under load on loopback: submissions from many clients while many event streams follow.

`run_load` is shared with the load test (tests/web/test_load.py), which asserts on
what it counts; the benchmark reports its latencies and error counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.bench.env import api_process, bench_env
from tests.bench.stats import summary_ms

SETUP_CONCURRENCY = 20
"""Clients that create, and later cancel, the followed tasks: setup, not the load measured."""


@dataclass
class Load:
    """What the clients saw."""

    codes: Counter[int] = field(default_factory=Counter)
    """Status of every submission and read the load clients made."""
    latencies: list[float] = field(default_factory=list)
    """Seconds per submission, answered or shed."""
    bad: list[str] = field(default_factory=list)
    """Answers no client should see: 5xx other than a 503 with Retry-After, timeouts."""
    streams: int = 0
    streams_done: int = 0
    """Streams that saw their task's end."""
    stream_sheds: int = 0
    """Stream opens answered 503 (the client retried after Retry-After)."""
    livez: Counter[str] = field(default_factory=Counter)
    created: set[str] = field(default_factory=set)
    wall_s: float = 0.0

    def note(self, r: httpx.Response, what: str) -> None:
        self.codes[r.status_code] += 1
        if r.status_code == 503 and r.headers.get("Retry-After", "").isdigit():
            return
        if r.status_code >= 500:
            self.bad.append(f"{what}: {r.status_code} {r.text[:200]}")


async def _back_off(r: httpx.Response, over: asyncio.Event) -> bool:
    """Wait what a shed 503's Retry-After asks, as a well-behaved client does; False when the
    load ended meanwhile (it failed elsewhere): nothing is left to retry for."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(over.wait(), float(r.headers.get("Retry-After", "1")))
    return not over.is_set()


async def _setup_call(
    http: httpx.AsyncClient, over: asyncio.Event, method: str, url: str, **kw: Any
) -> httpx.Response:
    """A setup request, repeated after a shed 503."""
    for _ in range(60):
        r = await http.request(method, url, **kw)
        if r.status_code != 503:
            return r
        if not await _back_off(r, over):
            raise RuntimeError(f"{method} {url}: the load ended while it waited to retry")
    raise RuntimeError(f"{method} {url} was shed 60 times in a row")


async def _follow(
    http: httpx.AsyncClient, task_id: str, load: Load, opened: asyncio.Event, over: asyncio.Event
) -> None:
    """Follow until the task's end arrives, reconnecting from the last id as EventSource does."""
    last = "0"
    while True:
        headers = {"Last-Event-ID": last}
        async with http.stream("GET", f"/api/tasks/{task_id}/events", headers=headers) as r:
            if r.status_code == 503:
                load.stream_sheds += 1
                if await _back_off(r, over):
                    continue
                return
            if r.status_code != 200:
                load.bad.append(f"stream {task_id}: {r.status_code}")
                return
            opened.set()
            async for line in r.aiter_lines():
                if line.startswith("id: "):
                    last = line[4:]
                elif line == "event: task.finished":
                    load.streams_done += 1
                    return


async def _client(http: httpx.AsyncClient, counter: Any, load: Load) -> None:
    for i in counter:
        started = time.perf_counter()
        r = await http.post("/api/tasks", json={"repo": "/srv/load.git", "instruction": f"t{i}"})
        load.latencies.append(time.perf_counter() - started)
        load.note(r, "POST /api/tasks")
        if r.status_code == 201:
            load.created.add(r.json()["id"])
            load.note(await http.get(f"/api/tasks/{r.json()['id']}"), "GET /api/tasks/ID")


async def _watch_livez(http: httpx.AsyncClient, load: Load, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            r = await http.get("/livez", timeout=5)
            load.livez[str(r.status_code)] += 1
        except httpx.TimeoutException:
            load.livez["timeout"] += 1
        with contextlib.suppress(TimeoutError):  # the next probe, or the end of the load
            await asyncio.wait_for(stop.wait(), 0.2)


async def run_load(base: str, token: str, *, clients: int, submissions: int, streams: int) -> Load:
    """`streams` followers on tasks of their own, `clients` clients submitting `submissions`
    tasks between them; then the followed tasks are cancelled and every stream must end."""
    load = Load(streams=streams)
    # Idle connections are dropped before uvicorn's 5 s keep-alive ends them: reusing one
    # the server is closing fails the request without an answer (a client's race, not ours).
    limits = httpx.Limits(
        max_connections=clients + streams + 10, max_keepalive_connections=None, keepalive_expiry=2
    )
    headers = {"Authorization": f"Bearer {token}"}
    over = asyncio.Event()  # the prober stops; on a failure, whatever waits to retry gives up
    async with httpx.AsyncClient(
        base_url=base, headers=headers, limits=limits, timeout=120
    ) as http:
        gate = asyncio.Semaphore(SETUP_CONCURRENCY)

        async def setup(method: str, url: str, **kw: Any) -> httpx.Response:
            async with gate:
                return await _setup_call(http, over, method, url, **kw)

        try:
            made = await asyncio.gather(
                *(
                    setup("POST", "/api/tasks", json={"repo": "/srv/load.git", "instruction": "f"})
                    for _ in range(streams)
                )
            )
            followed = [r.json()["id"] for r in made]
            opened = [asyncio.Event() for _ in followed]
            followers = [
                asyncio.create_task(_follow(http, task_id, load, event, over))
                for task_id, event in zip(followed, opened, strict=True)
            ]
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in opened)), 120)
            watcher = asyncio.create_task(_watch_livez(http, load, over))
            counter = iter(range(submissions))
            wall = time.perf_counter()
            await asyncio.gather(*(_client(http, counter, load) for _ in range(clients)))
            load.wall_s = time.perf_counter() - wall
            await asyncio.gather(*(setup("POST", f"/api/tasks/{t}/cancel") for t in followed))
            await asyncio.wait_for(asyncio.gather(*followers), 120)
        finally:
            over.set()
        await watcher
    return load


def bench_load(database: str, *, submissions: int, clients: int, streams: int) -> dict[str, Any]:
    with bench_env(database, "none") as bench, api_process(bench) as base:
        load = asyncio.run(
            run_load(base, bench.token, clients=clients, submissions=submissions, streams=streams)
        )
    return {
        "figure": "POST /api/tasks under load, with event streams open",
        "database": database,
        "clients": clients,
        "submissions": submissions,
        **summary_ms(load.latencies),
        "requests_per_s": round(submissions / load.wall_s, 1),
        "codes": {str(code): n for code, n in sorted(load.codes.items())},
        "bad": len(load.bad),
        "streams": load.streams,
        "streams_complete": load.streams_done,
        "stream_sheds": load.stream_sheds,
        "livez": dict(load.livez),
    }


async def _hammer(base: str, token: str, total: int, concurrency: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {token}"}
    counter = iter(range(total))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base, headers=headers, limits=limits, timeout=30
    ) as client:

        async def one_client() -> None:
            for i in counter:
                started = time.perf_counter()
                r = await client.post(
                    "/api/tasks", json={"repo": "/srv/bench.git", "instruction": f"task {i}"}
                )
                latencies.append(time.perf_counter() - started)
                if r.status_code != 201:
                    raise RuntimeError(f"POST /api/tasks answered {r.status_code}: {r.text}")

        wall = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        return latencies, time.perf_counter() - wall


def bench_submit(database: str, *, total: int, concurrency: int) -> dict[str, Any]:
    with bench_env(database, "none") as bench, api_process(bench) as base:
        asyncio.run(_hammer(base, bench.token, min(100, total), concurrency))  # warm up
        latencies, wall = asyncio.run(_hammer(base, bench.token, total, concurrency))
    return {
        "figure": "POST /api/tasks",
        "database": database,
        "concurrency": concurrency,
        **summary_ms(latencies),
        "requests_per_s": round(total / wall, 1),
    }
