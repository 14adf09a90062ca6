"""The event stream: backlog, live events from a real worker, resumption, and its end."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from orchestrator.services import Services
from tests.live import LiveApi
from tests.workers import WorkerPool


def parse_sse(text: str) -> list[dict[str, str]]:
    frames = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line and not line.startswith(":"):
                key, _, value = line.partition(": ")
                fields[key] = value
        if "data" in fields:
            frames.append(fields)
    return frames


def test_stored_events_without_follow_and_resumed_after_a_seq(api: TestClient) -> None:
    task = api.post("/api/tasks", json={"repo": "r", "instruction": "i"}).json()
    api.post(f"/api/tasks/{task['id']}/cancel")
    r = api.get(f"/api/tasks/{task['id']}/events", params={"follow": "false"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    frames = parse_sse(r.text)
    assert [(f["id"], f["event"]) for f in frames] == [
        ("1", "task.created"),
        ("2", "task.finished"),
    ]
    finished = json.loads(frames[1]["data"])
    assert finished["data"]["state"] == "cancelled"
    assert finished["task_id"] == task["id"]
    resumed = api.get(f"/api/tasks/{task['id']}/events", headers={"Last-Event-ID": "1"})
    assert [f["id"] for f in parse_sse(resumed.text)] == ["2"]
    bad = api.get(f"/api/tasks/{task['id']}/events", headers={"Last-Event-ID": "x"})
    assert bad.status_code == 422


def test_a_follower_sees_a_worker_s_events_live_until_the_task_ends(
    live_api: LiveApi, services: Services, workers: WorkerPool, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    headers = {"Authorization": f"Bearer {live_api.token}"}
    instruction = json.dumps({"steps": 2, "wait_for": str(release)})
    task = httpx.post(
        f"{live_api.url}/api/tasks", json={"repo": "r", "instruction": instruction}, headers=headers
    ).json()
    workers.start()
    seen: list[dict[str, str]] = []
    with httpx.stream(
        "GET", f"{live_api.url}/api/tasks/{task['id']}/events", headers=headers, timeout=60
    ) as stream:
        buffer = ""
        for chunk in stream.iter_text():
            buffer += chunk
            frames = parse_sse(buffer)
            if (
                len([f for f in frames if f["event"] == "model.message"]) == 2
                and not release.exists()
            ):
                release.touch()  # the attempt is parked: everything so far arrived live
            seen = frames
    kinds = [f["event"] for f in seen]
    assert kinds[0] == "task.created"
    assert kinds[-1] == "task.finished"
    assert kinds.count("model.message") == 2
    assert [int(f["id"]) for f in seen] == list(range(1, len(seen) + 1))
    assert json.loads(seen[-1]["data"])["data"]["state"] == "succeeded"


def test_a_backlog_longer_than_a_page_is_sent_whole_and_ends_with_the_end(
    api: TestClient, services: Services
) -> None:
    task = api.post("/api/tasks", json={"repo": "r", "instruction": "i"}).json()
    with services.lifecycle.write() as (session, events):
        for i in range(1200):
            services.lifecycle.event(session, events, task["id"], "model.message", {"i": i})
    api.post(f"/api/tasks/{task['id']}/cancel")
    with services.lifecycle.write() as (session, events):  # stored after the end
        services.lifecycle.event(session, events, task["id"], "task.reported", {})
    for follow in ("false", "true"):
        r = api.get(f"/api/tasks/{task['id']}/events", params={"follow": follow})
        frames = parse_sse(r.text)
        assert [int(f["id"]) for f in frames] == list(range(1, 1203))
        assert frames[-1]["event"] == "task.finished"
