"""`python -m tests.bench.serving`: the client against a bare httpx call, same scripted server;
and the router's fail-over when an endpoint dies.

The scripted server runs in its own process (so it does not share our GIL), answering at once.
Figures: time to first token when streaming, whole-reply time when not, p50/p99 of each, and
the client's overhead as the difference of the medians. Fail-over: two scripted servers behind
the router the agent runner builds (same client settings); one is killed (SIGKILL) between two
calls, or while a call is in flight on it; the figure is the time from the kill to the reply of
the other endpoint to the call that met the dead one.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from orchestrator.agent_runner import AgentRunnerSettings
from serving.base import Completion, Message, ToolSpec
from serving.client import ClientConfig, OpenAIClient
from serving.router import Router
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
def scripted_process(
    delay_ms: int = 0,
    started: Callable[[subprocess.Popen[bytes]], None] | None = None,
    script: dict[str, Any] | None = None,
) -> Iterator[str]:
    """The scripted model in a process of its own, answering `script` (default SCRIPT)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.json"
        path.write_text(json.dumps({**(script or SCRIPT), "delay_ms": delay_ms}))
        port = free_port()
        command = [
            sys.executable,
            "-m",
            "cli.model",
            "scripted",
            "--port",
            str(port),
            "--script",
            str(path),
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if started is not None:
            started(process)
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


def failover_once(mid_call: bool, delay_ms: int) -> float:
    """Seconds from killing the endpoint that a call goes to, to that call's reply by the other."""
    processes: dict[str, subprocess.Popen[bytes]] = {}
    with (
        scripted_process(delay_ms, lambda p: processes.setdefault("a", p)) as a,
        scripted_process(delay_ms, lambda p: processes.setdefault("b", p)) as b,
    ):
        settings = AgentRunnerSettings(model_url=f"{a},{b}", model_name="scripted")
        router = Router(settings.router_config())
        by_name = {
            e.name: processes[key] for e, key in zip(router.config.endpoints, "ab", strict=True)
        }
        victim = router.complete(MESSAGES, tools=TOOLS).endpoint
        survivor = router.complete(MESSAGES, tools=TOOLS).endpoint  # ties alternate
        assert victim != survivor, (victim, survivor)
        replies: list[tuple[Completion, float]] = []

        def call() -> None:
            replies.append((router.complete(MESSAGES, tools=TOOLS), time.perf_counter()))

        if mid_call:  # the next call goes to the victim (idle longest); kill it in flight
            caller = threading.Thread(target=call)
            caller.start()
            wait_until(lambda: router.status()[_index(router, victim)]["outstanding"])
            killed = _kill(by_name[victim])
            caller.join()
        else:
            killed = _kill(by_name[victim])
            call()
        reply, answered = replies[0]
        assert reply.endpoint == survivor, reply.endpoint
        router.close()
        return answered - killed


def _index(router: Router, name: str) -> int:
    return [e.name for e in router.config.endpoints].index(name)


def _kill(process: subprocess.Popen[bytes]) -> float:
    """SIGKILL, and the moment it was sent; waits for the process to be gone."""
    at = time.perf_counter()
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    return at


def bench_failover(trials: int, delay_ms: int = 200) -> list[dict[str, Any]]:
    results = []
    for mid_call in (False, True):
        delay = delay_ms if mid_call else 0
        times = [failover_once(mid_call, delay) for _ in range(trials)]
        results.append(
            {
                "figure": "fail-over: endpoint killed to the next reply by another",
                "when": "a call in flight" if mid_call else "between two calls",
                "reply_delay_ms": delay,
                **summary_ms(times),
            }
        )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.serving")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--failover-trials", type=int, default=10)
    args = parser.parse_args()
    for result in [*bench_client(args.requests), *bench_failover(args.failover_trials)]:
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
