"""`python -m tests.bench.serving`: the client against a bare httpx call, same scripted server.

The scripted server runs in its own process (so it does not share our GIL), answering at once.
Figures: time to first token when streaming, whole-reply time when not, p50/p99 of each, and
the client's overhead as the difference of the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from serving.base import Message, ToolSpec
from serving.client import ClientConfig, OpenAIClient
from tests.bench.stats import summary_ms
from tests.live import free_port
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = {
    "fallback": {
        "content": "Let me run the tests first, then look at the failing one.",
        "tool_calls": [{"name": "bash", "arguments": {"command": "pytest -x -q tests/"}}],
    }
}
MESSAGES = [Message("system", "You are a coding agent."), Message("user", "fix the failing test")]
TOOLS = [ToolSpec("bash", "Run a command.", {"type": "object", "properties": {"command": {}}})]


@contextmanager
def scripted_process() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "bench.json"
        script.write_text(json.dumps(SCRIPT))
        port = free_port()
        command = [
            sys.executable,
            "-m",
            "cli.model",
            "scripted",
            "--port",
            str(port),
            "--script",
            str(script),
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            url = f"http://127.0.0.1:{port}"

            def up() -> bool:
                try:
                    return httpx.get(f"{url}/health").status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(up, timeout=30, what="the scripted model")
            yield f"{url}/v1"
        finally:
            process.terminate()
            process.wait(timeout=30)


def bare_request(http: httpx.Client, url: str, stream: bool) -> float:
    """Seconds to the first `data:` line (streaming) or to the parsed reply."""
    body: dict[str, Any] = {
        "model": "scripted",
        "messages": [{"role": m.role, "content": m.content} for m in MESSAGES],
        "tools": [{"type": "function", "function": {"name": "bash", "parameters": {}}}],
    }
    started = time.perf_counter()
    if not stream:
        http.post(f"{url}/chat/completions", json=body).json()
        return time.perf_counter() - started
    first = 0.0
    with http.stream("POST", f"{url}/chat/completions", json={**body, "stream": True}) as r:
        for line in r.iter_lines():
            if line.startswith("data:") and not first:
                first = time.perf_counter() - started
    return first


def measure(run: Callable[[], float], requests: int) -> list[float]:
    for _ in range(min(50, requests)):
        run()  # warm up: connections, caches
    return [run() for _ in range(requests)]


def bench_client(requests: int) -> list[dict[str, Any]]:
    results = []
    config = ClientConfig(base_url="http://unused/v1", model="scripted")
    with scripted_process() as url, httpx.Client(timeout=30) as http:
        client = OpenAIClient(config.model_copy(update={"base_url": url}))
        figures: list[tuple[str, bool, Callable[[], float]]] = [
            ("whole reply", False, lambda: client.complete(MESSAGES, tools=TOOLS).total_s),
            (
                "time to first token",
                True,
                lambda: client.stream(MESSAGES, tools=TOOLS).first_token_s or 0.0,
            ),
        ]
        for figure, stream, via_client in figures:
            bare = summary_ms(
                measure(lambda stream=stream: bare_request(http, url, stream), requests)  # type: ignore[misc]
            )
            ours = summary_ms(measure(via_client, requests))
            results.append(
                {
                    "figure": f"client {figure}",
                    "stream": stream,
                    "bare_httpx": bare,
                    "client": ours,
                    "overhead_p50_ms": round(ours["p50_ms"] - bare["p50_ms"], 3),
                    "overhead_p99_ms": round(ours["p99_ms"] - bare["p99_ms"], 3),
                }
            )
        client.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.serving")
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    for result in bench_client(args.requests):
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
