"""Helpers for the dashboard tests: a signed-in TestClient, a page's CSRF token, many tasks,
running tasks, and the streams the API holds open."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import httpx
from fastapi.testclient import TestClient

from orchestrator import store
from orchestrator.claims import Claim
from orchestrator.schemas import OriginSpec, TaskSpec
from orchestrator.services import Services
from web.app import create_app
from web.config import WebSettings

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


@contextmanager
def browser_client(services: Services, settings: WebSettings | None = None) -> Iterator[TestClient]:
    """The app in-process, with no Authorization header: it must sign in like a browser."""
    with TestClient(create_app(services, settings or WebSettings())) as client:
        yield client


def sign_in(client: TestClient, token: str) -> str:
    """Sign in through the form; returns the session's CSRF token."""
    page = client.get("/login")
    r = client.post(
        "/login",
        data={"csrf": csrf_of(page.text), "token": token, "next": "/tasks"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return csrf_of(client.get("/tasks").text)


def many_tasks(services: Services, count: int, *, start: datetime | None = None) -> list[str]:
    """`count` tasks stored at once, a minute apart (repos r0/r1, origins cli/web, instructions
    "task N"); their ids, newest first, as lists show them."""
    start = start or datetime(2026, 1, 1, tzinfo=UTC)
    ids = []
    with services.sessions.begin() as session:
        for n in range(count):
            spec = TaskSpec(
                repo=f"r{n % 2}",
                instruction=f"task {n}",
                origin=OriginSpec(kind=("cli", "web")[n % 3 == 0]),
            )
            when = start + timedelta(minutes=n)
            task = store.create_task(session, spec=spec, attempts=1, created_by=None, now=when)
            ids.append(task.id)
    return ids[::-1]


def running(services: Services, instruction: str) -> tuple[str, Claim]:
    """A task whose one attempt a (pretend) worker holds: its events come from `emit`."""
    lifecycle = services.lifecycle
    task, _ = lifecycle.submit(TaskSpec(repo="/srv/r.git", instruction=instruction))
    claim = lifecycle.claims.claim(task.attempts[0].id, worker="test")
    assert claim is not None
    return task.id, claim


def streams_open(base_url: str) -> dict[str, float]:
    """The API's open streams by kind, as /metrics says (autan_streams_open)."""
    lines = httpx.get(f"{base_url}/metrics").text.splitlines()
    prefix = 'autan_streams_open{kind="'
    return {
        line[len(prefix) :].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in lines
        if line.startswith(prefix)
    }


def tasks_followed(base_url: str) -> float:
    """The tasks the API's live streams follow now, as /metrics says."""
    lines = httpx.get(f"{base_url}/metrics").text.splitlines()
    return next(float(line.split()[1]) for line in lines if line.startswith("autan_live_tasks_"))
