"""The way back over the API, in-process on both stores (PostgreSQL with S3): blobs
downloaded, a workspace's tasks, the agent's edits by long-poll, conflicts reported, listed
and shown on the dashboard."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from orchestrator import store, workspace_store
from orchestrator.models import utcnow
from orchestrator.services import Services
from orchestrator.workspace_feed import WorkspaceFeed
from sync.follow import TaskFollower, TaskLine, line_path, load_line
from sync.hashing import hash_bytes
from sync.live import SandboxConflict
from sync.manifests import Entry
from sync.remote import HttpRemote
from sync.schemas import ConflictCopy, TaskChanges
from sync.snapshots import repo_of
from tests.conftest import without_token
from tests.live import LiveApi, serve
from tests.sync.test_api import A, B, file, register
from tests.waiting import wait_until
from tests.web.dashboard import browser_client, sign_in

TASK_CHANGE = {
    "attempt": 1,
    "changes": [file("a.txt", B)],
    "deleted": ["old.txt"],
    "bases": {"a.txt": file("a.txt", A), "old.txt": None},
}


@pytest.fixture
def storage_fields(paired_storage: dict[str, str]) -> dict[str, str]:
    return paired_storage


def submit_from(api: TestClient, workspace_id: str, version: int = 1) -> str:
    snapshot = api.post(f"/api/workspaces/{workspace_id}/versions/{version}/snapshot").json()
    body = {"repo": repo_of(workspace_id, version), "ref": snapshot["manifest_hash"],
            "instruction": "tidy a.txt"}  # fmt: skip
    response = api.post("/api/tasks", json=body)
    assert response.status_code == 201, response.text
    task_id: str = response.json()["id"]
    return task_id


def first_version(api: TestClient, workspace_id: str) -> None:
    api.put(f"/api/blobs/{hash_bytes(A)}", content=A)
    made = api.post(f"/api/workspaces/{workspace_id}/versions",
                    json={"parent": 0, "changes": [file("a.txt", A), file("old.txt", A)]})  # fmt: skip
    assert made.status_code == 201, made.text


def test_blobs_download_and_new_routes_want_the_token(api: TestClient) -> None:
    workspace_id = register(api)
    api.put(f"/api/blobs/{hash_bytes(A)}", content=A)
    got = api.get(f"/api/blobs/{hash_bytes(A)}")
    assert got.status_code == 200 and got.content == A
    assert api.get(f"/api/blobs/{hash_bytes(B)}").status_code == 404
    assert api.get("/api/blobs/not-a-hash").status_code == 422
    with without_token(api) as bare:
        for method, path in [
            ("GET", f"/api/blobs/{hash_bytes(A)}"),
            ("GET", f"/api/workspaces/{workspace_id}/tasks"),
            ("GET", f"/api/workspaces/{workspace_id}/tasks/{'0' * 32}/changes"),
            ("POST", f"/api/workspaces/{workspace_id}/conflicts"),
            ("GET", f"/api/workspaces/{workspace_id}/conflicts"),
        ]:
            assert bare.request(method, path).status_code == 401, path


def test_a_tasks_edits_read_back_after_a_seq(api: TestClient, services: Services) -> None:
    workspace_id = register(api)
    first_version(api, workspace_id)
    task_id = submit_from(api, workspace_id)
    listed = api.get(f"/api/workspaces/{workspace_id}/tasks").json()
    assert [(t["id"], t["version"], t["finished"]) for t in listed] == [(task_id, 1, False)]

    changes = f"/api/workspaces/{workspace_id}/tasks/{task_id}/changes"
    assert api.get(changes).json()["changes"] == []
    with services.sessions.begin() as session:  # as a worker's attempt writes it
        store.add_event(
            session, task_id=task_id, kind="sync.changed", data=TASK_CHANGE, now=utcnow()
        )
    got = api.get(changes, params={"after": 0}).json()
    assert [c["attempt"] for c in got["changes"]] == [1] and got["last"] == got["changes"][0]["seq"]
    assert got["changes"][0]["bases"]["old.txt"] is None
    assert api.get(changes, params={"after": got["last"]}).json()["changes"] == []

    other = register(api, key="host:/elsewhere")
    assert api.get(f"/api/workspaces/{other}/tasks/{task_id}/changes").status_code == 404
    assert api.get(f"/api/workspaces/{workspace_id}/tasks/{'f' * 32}/changes").status_code == 404
    assert api.get(changes, params={"wait": 3600}).status_code == 422  # longer than allowed


def test_changes_between_versions(api: TestClient, services: Services) -> None:
    workspace_id = register(api)
    first_version(api, workspace_id)
    api.put(f"/api/blobs/{hash_bytes(B)}", content=B)
    versions = f"/api/workspaces/{workspace_id}/versions"
    api.post(versions, json={"parent": 1, "changes": [file("a.txt", B)]})
    api.post(versions, json={"parent": 2, "changes": [file("new.txt", B)], "deleted": ["old.txt"]})
    with services.sessions() as session:
        changed, deleted = workspace_store.changes_between(
            session, workspace_id=workspace_id, after=1, upto=3
        )
        assert [(e.path, e.hash) for e in changed] == [
            ("a.txt", hash_bytes(B)),
            ("new.txt", hash_bytes(B)),
        ]
        assert deleted == ["old.txt"]
        assert workspace_store.changes_between(
            session, workspace_id=workspace_id, after=3, upto=3
        ) == ([], [])


def test_conflicts_are_reported_listed_resolved_and_shown(
    api: TestClient, services: Services, admin_token: str
) -> None:
    workspace_id = register(api)
    first_version(api, workspace_id)
    task_id = submit_from(api, workspace_id)
    url = f"/api/workspaces/{workspace_id}/conflicts"
    report = {"task_id": task_id, "conflicts": [
        {"path": "a.txt", "copy_path": f"a.txt.autan-{task_id}"}, {"path": "b.txt"},
    ]}  # fmt: skip
    assert api.post(url, json=report).status_code == 204
    listed = api.get(url).json()
    assert [(c["path"], c["side"], c["copy_path"]) for c in listed] == [
        ("a.txt", "local", f"a.txt.autan-{task_id}"),
        ("b.txt", "local", None),
    ]
    with browser_client(services) as browser:
        sign_in(browser, admin_token)
        page = browser.get("/workspaces").text
        assert f"a.txt.autan-{task_id}" in page and "tidy a.txt" in page

    # Bad reports change nothing: a path that leaves the tree, an unknown field, no JSON.
    for bad in (
        {"task_id": task_id, "conflicts": [{"path": "../etc/passwd"}]},
        {"task_id": task_id, "conflicts": [], "extra": 1},
    ):
        assert api.post(url, json=bad).status_code == 422
    assert (
        api.post(
            url, content=b"{not json", headers={"content-type": "application/json"}
        ).status_code
        == 422
    )
    assert len(api.get(url).json()) == 2

    report["conflicts"] = [{"path": "b.txt"}]  # the developer dealt with a.txt
    api.post(url, json=report)
    assert [c["path"] for c in api.get(url).json()] == ["b.txt"]
    assert api.post(f"/api/workspaces/{'0' * 32}/conflicts", json=report).status_code == 404


def test_a_quiet_long_poll_keeps_its_redis_stream(
    api: TestClient, live_api: LiveApi, caplog: pytest.LogCaptureFixture
) -> None:
    """A wait longer than redis-py's connect timeout (5 s) once ended the stream's blocking
    read with a timeout, and every quiet stream fell back to polling the store."""
    workspace_id = register(api)
    first_version(api, workspace_id)
    task_id = submit_from(api, workspace_id)
    url = f"{live_api.url}/api/workspaces/{workspace_id}/tasks/{task_id}/changes"
    headers = {"Authorization": f"Bearer {live_api.token}"}
    with caplog.at_level(logging.WARNING, logger="web.routes.events"):
        got = httpx.get(url, params={"wait": 6}, headers=headers, timeout=30)
    assert got.status_code == 200 and got.json()["changes"] == []
    assert "lost Redis" not in caplog.text


def test_a_long_poll_whose_client_left_frees_its_slot(
    api: TestClient, services: Services, admin_token: str
) -> None:
    """A daemon stopped mid long-poll (Ctrl-C) closes its connection; the server must not
    hold the request, and its stream slot, for the rest of the wait."""
    workspace_id = register(api)
    first_version(api, workspace_id)
    task_id = submit_from(api, workspace_id)
    one = serve(services, admin_token, max_streams=1)
    path = f"/api/workspaces/{workspace_id}/tasks/{task_id}/changes"
    headers = {"Authorization": f"Bearer {admin_token}"}
    host, port = one.url.removeprefix("http://").split(":")

    def busy() -> httpx.Response:
        return httpx.get(one.url + path, params={"wait": 0.01}, headers=headers)

    request = (
        f"GET {path}?wait=60 HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {admin_token}\r\n\r\n"
    ).encode()
    try:
        with socket.create_connection((host, int(port))) as left:
            left.sendall(request)
            left.setblocking(False)

            def taken() -> bool:
                # A probe holding the slot as the long-poll came makes that one a 503: ask again.
                try:
                    if b" 503 " in left.recv(65536):
                        left.sendall(request)
                except BlockingIOError:
                    pass
                return busy().status_code == 503

            wait_until(taken, timeout=10, what="the slot taken")
        # The client went away 60 s early.
        wait_until(lambda: busy().status_code == 200, timeout=10, what="the slot to be freed")
    finally:
        one.stop()


def test_a_sandbox_conflict_shows_while_its_task_runs(api: TestClient, services: Services) -> None:
    workspace_id = register(api)
    first_version(api, workspace_id)
    task_id = submit_from(api, workspace_id)
    with services.sessions.begin() as session:  # as the worker's LiveAttempt records it
        workspace_store.set_conflicts(
            session, workspace_id=workspace_id, task_id=task_id, side="sandbox",
            conflicts=[("a.txt", None)], now=utcnow(),
        )  # fmt: skip
    url = f"/api/workspaces/{workspace_id}/conflicts"
    assert [(c["path"], c["side"]) for c in api.get(url).json()] == [("a.txt", "sandbox")]
    assert api.post(f"/api/tasks/{task_id}/cancel").status_code == 200
    assert api.get(url).json() == []  # the daemon reports it from here on, if it still is one


def test_a_sandbox_conflict_reaches_the_follower_for_sync_status(
    api: TestClient, services: Services, live_api: LiveApi, tmp_path: Path
) -> None:
    workspace_id = register(api)
    first_version(api, workspace_id)
    task_id = submit_from(api, workspace_id)
    agent = Entry(path="a.txt", kind="file", hash=hash_bytes(B), size=len(B))
    WorkspaceFeed(services).record(  # as the worker's LiveAttempt records one
        workspace_id, task_id, [SandboxConflict("a.txt", None, agent, "a.txt.autan-local")]
    )
    remote = HttpRemote(live_api.url, live_api.token)
    line = TaskLine(task_id=task_id, workspace_id=workspace_id, version=1, mode="inplace")
    follower = TaskFollower(tmp_path, remote, line, tmp_path / "lines")
    try:
        follower.take(TaskChanges(task_id=task_id, version=1, finished=False, changes=[], last=0))
    finally:
        remote.close()
    saved = load_line(line_path(tmp_path / "lines", task_id))
    assert saved is not None
    assert saved.in_sandbox == [ConflictCopy(path="a.txt", copy_path="a.txt.autan-local")]
    assert saved.conflicts == []  # none in the checkout
