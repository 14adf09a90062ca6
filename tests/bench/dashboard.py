"""The dashboard: the tasks page over 10,000 tasks, and an event from a worker to the browser.

The tasks page is timed as a client on loopback sees it (request sent to last byte),
against the API under uvicorn in its own process, with a signed-in session cookie.
The event figures run Chromium on the same machine, with one task tab open and with
twenty (every tab on its own running task, the events of all twenty flowing): Python stamps each event with
time.time() just before the worker's side publishes it (Claims.emit: store, then Redis),
and the page stamps performance.timeOrigin + performance.now() when the event's <li> is
in the DOM; the difference is publish-to-drawn.

    python -m tests.bench.dashboard [--databases sqlite,postgresql] [--tasks 10000]
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta
from typing import Any

import httpx

from orchestrator import store
from orchestrator.models import utcnow
from orchestrator.schemas import OriginSpec, TaskSpec
from orchestrator.states import AttemptState, TaskState
from tests.bench.env import Bench, api_process, bench_env
from tests.bench.stats import summary_ms

STATES = [TaskState.SUCCEEDED, TaskState.FAILED, TaskState.RUNNING, TaskState.QUEUED]
ORIGINS = ["web", "cli", "github", "slack"]
BIG_DIFF = "+x = 1\n" * 5000
"""Every tenth task keeps a 5,000-line diff: the list must not read it."""


def fill(bench: Bench, tasks: int) -> None:
    start = utcnow() - timedelta(days=30)
    with bench.services.sessions.begin() as session:
        for n in range(tasks):
            spec = TaskSpec(
                repo=f"/srv/repo{n % 20}.git",
                instruction=f"task {n}: fix the flaky test\nwith more detail below",
                origin=OriginSpec(kind=ORIGINS[n % 4]),  # type: ignore[arg-type]
            )
            task = store.create_task(
                session, spec=spec, attempts=2, created_by=None,
                now=start + timedelta(seconds=n * 60),
            )  # fmt: skip
            task.state = STATES[n % 4]
            if n % 10 == 0:
                task.attempts[0].state = AttemptState.SUCCEEDED
                store.add_result(
                    session, attempt_id=task.attempts[0].id, diff=BIG_DIFF, diff_lines=5000,
                    summary="done", cost_usd=0.12,
                )  # fmt: skip
            if n % 1000 == 999:
                session.flush()
                session.expunge_all()


def signed_in(base: str, token: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30)
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf, "no CSRF field on /login"
    r = client.post("/login", data={"csrf": csrf.group(1), "token": token, "next": "/tasks"})
    if r.status_code != 303 or "autan_session" not in client.cookies:
        raise RuntimeError(f"could not sign in: {r.status_code} {r.text[:200]}")
    return client


def bench_tasks_page(database: str, *, tasks: int, requests: int) -> Iterator[dict[str, Any]]:
    with bench_env(database, "none") as bench:
        fill(bench, tasks)
        with api_process(bench) as base, closing(signed_in(base, bench.token)) as client:
            second = re.search(r'cursor=([^"&]+)" rel="next"', client.get("/tasks").text)
            assert second, "no next page on /tasks"
            page2 = client.get(f"/tasks?cursor={second.group(1)}").text
            back = re.search(r'before=([^"&]+)" rel="prev"', page2)
            assert back, "no previous page on page 2"
            days = (utcnow() - timedelta(days=28)).date(), (utcnow() - timedelta(days=26)).date()
            variants = {
                "/tasks": "/tasks",
                "/tasks?state=running": "/tasks?state=running",
                "/tasks?origin=github": "/tasks?origin=github",
                "/tasks?repo=...": "/tasks?repo=/srv/repo7.git",
                "/tasks page 2": f"/tasks?cursor={second.group(1)}",
                "/tasks page 1 from page 2": f"/tasks?before={back.group(1)}",
                "/tasks?q=...": "/tasks?state=&origin=&q=flaky+test",
                "/tasks?since=...&until=...": f"/tasks?since={days[0]}&until={days[1]}",
            }
            for name, path in variants.items():
                for _ in range(20):  # warm up
                    client.get(path)
                latencies = []
                for _ in range(requests):
                    began = time.perf_counter()
                    r = client.get(path)
                    latencies.append(time.perf_counter() - began)
                    if r.status_code != 200 or r.text.count('class="task-link"') != 50:
                        raise RuntimeError(f"GET {path}: {r.status_code}, not a page of 50 tasks")
                yield {
                    "figure": f"GET {name} ({tasks} tasks)",
                    "database": database,
                    **summary_ms(latencies),
                }
            yield live_refresh_bytes(client, database)


def live_refresh_bytes(client: httpx.Client, database: str) -> dict[str, Any]:
    """What the open list fetches every 2 s: a whole page when a task in it changed, a 304
    when none did (headers and body as sent, on the wire before compression)."""

    def size(r: httpx.Response) -> int:
        head = sum(len(k) + len(v) + 4 for k, v in r.headers.raw) + len("HTTP/1.1 200 OK\r\n\r\n")
        return head + len(r.content)

    changed = client.get("/api/tasks?limit=50")
    same = client.get("/api/tasks?limit=50", headers={"If-None-Match": changed.headers["etag"]})
    assert same.status_code == 304, same.status_code
    return {"figure": "live list refresh, bytes", "database": database,
            "changed": size(changed), "unchanged": size(same)}  # fmt: skip


RECORD_DRAWN = """() => {
  window.__drawn = [];
  const target = document.querySelector('.attempt .trajectory');
  new MutationObserver((changes) => {
    const at = performance.timeOrigin + performance.now();
    for (const change of changes) for (const node of change.addedNodes) {
      if (node.dataset && node.dataset.kind === 'model.message') window.__drawn.push(at);
    }
  }).observe(target, {childList: true});
}"""


def bench_event_to_browser(database: str, *, events: int, tabs: int = 1) -> dict[str, Any]:
    """With `tabs` task pages open in one browser (one running task each, all sharing the
    browser's one live connection), each round adds an event to every task, the last
    tab's task last; timed is that last event, from its publish to its <li> in the last tab."""
    from playwright.sync_api import sync_playwright

    from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS

    with bench_env(database, "none") as bench, api_process(bench) as base:
        lifecycle = bench.services.lifecycle
        claims = []
        for n in range(tabs):
            task, _ = lifecycle.submit(TaskSpec(repo="/srv/r.git", instruction=f"bench {n}"))
            claim = lifecycle.claims.claim(task.attempts[0].id, worker="bench")
            assert claim is not None
            claims.append(claim)
        with closing(signed_in(base, bench.token)) as client, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            context = browser.new_context(bypass_csp=True)  # lets wait_for_function eval
            context.add_cookies(
                [{"name": "autan_session", "value": client.cookies["autan_session"], "url": base}]
            )
            pages = []
            for claim in claims:
                page = context.new_page()
                page.goto(f"{base}/tasks/{claim.task_id}")
                pages.append(page)
            for page in pages:  # every tab's stream is live
                page.wait_for_selector('.attempt li[data-kind="attempt.state"]')
            last = pages[-1]
            last.evaluate(RECORD_DRAWN)
            sent: list[float] = []
            for i in range(events):
                for claim in claims[:-1]:
                    lifecycle.claims.emit(claim, "model.message", {"text": f"bench {i}"})
                sent.append(time.time())
                lifecycle.claims.emit(claims[-1], "model.message", {"text": f"bench {i}"})
                last.wait_for_function(f"window.__drawn.length > {i}")
            drawn_ms: list[float] = last.evaluate("window.__drawn")
            browser.close()
    latencies = [d / 1000 - s for d, s in zip(drawn_ms, sent, strict=True)]
    where = "the browser" if tabs == 1 else f"the last of {tabs} open task tabs"
    return {"figure": f"event published to drawn in {where}", "database": database,
            **summary_ms(latencies)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--events", type=int, default=200)
    args = parser.parse_args()
    for database in args.databases.split(","):
        for figure in bench_tasks_page(database, tasks=args.tasks, requests=args.requests):
            print(json.dumps({"area": "dashboard", **figure}), flush=True)
        for tabs in (1, 20):
            figure = bench_event_to_browser(database, events=args.events, tabs=tabs)
            print(json.dumps({"area": "dashboard", **figure}), flush=True)


if __name__ == "__main__":
    main()
