"""The browser's one live stream (/api/live): several tasks on one connection, each resumed
from its own place, bad input refused, counted in /metrics, and ended by a revoked token."""

from __future__ import annotations

import json
from typing import Any

import httpx
from fastapi.testclient import TestClient

from orchestrator.models import utcnow
from orchestrator.services import Services
from orchestrator.tokens import create_token, revoke_token
from tests.live import LiveApi, serve
from tests.waiting import wait_until
from tests.web.dashboard import running, streams_open, tasks_followed
from tests.web.test_connections import QUICK, Follower
from tests.web.test_events_api import parse_sse


class LiveFollower(Follower):
    """Follows /api/live with `query` in the background and keeps every frame."""

    def __init__(self, live: LiveApi, query: str, token: str) -> None:
        super().__init__(live, "", token)
        self.url = f"{live.url}/api/live?{query}"

    def events(self) -> list[tuple[str, int, str]]:
        """(task id, seq, kind) of each event so far."""
        found = [json.loads(f["data"]) for f in parse_sse(self.text)]
        return [(e["task_id"], e["seq"], e["kind"]) for e in found]


def test_one_stream_carries_several_tasks_each_from_its_own_place(
    services: Services, admin_token: str
) -> None:
    first, first_claim = running(services, "first")
    second, second_claim = running(services, "second")
    services.lifecycle.claims.emit(first_claim, "model.message", {"text": "one"})
    live = serve(services, admin_token, **QUICK)
    try:
        assert streams_open(live.url) == {"live": 0.0, "task": 0.0, "long-poll": 0.0}
        # The first task from after its seq 2 (created, attempt state): only what came later.
        follower = LiveFollower(live, f"task={first}:2&task={second}", admin_token)
        follower.start()
        wait_until(lambda: len(follower.events()) == 3, what="the backlog of both tasks")
        assert sorted(follower.events()) == sorted(
            [
                (first, 3, "model.message"),
                (second, 1, "task.created"),
                (second, 2, "attempt.state"),
            ]
        )
        assert streams_open(live.url)["live"] == 1.0
        assert tasks_followed(live.url) == 2.0
        # Live: events of either task arrive on the same connection.
        services.lifecycle.claims.emit(second_claim, "model.message", {"text": "two"})
        services.lifecycle.claims.emit(first_claim, "model.message", {"text": "three"})
        wait_until(lambda: len(follower.events()) == 5, what="the live events")
        assert follower.events()[3:] == [(second, 3, "model.message"), (first, 4, "model.message")]
        # A task that ends is dropped; the stream stays open for the other.
        services.lifecycle.cancel(first, by="the test")
        wait_until(lambda: follower.events()[-1][2] == "task.finished", what="the first's end")
        services.lifecycle.claims.emit(second_claim, "model.message", {"text": "four"})
        wait_until(lambda: follower.events()[-1][0] == second, what="the second goes on")
        assert tasks_followed(live.url) == 1.0
        assert not follower.done.is_set()
    finally:
        live.stop()


def test_a_live_stream_ends_soon_after_its_token_is_revoked(services: Services) -> None:
    with services.sessions.begin() as session:
        admin = create_token(session, name="admin", is_admin=True, now=utcnow())
        viewer = create_token(session, name="viewer", is_admin=False, now=utcnow())
    task_id, _ = running(services, "watched")
    live = serve(services, admin, **QUICK)
    try:
        follower = LiveFollower(live, f"task={task_id}", viewer)
        follower.start()
        wait_until(lambda: len(follower.events()) == 2, what="the stream's backlog")
        wait_until(lambda: streams_open(live.url)["live"] == 1.0, what="the stream counted")
        with services.sessions.begin() as session:
            revoke_token(session, name="viewer", now=utcnow())
        assert follower.done.wait(15)
        assert follower.text.endswith(": stream closed: the token was revoked\n\n")
        wait_until(lambda: streams_open(live.url)["live"] == 0.0, what="the stream's place back")
        assert tasks_followed(live.url) == 0.0
        again = httpx.get(f"{live.url}/api/live?task={task_id}", headers=follower.headers)
        assert again.status_code == 401
    finally:
        live.stop()


def test_bad_follows_are_refused_with_a_reason(api: TestClient, services: Services) -> None:
    task_id, _ = running(services, "one")
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({}, 422, "task: name at least one task to follow (task=ID or task=ID:SEQ)"),
        ({"task": f"{task_id}:x"}, 422, f"task: '{task_id}:x' is not ID or ID:SEQ"),
        ({"task": ":3"}, 422, "task: ':3' is not ID or ID:SEQ"),
        ({"task": [task_id] * 51}, 422, "task: at most 50 tasks on one stream, not 51"),
        ({"task": [task_id, "nope"]}, 404, "no task with id 'nope'"),
    ]
    for params, status, detail in cases:
        r = api.get("/api/live", params=params)
        assert r.status_code == status, (params, r.text)
        assert r.json()["detail"].startswith(detail), (params, r.text)
    api.headers.pop("Authorization")
    assert api.get("/api/live", params={"task": task_id}).status_code == 401
    # Nothing was left open by a refused stream.
    assert 'autan_streams_open{kind="live"} 0.0' in api.get("/metrics").text.splitlines()
