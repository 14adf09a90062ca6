"""`python -m tests.bench.agent`: the agent loop's own overhead per step, and 32 attempts at once.

Prints one JSON object per figure. Both run the real loop over HTTP against the scripted model
and real `local` sandboxes; the parallel figure uses threads calling the loop directly.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from agent import Agent, AgentConfig
from sandbox import SandboxConfig, create_sandbox
from serving import ClientConfig, OpenAIClient
from serving.script import Script
from serving.scripted import start_in_thread
from tests.agent.bugs import BUGS, make_repo
from tests.bench.stats import summary_ms

READ = {"name": "read_file", "arguments": {"path": "lib.py"}}
BASH = {"name": "bash", "arguments": {"command": "true"}}


def _script(steps: int, delay_ms: int) -> Script:
    """`steps - 1` steps of reading and a command, then finish."""
    finish = {"name": "finish", "arguments": {"summary": "done"}}
    turns = [{"tool_calls": [READ, BASH]} for _ in range(steps - 1)] + [{"tool_calls": [finish]}]
    return Script.model_validate({"delay_ms": delay_ms, "turns": turns})


def _run(url: str, base: Path, root: Path, steps: int) -> Any:
    with (
        OpenAIClient(ClientConfig(base_url=url, model="scripted")) as model,
        create_sandbox(base, SandboxConfig(backend="local", root=root)) as sandbox,
    ):
        agent = Agent(model, sandbox, config=AgentConfig(max_steps=steps + 1, max_tokens=10**10))
        return agent.run(BUGS[0].task)


def bench_overhead(base: Path, root: Path, steps: int) -> dict[str, Any]:
    server = start_in_thread(_script(steps, 0))
    try:
        result = _run(server.url, base, root, steps)
    finally:
        server.stop()
    assert result.finished, result.message
    overhead = [t.overhead_s for t in result.timings]
    return {
        "figure": "agent_step_overhead",
        "goal_p50_ms": 5,
        **summary_ms(overhead),
        "model_p50_ms": summary_ms([t.model_s for t in result.timings])["p50_ms"],
        "tool_p50_ms": summary_ms([t.tool_s for t in result.timings])["p50_ms"],
    }


def bench_parallel(
    base: Path, root: Path, attempts: int, steps: int, delay_ms: int
) -> dict[str, Any]:
    server = start_in_thread(_script(steps, delay_ms))
    results: list[Any] = []
    lock = threading.Lock()

    def one() -> None:
        result = _run(server.url, base, root, steps)
        with lock:
            results.append(result)

    threads = [threading.Thread(target=one) for _ in range(attempts)]
    started = time.perf_counter()
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        server.stop()
    total = time.perf_counter() - started
    ideal = steps * delay_ms / 1000
    return {
        "figure": "agent_parallel_attempts",
        "attempts": attempts,
        "finished": sum(1 for r in results if r.finished),
        "steps_each": steps,
        "reply_delay_ms": delay_ms,
        "total_s": round(total, 3),
        "ideal_s": ideal,
        "ratio": round(total / ideal, 3),
    }


def main_figures(
    steps: int = 200, attempts: int = 32, parallel_steps: int = 10, delay_ms: int = 300
) -> list[dict[str, Any]]:
    """Both figures of the agent issue, on one generated repository."""
    with tempfile.TemporaryDirectory(prefix="autan-bench-agent-") as tmp:
        base = make_repo(Path(tmp), BUGS[0])
        root = Path(tmp) / "sandboxes"
        return [
            bench_overhead(base, root, steps),
            bench_parallel(base, root, attempts, parallel_steps, delay_ms),
        ]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.agent")
    parser.add_argument("--steps", type=int, default=200, help="steps of the overhead run")
    parser.add_argument("--attempts", type=int, default=32)
    parser.add_argument("--parallel-steps", type=int, default=10)
    parser.add_argument("--delay-ms", type=int, default=300)
    args = parser.parse_args()
    for figure in main_figures(args.steps, args.attempts, args.parallel_steps, args.delay_ms):
        print(json.dumps(figure), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
