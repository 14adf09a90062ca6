"""Webhook received to answered, p50/p99, for each service at 16 concurrent deliveries, on
SQLite and on PostgreSQL.

Closed loop: 16 senders each post a new signed delivery as soon as their last one is
answered, so 16 are always in flight; latency is a request's send to its answer. The API
runs under uvicorn in its own process, wired to fake GitHub and Slack servers in this one;
every delivery starts a task. Each service only verifies, de-duplicates and queues the
delivery's intake job in Redis (no worker runs, so the jobs stay queued:
`intake_jobs_queued`).

    python -m tests.bench.webhooks [--deliveries 400] [--concurrency 16] [--database sqlite]
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
        '[slack]\nusers = ["*"]\n\n[slack.channels]\nC1 = "app"\n\n'
        '[jira.projects]\nAPP = "app"\n\n[sentry.projects]\nbackend = "app"\n'
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
        "AUTAN_JIRA_WEBHOOK_SECRET": signing.JIRA_SECRET,
        "AUTAN_JIRA_TOKEN": "jira-bench-token-0123456789",
        "AUTAN_JIRA_URL": "http://127.0.0.1:9",
        "AUTAN_SENTRY_CLIENT_SECRET": signing.SENTRY_SECRET,
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


def jira_request() -> Request:
    n = uuid.uuid4().int % 10**6
    payload = {
        "webhookEvent": "jira:issue_created",
        "issue": {
            "id": str(n),
            "key": f"APP-{n}",
            "fields": {
                "summary": "bench",
                "description": "bench",
                "labels": ["autan"],
                "project": {"key": "APP"},
            },
        },
    }
    body, headers = signing.jira(payload)
    return "/hooks/jira", body, headers


def sentry_request() -> Request:
    n = uuid.uuid4().int % 10**9
    payload = {
        "action": "created",
        "data": {
            "issue": {
                "id": str(n),
                "title": "ZeroDivisionError: division by zero",
                "culprit": "app.views in ratio",
                "project": {"id": "1", "slug": "backend"},
            }
        },
    }
    body, headers = signing.sentry("issue", payload)
    return "/hooks/sentry", body, headers


SERVICES: dict[str, Callable[[], Request]] = {
    "github": github_request,
    "slack": slack_request,
    "jira": jira_request,
    "sentry": sentry_request,
}


async def closed_loop(
    base: str, make: Callable[[], Request], deliveries: int, concurrency: int
) -> list[float]:
    """`deliveries` requests from `concurrency` senders, each sending its next when its last
    is answered; each request's seconds from send to answer."""
    requests = [make() for _ in range(deliveries)]
    pending = iter(requests)
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def sender() -> None:
            for path, body, headers in pending:
                sent = time.perf_counter()
                response = await client.post(path, content=body, headers=headers)
                latencies.append(time.perf_counter() - sent)
                if response.status_code != 200 or not (
                    "accepted" in response.text or "On it" in response.text
                ):
                    raise RuntimeError(f"{path} answered {response.status_code}: {response.text}")

        await asyncio.gather(*(sender() for _ in range(concurrency)))
    return latencies


def bench_webhooks(
    deliveries: int, concurrency: int = 16, databases: tuple[str, ...] = ("sqlite", "postgresql")
) -> list[dict[str, Any]]:
    github, slack = FakeGitHub().start(), FakeSlack().start()
    github.permissions["octocat"] = "write"
    github.issues[7] = Issue("bench", "bench")
    figures = []
    try:
        for database in databases:
            with bench_env(database, "none") as bench, hooked_api(bench, github, slack) as base:
                for name, make in SERVICES.items():
                    asyncio.run(closed_loop(base, make, 2 * concurrency, concurrency))  # warm up
                    began = time.perf_counter()
                    latencies = asyncio.run(closed_loop(base, make, deliveries, concurrency))
                    took = time.perf_counter() - began
                    client = redis.Redis.from_url(bench.settings.resolved_redis_url)
                    depth = int(client.llen(intake_queue(bench.settings.queue_name)))
                    client.close()
                    figures.append(
                        {
                            "figure": f"webhook {name} received to answered",
                            "database": database,
                            "concurrency": concurrency,
                            "per_s": round(deliveries / took, 1),
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
    parser.add_argument("--deliveries", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), action="append")
    args = parser.parse_args()
    databases = tuple(args.database or ("sqlite", "postgresql"))
    for figure in bench_webhooks(args.deliveries, args.concurrency, databases):
        print(json.dumps(figure), flush=True)


if __name__ == "__main__":
    main()
