"""Workspace API bodies: a NUL or a lone surrogate in any text field gets a 422 naming it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

HASH = "a" * 64


def _post(api: TestClient, url: str, body: Any) -> Any:
    # ensure_ascii sends a lone surrogate as a \ud800 escape, as a client's encoder would.
    return api.post(
        url,
        content=json.dumps(body, ensure_ascii=True).encode(),
        headers={"Content-Type": "application/json"},
    )


def _workspace(api: TestClient) -> str:
    r = api.post("/api/workspaces", json={"key": "host:/src", "name": "src", "root": "/src"})
    assert r.status_code in (200, 201), r.text
    return str(r.json()["id"])


def _refused(r: Any, loc: list[Any], char: str) -> None:
    assert r.status_code == 422, r.text
    [error] = r.json()["detail"]
    assert error["loc"] == ["body", *loc]
    # pydantic refuses a surrogate before the Line check when it strips whitespace first.
    assert f"U+{ord(char):04X}" in error["msg"] or "unicode" in error["msg"]
    r.content.decode("utf-8")  # strict: the echoed input is valid UTF-8 too


@pytest.mark.parametrize("char", ["\x00", "\ud800"])
@pytest.mark.parametrize("field", ["key", "name", "root"])
def test_registering_refuses_the_character_naming_the_field(
    api: TestClient, field: str, char: str
) -> None:
    body = {"key": "host:/src", "name": "src", "root": "/src", field: f"x{char}y"}
    _refused(_post(api, "/api/workspaces", body), [field], char)
    assert api.get("/api/workspaces").json() == []


@pytest.mark.parametrize("char", ["\x00", "\ud800"])
@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"changes": [{"path": "a{c}b", "kind": "dir"}]}, ["changes", 0, "path"]),
        (
            {"changes": [{"path": "l", "kind": "symlink", "target": "t{c}"}]},
            ["changes", 0, "target"],
        ),
        (
            {"changes": [{"path": "f", "kind": "file", "hash": HASH, "size": 1}, {"path": "{c}"}]},
            ["changes", 1, "path"],
        ),
        ({"deleted": ["ok", "gone{c}"]}, ["deleted", 1]),
    ],
)
def test_a_commit_refuses_the_character_naming_the_field(
    api: TestClient, body: dict[str, Any], loc: list[Any], char: str
) -> None:
    workspace = _workspace(api)
    sent = json.loads(json.dumps(body).replace("{c}", json.dumps(char)[1:-1]))
    r = _post(api, f"/api/workspaces/{workspace}/versions", {"parent": 0, **sent})
    _refused(r, loc, char)
    assert api.get(f"/api/workspaces/{workspace}").json()["head"] == 0


@pytest.mark.parametrize("char", ["\x00", "\ud800"])
def test_a_conflict_report_refuses_the_character_naming_the_field(
    api: TestClient, char: str
) -> None:
    workspace = _workspace(api)
    body = {"task_id": "t1", "conflicts": [{"path": "ok"}, {"path": "p", "copy_path": f"c{char}"}]}
    r = _post(api, f"/api/workspaces/{workspace}/conflicts", body)
    _refused(r, ["conflicts", 1, "copy_path"], char)


def test_a_path_takes_unicode_but_no_tab(api: TestClient) -> None:
    workspace = _workspace(api)
    r = api.post(
        f"/api/workspaces/{workspace}/versions",
        json={"parent": 0, "changes": [{"path": "with\ttab", "kind": "dir"}]},
    )
    # A tab is a control character: paths, like every Line, take none.
    assert r.status_code == 422
    r = api.post(
        f"/api/workspaces/{workspace}/versions",
        json={"parent": 0, "changes": [{"path": "ünïcode", "kind": "dir"}]},
    )
    assert r.status_code == 201, r.text
    assert r.json()["number"] == 1
