"""POST /api/tasks on loopback: latency percentiles and requests per second."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from tests.bench.env import api_process, bench_env
from tests.bench.stats import summary_ms


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
