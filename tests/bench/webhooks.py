"""Webhook received to answered, p50/p99, at a fixed rate on loopback, for GitHub and Slack.

Open loop: requests leave on a fixed schedule whether or not earlier ones were answered,
and latency counts from the scheduled moment, so a server falling behind shows in p99.
The API runs under uvicorn in its own process, wired to fake GitHub and Slack servers
in this one; each request is a new signed delivery that starts a task. The API only
verifies, de-duplicates and queues each delivery's intake job in Redis; no worker runs,
so this measures answering alone and the jobs stay queued (`intake_jobs_queued`).

    python -m tests.bench.webhooks [--rate 200] [--seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import httpx
import redis

from orchestrator.queue import intake_queue
from tests.bench.env import Bench, api_process, bench_env
from tests.bench.stats import summary_ms
from tests.integrations import signing
from tests.integrations.fake_github import FakeGitHub, Issue
from tests.integrations.fake_slack import FakeSlack

Request = tuple[str, bytes, dict[str, str]]


@contextmanager
def hooked_api(bench: Bench, github: FakeGitHub, slack: FakeSlack) -> Iterator[str]:
    data_dir = bench.settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "autan.toml").write_text(
        '[repos.app]\nurl = "/srv/app.git"\ngithub = "acme/app"\n\n'
        '[slack]\nusers = ["*"]\n\n[slack.channels]\nC1 = "app"\n'
    )
    env = {
        "AUTAN_GITHUB_WEBHOOK_SECRET": signing.GITHUB_SECRET,
        "AUTAN_GITHUB_TOKEN": "ghp_bench_token_0123456789",
        "AUTAN_GITHUB_API_URL": github.url,
        "AUTAN_GITHUB_REQUEST_INTERVAL_S": "0",
        "AUTAN_GITHUB_WRITE_INTERVAL_S": "0",
        "AUTAN_SLACK_SIGNING_SECRET": signing.SLACK_SECRET,
        "AUTAN_SLACK_BOT_TOKEN": "xoxb-bench-0123456789",
        "AUTAN_SLACK_API_URL": slack.url + "/api/",
    }
    with api_process(bench, env=env) as base:
        yield base


def github_request() -> Request:
    payload = {
        "action": "labeled",
        "label": {"name": "autan"},
        "issue": {"number": 7, "title": "bench", "body": "bench"},
        "repository": {"full_name": "acme/app"},
        "sender": {"login": "octocat", "type": "User"},
    }
    body, headers = signing.github("issues", payload, delivery=str(uuid.uuid4()))
    return "/hooks/github", body, headers


def slack_request() -> Request:
    form = {
        "command": "/autan",
        "text": f"app bench {uuid.uuid4().hex}",
        "user_id": "U1",
        "channel_id": "C1",
        "trigger_id": uuid.uuid4().hex,
        "response_url": "http://127.0.0.1:9/r",
    }
    body, headers = signing.slack(urlencode(form))
    return "/hooks/slack/commands", body, headers


async def open_loop(
    base: str, make: Callable[[], Request], rate: float, seconds: float
) -> list[float]:
    requests = [make() for _ in range(int(rate * seconds))]
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=500, max_keepalive_connections=500)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def one(due: float, request: Request) -> None:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            path, body, headers = request
            response = await client.post(path, content=body, headers=headers)
            latencies.append(time.perf_counter() - due)
            if response.status_code != 200 or not (
                "accepted" in response.text or "On it" in response.text
            ):
                raise RuntimeError(f"{path} answered {response.status_code}: {response.text}")

        start = time.perf_counter() + 0.2
        await asyncio.gather(*(one(start + i / rate, r) for i, r in enumerate(requests)))
    return latencies


def bench_webhooks(rate: float, seconds: float) -> list[dict[str, Any]]:
    github, slack = FakeGitHub().start(), FakeSlack().start()
    github.permissions["octocat"] = "write"
    github.issues[7] = Issue("bench", "bench")
    figures = []
    try:
        with bench_env("sqlite", "none") as bench, hooked_api(bench, github, slack) as base:
            for name, make in (("github", github_request), ("slack", slack_request)):
                asyncio.run(open_loop(base, make, rate, 0.5))  # warm up
                latencies = asyncio.run(open_loop(base, make, rate, seconds))
                client = redis.Redis.from_url(bench.settings.resolved_redis_url)
                depth = int(client.llen(intake_queue(bench.settings.queue_name)))
                client.close()
                figures.append(
                    {
                        "figure": f"webhook {name} received to answered",
                        "rate_per_s": rate,
                        "seconds": seconds,
                        "worker": "none",
                        "intake_jobs_queued": depth,
                        **summary_ms(latencies),
                    }
                )
    finally:
        github.stop()
        slack.stop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    for figure in bench_webhooks(args.rate, args.seconds):
        print(json.dumps(figure), flush=True)


if __name__ == "__main__":
    main()
