"""Who reaches a workspace: its user's every token and session, the user's team, admins; anyone
else gets the answer a missing workspace gets (404), on every route, and nothing changes."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from orchestrator import store
from orchestrator.models import (
    AuditEntry,
    Task,
    Workspace,
    WorkspaceConflict,
    WorkspaceVersion,
    utcnow,
)
from orchestrator.services import Services
from sync.hashing import hash_bytes
from sync.snapshots import repo_of
from tests.people import bearer, person
from tests.web.dashboard import browser_client, sign_in
from web.app import create_app
from web.config import WebSettings

A = b"alpha\n"
KEY = "laptop:/home/alice/shop"
MISSING = "0" * 32


def _file(path: str, data: bytes) -> dict[str, Any]:
    return {"path": path, "kind": "file", "hash": hash_bytes(data), "mode": 0o644,
            "size": len(data)}  # fmt: skip


def _register(client: TestClient, raw: str, key: str = KEY) -> tuple[int, str]:
    r = client.post("/api/workspaces", json={"key": key, "name": "shop", "root": "/src/shop"},
                    headers=bearer(raw))  # fmt: skip
    assert r.status_code in (200, 201), r.text
    return r.status_code, str(r.json()["id"])


def _first_version(client: TestClient, raw: str, workspace_id: str) -> str:
    """Version 1 holding a.txt, snapshotted; returns its manifest hash."""
    client.put(f"/api/blobs/{hash_bytes(A)}", content=A, headers=bearer(raw))
    made = client.post(f"/api/workspaces/{workspace_id}/versions", headers=bearer(raw),
                       json={"parent": 0, "changes": [_file("a.txt", A)]})  # fmt: skip
    assert made.status_code == 201, made.text
    snap = client.post(f"/api/workspaces/{workspace_id}/versions/1/snapshot", headers=bearer(raw))
    assert snap.status_code == 200, snap.text
    return str(snap.json()["manifest_hash"])


def _state(services: Services) -> tuple[Any, ...]:
    """What a refused request must leave as it was."""
    with services.sessions() as s:
        return (
            [(w.id, w.name, w.root, w.head, w.owner_id) for w in s.scalars(select(Workspace))],
            s.scalar(select(func.count()).select_from(WorkspaceVersion)),
            s.scalar(select(func.count()).select_from(WorkspaceConflict)),
            s.scalar(select(func.count()).select_from(Task)),
        )


def _routes(app: Any, workspace_id: str, task_id: str) -> list[tuple[str, str, Any]]:
    """Every route with a workspace in its path, with a body it would take from its owner."""
    bodies: dict[str, Any] = {
        "/versions": {"parent": 1, "changes": [_file("b.txt", A)]},
        "/conflicts": {
            "task_id": task_id,
            "conflicts": [{"path": "a.txt", "copy_path": "a.txt.conflict"}],
        },
    }
    found = []
    for path, methods in app.openapi()["paths"].items():
        if "{workspace_id}" not in path:
            continue
        for method in methods:
            concrete = path.format(
                workspace_id=workspace_id, task_id=task_id, number=1, digest=hash_bytes(A)
            )
            body = next((b for end, b in bodies.items() if path.endswith(end)), None)
            found.append((method.upper(), concrete, body if method == "post" else None))
    return found


def test_another_persons_workspace_is_not_there_on_any_route(services: Services) -> None:
    alice = person(services, "alice", "member", team="payments")
    carol = person(services, "carol", "member", team="web")
    dave = person(services, "dave", "member")  # no team
    app = create_app(services, WebSettings())
    with TestClient(app) as client:
        _, workspace_id = _register(client, alice)
        manifest = _first_version(client, alice, workspace_id)
        task = client.post("/api/tasks", headers=bearer(alice), json={
            "repo": repo_of(workspace_id, 1), "ref": manifest, "instruction": "tidy"})  # fmt: skip
        assert task.status_code == 201, task.text
        task_id = task.json()["id"]
        routes = _routes(app, workspace_id, task_id)
        assert len(routes) >= 9, routes  # detail, versions, snapshot, manifest, tasks, changes,...
        before = _state(services)
        for raw in (carol, dave):
            for method, path, body in routes:
                r = client.request(method, path, json=body, headers=bearer(raw))
                gone = client.request(
                    method, path.replace(workspace_id, MISSING), json=body, headers=bearer(raw)
                )
                assert (r.status_code, gone.status_code) == (404, 404), (method, path, r.text)
                assert r.json()["detail"] == f"no workspace with id {workspace_id!r}"
                assert gone.json()["detail"] == f"no workspace with id {MISSING!r}"
            assert client.get("/api/workspaces", headers=bearer(raw)).json() == []
        assert _state(services) == before

        # Her own checkout of the same key is hers, never alice's handed over.
        code, carols = _register(client, carol)
        assert code == 201 and carols != workspace_id
        assert client.get(f"/api/workspaces/{carols}", headers=bearer(carol)).json()["head"] == 0
        assert _state(services)[0][0] == before[0][0]  # alice's as it was

        with services.sessions() as s:
            refused = s.execute(
                select(AuditEntry.actor, AuditEntry.action, AuditEntry.target,
                       AuditEntry.outcome, AuditEntry.status)
                .where(AuditEntry.actor == "carol").order_by(AuditEntry.id)
            ).all()  # fmt: skip
        assert len(refused) == len(routes)  # a missing workspace's 404 is no refusal
        assert {r.action for r in refused} == {
            "workspace.get_workspace", "workspace.commit_version", "workspace.snapshot_version",
            "workspace.get_manifest", "workspace.workspace_tasks", "workspace.task_changes",
            "workspace.report_conflicts", "workspace.list_conflicts", "workspace.task_blob",
        }  # fmt: skip
        assert {(r.target, r.outcome, r.status) for r in refused} == {
            (workspace_id, "refused", 404)
        }


def test_the_owner_every_token_and_session_of_theirs_the_team_and_admins_reach_it(
    services: Services,
) -> None:
    alice = person(services, "alice", "member", team="payments")
    alice_again = person(services, "alice", "member")  # a second token of the same user
    bob = person(services, "bob", "member", team="payments")
    ada = person(services, "ada", "admin")
    vic = person(services, "vic", "viewer", team="payments")
    with TestClient(create_app(services, WebSettings())) as client:
        _, workspace_id = _register(client, alice)
        again, same = _register(client, alice_again)
        assert (again, same) == (200, workspace_id)
        _first_version(client, alice_again, workspace_id)
        for raw in (alice, alice_again, bob, ada):
            got = client.get(f"/api/workspaces/{workspace_id}", headers=bearer(raw))
            assert (got.status_code, got.json()["head"]) == (200, 1), got.text
            listed = client.get("/api/workspaces", headers=bearer(raw)).json()
            assert [w["id"] for w in listed] == [workspace_id]
        teammate = client.post(f"/api/workspaces/{workspace_id}/versions", headers=bearer(bob),
                               json={"parent": 1, "changes": [_file("b.txt", A)]})  # fmt: skip
        assert teammate.status_code == 201, teammate.text
        # A viewer holds no `workspaces` scope: refused as such, team or not.
        for path in (f"/api/workspaces/{workspace_id}", "/api/workspaces"):
            refused = client.get(path, headers=bearer(vic))
            assert refused.status_code == 403 and "'workspaces' scope" in refused.json()["detail"]
    with browser_client(services) as browser:
        sign_in(browser, alice)  # the session has a token of its own
        got = browser.get(f"/api/workspaces/{workspace_id}/manifest")
        assert got.status_code == 200, got.text
        assert [e["path"] for e in got.json()["entries"]] == ["a.txt", "b.txt"]


def test_a_task_starts_only_from_a_workspace_its_submitter_reaches(services: Services) -> None:
    alice = person(services, "alice", "member", team="payments")
    bob = person(services, "bob", "member", team="payments")
    carol = person(services, "carol", "member", team="web")
    with TestClient(create_app(services, WebSettings())) as client:
        _, workspace_id = _register(client, alice)
        manifest = _first_version(client, alice, workspace_id)
        body = {"repo": repo_of(workspace_id, 1), "ref": manifest, "instruction": "tidy"}
        before = _state(services)
        refused = client.post("/api/tasks", json=body, headers=bearer(carol))
        assert refused.status_code == 404
        assert refused.json()["detail"] == f"no workspace with id {workspace_id!r}"
        for wrong, status in (
            ({"ref": hash_bytes(b"another tree")}, 422),  # another tree under this name
            ({"ref": None}, 422),
            ({"repo": repo_of(workspace_id, 7)}, 404),
            ({"repo": repo_of(MISSING, 1)}, 404),
        ):
            r = client.post("/api/tasks", json={**body, **wrong}, headers=bearer(alice))
            assert r.status_code == status, (wrong, r.text)
        assert _state(services) == before
        for raw in (alice, bob):
            made = client.post("/api/tasks", json=body, headers=bearer(raw))
            assert made.status_code == 201, made.text
            assert (made.json()["repo"], made.json()["ref"]) == (body["repo"], manifest)
        with services.sessions() as s:
            entry = s.execute(
                select(AuditEntry.action, AuditEntry.target, AuditEntry.outcome)
                .where(AuditEntry.actor == "carol")
            ).one()  # fmt: skip
        assert tuple(entry) == ("task.submit", workspace_id, "refused")


def test_the_dashboard_shows_and_starts_from_only_the_workspaces_one_reaches(
    services: Services,
) -> None:
    alice = person(services, "alice", "member", team="payments")
    carol = person(services, "carol", "member", team="web")
    vic = person(services, "vic", "viewer", team="payments")
    with TestClient(create_app(services, WebSettings())) as client:
        _, workspace_id = _register(client, alice, key="laptop:/src/ledger-of-alice")
        _first_version(client, alice, workspace_id)
    for raw, sees in ((alice, True), (vic, True), (carol, False)):
        with browser_client(services) as browser:
            sign_in(browser, raw)
            page = browser.get("/workspaces")
            assert page.status_code == 200
            assert ("laptop:/src/ledger-of-alice" in page.text) is sees, raw
    with browser_client(services) as browser:
        csrf = sign_in(browser, carol)
        form = browser.get("/new")
        assert workspace_id not in form.text and "none synced yet" in form.text
        before = _state(services)
        r = browser.post("/new", data={"csrf": csrf, "workspace": workspace_id,
                                       "instruction": "read it"}, follow_redirects=False)  # fmt: skip
        assert r.status_code == 404 and f"no workspace with id &#39;{workspace_id}&#39;" in r.text
        assert _state(services) == before
    with browser_client(services) as browser:
        csrf = sign_in(browser, alice)
        form = browser.get("/new")
        assert f'<option value="{workspace_id}" >shop (version 1)</option>' in form.text
        both = browser.post("/new", data={"csrf": csrf, "workspace": workspace_id, "repo": "x",
                                          "instruction": "tidy"}, follow_redirects=False)  # fmt: skip
        assert both.status_code == 422 and "a repository or a workspace, not both" in both.text
        r = browser.post("/new", data={"csrf": csrf, "workspace": workspace_id,
                                       "instruction": "tidy"}, follow_redirects=False)  # fmt: skip
        assert r.status_code == 303, r.text
        task_id = r.headers["location"].rsplit("/", 1)[1]
        with services.sessions() as s:
            task = s.get(Task, task_id)
            assert task is not None and task.repo == repo_of(workspace_id, 1)
            version = s.scalars(select(WorkspaceVersion)).one()
            assert task.ref == version.manifest_hash


def test_a_tasks_blobs_come_through_the_task_to_those_who_reach_it(services: Services) -> None:
    alice = person(services, "alice", "member", team="payments")
    bob = person(services, "bob", "member", team="payments")
    carol = person(services, "carol", "member", team="web")
    ada = person(services, "ada", "admin")
    edit = b"the agent's edit\n"
    with TestClient(create_app(services, WebSettings())) as client:
        _, workspace_id = _register(client, alice)
        manifest = _first_version(client, alice, workspace_id)
        made = client.post("/api/tasks", headers=bearer(alice), json={
            "repo": repo_of(workspace_id, 1), "ref": manifest, "instruction": "tidy"})  # fmt: skip
        task_id = made.json()["id"]
        client.put(f"/api/blobs/{hash_bytes(edit)}", content=edit, headers=bearer(ada))
        with services.sessions.begin() as session:  # as a worker's attempt writes it
            store.add_event(session, task_id=task_id, kind="sync.changed", now=utcnow(), data={
                "attempt": 1, "changes": [_file("a.txt", edit)], "deleted": [],
                "bases": {"a.txt": _file("a.txt", A)}})  # fmt: skip
        blobs = f"/api/workspaces/{workspace_id}/tasks/{task_id}/blobs"
        for raw in (alice, bob, ada):
            got = client.get(f"{blobs}/{hash_bytes(edit)}", headers=bearer(raw))
            assert (got.status_code, got.content) == (200, edit)
            # The workspace's own files too: the daemon builds the task's branch from them.
            assert client.get(f"{blobs}/{hash_bytes(A)}", headers=bearer(raw)).content == A
        unnamed = client.get(f"{blobs}/{hash_bytes(b'x')}", headers=bearer(alice))
        assert unnamed.status_code == 404
        assert unnamed.json()["detail"] == (
            f"neither workspace {workspace_id} nor task {task_id} names blob {hash_bytes(b'x')}"
        )
        assert client.get(f"{blobs}/nope", headers=bearer(alice)).status_code == 404
        # Conflicts are reported for a task of the workspace only.
        _, other = _register(client, alice, key="laptop:/elsewhere")
        stray = client.post(f"/api/workspaces/{other}/conflicts", headers=bearer(alice),
                            json={"task_id": task_id, "conflicts": [{"path": "a.txt"}]})  # fmt: skip
        assert stray.status_code == 404
        assert stray.json()["detail"] == f"task {task_id} did not start from workspace {other}"
        assert client.get(f"/api/workspaces/{other}/conflicts", headers=bearer(alice)).json() == []
        refused = client.get(f"{blobs}/{hash_bytes(edit)}", headers=bearer(carol))
        assert refused.status_code == 404
        # Blobs are shared between workspaces: fetched by hash alone, an admin's only.
        for raw in (alice, carol):
            bare = client.get(f"/api/blobs/{hash_bytes(edit)}", headers=bearer(raw))
            assert bare.status_code == 403 and "'admin' scope" in bare.json()["detail"]
        assert client.get(f"/api/blobs/{hash_bytes(edit)}", headers=bearer(ada)).content == edit
