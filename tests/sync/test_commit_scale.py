"""Folders deleted or renamed whole: one commit, a few statements, whatever their size."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event

from orchestrator.services import Services
from tests.sync.test_api import blobs_of, file, register

FILES = 1200  # enough that per-path statements would show; the 10,000-file figure is a bench


def tree(top: str, files: int) -> list[dict[str, Any]]:
    """A folder of `files` files (one content) in ten subfolders, plus a symlink inside it."""
    entries: list[dict[str, Any]] = [{"path": top, "kind": "dir", "mode": 0o755}]
    for sub in range(10):
        entries.append({"path": f"{top}/d{sub}", "kind": "dir", "mode": 0o755})
    for n in range(files):
        entries.append(file(f"{top}/d{n % 10}/f{n}.txt", b"x\n"))
    entries.append({"path": f"{top}/d0/link", "kind": "symlink", "target": "f0.txt", "mode": 0o777})
    return entries


NEIGHBOURS = ["src.d", "src-x", "src0", "srcz"]
"""Names that sort right around `src/`: a prefix range must leave them alone."""


def seed(api: TestClient, services: Services) -> tuple[str, int]:
    blobs_of(services).put_bytes(b"x\n")
    workspace_id = register(api)
    entries = tree("src", FILES) + [file(name, b"x\n") for name in NEIGHBOURS]
    entries.append({"path": "lib", "kind": "dir", "mode": 0o755})
    answer = api.post(
        f"/api/workspaces/{workspace_id}/versions", json={"parent": 0, "changes": entries}
    )
    assert answer.status_code == 201, answer.text
    return workspace_id, answer.json()["number"]


@contextmanager
def statements(services: Services) -> Iterator[list[str]]:
    """The SQL statements the server runs meanwhile."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(services.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(services.engine, "before_cursor_execute", record)


def manifest(api: TestClient, workspace_id: str, version: int | None = None) -> dict[str, Any]:
    params = {} if version is None else {"version": version}
    answer = api.get(f"/api/workspaces/{workspace_id}/manifest", params=params)
    assert answer.status_code == 200, answer.text
    return {e["path"]: e for e in answer.json()["entries"]}


def test_a_folder_renamed_is_one_commit_of_a_few_statements(
    api: TestClient, services: Services
) -> None:
    workspace_id, version = seed(api, services)
    before = manifest(api, workspace_id)
    body = {"parent": version, "renamed": [{"from": "src", "to": "lib/src"}]}
    with statements(services) as seen:
        answer = api.post(f"/api/workspaces/{workspace_id}/versions", json=body)

    assert answer.status_code == 201, answer.text
    moved = answer.json()
    assert moved["number"] == version + 1
    assert len(seen) < 25, seen  # not one per path: 1,212 rows moved
    after = manifest(api, workspace_id)
    expected = {
        ("lib/" + p if p == "src" or p.startswith("src/") else p): {
            **e,
            "path": "lib/" + p if p == "src" or p.startswith("src/") else p,
        }
        for p, e in before.items()
    }
    assert after == expected
    assert manifest(api, workspace_id, version) == before  # the old version still reads back
    versions = api.get(f"/api/workspaces/{workspace_id}").json()["version"]
    assert (versions["files"], versions["changed"]) == (FILES + len(NEIGHBOURS), 2 * (FILES + 12))
    assert versions["bytes"] == sum(e.get("size", 0) for e in before.values())


def test_a_folder_deleted_path_by_path_is_a_few_statements(
    api: TestClient, services: Services
) -> None:
    workspace_id, version = seed(api, services)
    before = manifest(api, workspace_id)
    every = sorted(p for p in before if p == "src" or p.startswith("src/"))
    body = {"parent": version, "deleted": every}
    with statements(services) as seen:
        answer = api.post(f"/api/workspaces/{workspace_id}/versions", json=body)

    assert answer.status_code == 201, answer.text
    assert len(seen) < 25, len(seen)
    assert sorted(manifest(api, workspace_id)) == sorted([*NEIGHBOURS, "lib"])
    view = api.get(f"/api/workspaces/{workspace_id}").json()["version"]
    assert (view["files"], view["bytes"], view["changed"]) == (len(NEIGHBOURS), 8, FILES + 12)


def test_a_folder_deleted_and_made_again_in_one_commit(api: TestClient, services: Services) -> None:
    workspace_id, version = seed(api, services)
    again = [{"path": "src", "kind": "dir", "mode": 0o755}, file("src/new.txt", b"x\n")]
    body = {"parent": version, "deleted": ["src"], "changes": again}
    answer = api.post(f"/api/workspaces/{workspace_id}/versions", json=body)

    assert answer.status_code == 201, answer.text
    after = manifest(api, workspace_id)
    assert sorted(p for p in after if p.startswith("src/")) == ["src/new.txt"]
    assert answer.json()["files"] == len(NEIGHBOURS) + 1


def test_renames_that_cannot_be_are_refused_and_change_nothing(
    api: TestClient, services: Services
) -> None:
    workspace_id, version = seed(api, services)
    before = manifest(api, workspace_id)
    url = f"/api/workspaces/{workspace_id}/versions"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"renamed": [{"from": "nowhere", "to": "x"}]}, "not in the workspace"),
        ({"renamed": [{"from": "src", "to": "lib"}]}, "exists"),
        ({"renamed": [{"from": "src", "to": "src/d0/in"}]}, "inside the other"),
        ({"renamed": [{"from": "src", "to": "gone/src"}]}, "is not in the workspace"),
        ({"renamed": [{"from": "src", "to": "x"}], "deleted": ["x"]}, "renames"),
        ({"renamed": [{"from": "src", "to": "x"}], "changes": [file("src/d1", b"x\n")]}, "renames"),
        ({"renamed": [{"from": "src", "to": "y"}, {"from": "lib", "to": "y/lib"}]}, "renames"),
        ({"renamed": [{"from": "src", "to": "x" * 1020}]}, "too long"),
        ({"renamed": [{"from": "../src", "to": "x"}]}, "'..'"),
        ({"renamed": [{"from": "src", "to": "a\nb"}]}, "control character"),
        ({"renamed": [{"from": "src", "to": ".git/src"}]}, ".git"),
        ({"renamed": [{"fro": "src", "to": "x"}]}, "from"),
    ]
    for extra, reason in cases:
        answer = api.post(url, json={"parent": version, **extra})
        assert answer.status_code == 422, (extra, answer.text)
        assert reason in answer.text, (extra, answer.text)
    assert manifest(api, workspace_id) == before
    assert api.get(f"/api/workspaces/{workspace_id}").json()["head"] == version


def test_a_rename_that_would_make_a_symlink_leave_the_tree_is_refused(
    api: TestClient, services: Services
) -> None:
    blobs_of(services).put_bytes(b"x\n")
    workspace_id = register(api)
    entries = [
        {"path": "a", "kind": "dir", "mode": 0o755},
        {"path": "a/src", "kind": "dir", "mode": 0o755},
        {"path": "a/src/up", "kind": "symlink", "target": "../../top.txt", "mode": 0o777},
        file("top.txt", b"x\n"),
    ]
    url = f"/api/workspaces/{workspace_id}/versions"
    assert api.post(url, json={"parent": 0, "changes": entries}).status_code == 201
    shallower = api.post(url, json={"parent": 1, "renamed": [{"from": "a/src", "to": "src"}]})
    assert shallower.status_code == 422, shallower.text
    assert "up" in shallower.text
    deeper = api.post(url, json={"parent": 1, "renamed": [{"from": "a", "to": "b"}]})
    assert deeper.status_code == 201, deeper.text
    assert manifest(api, workspace_id)["b/src/up"]["target"] == "../../top.txt"


def test_a_rename_into_a_folder_the_same_commit_makes(api: TestClient, services: Services) -> None:
    workspace_id, version = seed(api, services)
    body = {
        "parent": version,
        "changes": [{"path": "new", "kind": "dir", "mode": 0o755}],
        "deleted": ["src.d"],
        "renamed": [{"from": "src", "to": "new/src"}],
    }
    answer = api.post(f"/api/workspaces/{workspace_id}/versions", json=body)

    assert answer.status_code == 201, answer.text
    after = manifest(api, workspace_id)
    assert "new/src/d0/link" in after and "src" not in after and "src.d" not in after
    assert len([p for p in after if p.startswith("new/src/")]) == FILES + 11
    assert answer.json()["files"] == FILES + len(NEIGHBOURS) - 1


def test_a_rename_against_a_stale_parent_is_stale(api: TestClient, services: Services) -> None:
    workspace_id, version = seed(api, services)
    url = f"/api/workspaces/{workspace_id}/versions"
    answer = api.post(url, json={"parent": version - 1, "renamed": [{"from": "src", "to": "x"}]})
    assert answer.status_code == 409
    assert answer.json()["detail"]["head"] == version
