"""The workspace API in-process on both stores and both storage backends: register, missing,
upload, commit, manifest."""

from __future__ import annotations

import base64
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from orchestrator.models import Workspace, WorkspaceEntry, WorkspaceVersion
from orchestrator.services import Services
from sync.base import Storage
from sync.batches import MAX_RECORD, encode
from sync.blobs import BlobStore
from sync.hashing import hash_bytes
from sync.s3 import S3Storage
from tests.conftest import without_token
from tests.live import LiveApi

A, B = b"alpha\n", b"beta\n"


def file(path: str, data: bytes, mode: int = 0o644) -> dict[str, Any]:
    return {"path": path, "kind": "file", "hash": hash_bytes(data), "mode": mode,
            "size": len(data)}  # fmt: skip


def register(api: TestClient, key: str = "host:/home/me/proj") -> str:
    response = api.post("/api/workspaces", json={"key": key, "name": "proj", "root": "/p"})
    assert response.status_code in (200, 201), response.text
    workspace_id: str = response.json()["id"]
    return workspace_id


@pytest.fixture
def storage_fields(paired_storage: dict[str, str]) -> dict[str, str]:
    return paired_storage


def blobs_of(services: Services) -> Storage:
    return services.storage


def partials(blobs: Storage) -> list[object]:
    """Uploads begun and not ended: temporary files, or S3 multipart uploads."""
    if isinstance(blobs, BlobStore):
        return list(blobs.partials())
    assert isinstance(blobs, S3Storage)
    found = blobs.client.list_multipart_uploads(Bucket=blobs.bucket)
    return list(found.get("Uploads", []))


def counts(services: Services) -> tuple[int, int]:
    with services.sessions() as session:
        versions = session.scalar(select(func.count()).select_from(WorkspaceVersion)) or 0
        entries = session.scalar(select(func.count()).select_from(WorkspaceEntry)) or 0
    return versions, entries


def test_register_is_idempotent_per_key(api: TestClient) -> None:
    first = api.post("/api/workspaces", json={"key": "h:/a", "name": "a", "root": "/a"})
    again = api.post("/api/workspaces", json={"key": "h:/a", "name": "a", "root": "/a"})
    other = api.post("/api/workspaces", json={"key": "h:/b", "name": "b", "root": "/b"})

    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 201)
    assert first.json()["id"] == again.json()["id"] != other.json()["id"]
    assert first.json()["head"] == 0 and first.json()["version"] is None
    listed = api.get("/api/workspaces").json()
    assert sorted(w["key"] for w in listed) == ["h:/a", "h:/b"]
    assert (
        api.post("/api/workspaces", json={"key": "", "name": "a", "root": "/a"}).status_code == 422
    )


def test_a_checkout_registered_by_several_at_once_is_one_workspace(
    live_api: LiveApi, services: Services
) -> None:
    """`autan sync` and `autan run --workspace` started together both register the checkout:
    each gets the same workspace, none an error (a 500 here killed the daemon at its start)."""
    callers = 4
    headers = {"Authorization": f"Bearer {live_api.token}"}
    for round_ in range(8):
        key = f"host:/race/{round_}"
        together = threading.Barrier(callers)

        def register_now(key: str = key, together: threading.Barrier = together) -> httpx.Response:
            together.wait(timeout=30)
            body = {"key": key, "name": "race", "root": "/race"}
            return httpx.post(f"{live_api.url}/api/workspaces", json=body, headers=headers)

        with ThreadPoolExecutor(callers) as pool:
            answers = list(pool.map(lambda _: register_now(), range(callers)))
        codes = sorted(answer.status_code for answer in answers)
        assert codes == [200] * (callers - 1) + [201], [answer.text for answer in answers]
        assert len({answer.json()["id"] for answer in answers}) == 1
    with services.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Workspace)) == 8


def test_every_route_wants_the_bearer_token(api: TestClient) -> None:
    workspace_id = register(api)
    with without_token(api) as bare:
        for method, path in [
            ("POST", "/api/workspaces"),
            ("GET", "/api/workspaces"),
            ("POST", "/api/blobs/missing"),
            ("PUT", f"/api/blobs/{hash_bytes(A)}"),
            ("POST", "/api/blobs"),
            ("POST", f"/api/workspaces/{workspace_id}/versions"),
            ("GET", f"/api/workspaces/{workspace_id}/manifest"),
        ]:
            assert bare.request(method, path).status_code == 401, path


def test_upload_only_what_is_missing_and_refuse_a_wrong_hash(
    api: TestClient, services: Services
) -> None:
    blobs = blobs_of(services)
    asked = api.post("/api/blobs/missing", json={"hashes": [hash_bytes(A), hash_bytes(B)]})
    assert asked.json() == {"missing": [hash_bytes(A), hash_bytes(B)]}

    wrong = api.put(f"/api/blobs/{hash_bytes(A)}", content=B)
    assert wrong.status_code == 422 and "hashes to" in wrong.json()["detail"]
    assert not blobs.has(hash_bytes(A)) and not blobs.has(hash_bytes(B))
    assert partials(blobs) == []

    stored = api.put(f"/api/blobs/{hash_bytes(A)}", content=iter([A[:3], A[3:]]))
    assert stored.status_code == 201
    assert stored.json() == {"hash": hash_bytes(A), "size": len(A), "created": True}
    assert api.put(f"/api/blobs/{hash_bytes(A)}", content=A).status_code == 200
    assert blobs.read(hash_bytes(A)) == A
    assert api.post(
        "/api/blobs/missing", json={"hashes": [hash_bytes(A), hash_bytes(B)]}
    ).json() == {"missing": [hash_bytes(B)]}
    assert api.put("/api/blobs/not-a-hash", content=A).status_code == 422
    assert api.post("/api/blobs/missing", json={"hashes": ["../x"]}).status_code == 422


def test_a_batch_of_small_blobs_is_stored_whole_or_not_at_all(
    api: TestClient, services: Services
) -> None:
    blobs = blobs_of(services)
    C = b""
    good = b"".join(encode([(hash_bytes(A), A), (hash_bytes(B), B), (hash_bytes(C), C)]))
    one_byte_at_a_time = (good[i : i + 1] for i in range(len(good)))
    stored = api.post("/api/blobs", content=one_byte_at_a_time)
    assert stored.status_code == 201, stored.text
    assert stored.json() == {"blobs": 3, "created": 3, "bytes": len(A) + len(B)}
    assert all(blobs.read(hash_bytes(x)) == x for x in (A, B, C))
    assert api.post("/api/blobs", content=good).json()["created"] == 0  # held already

    D, E = b"delta\n", b"echo\n"
    bad_bodies = {
        "a wrong hash": b"".join(encode([(hash_bytes(D), D), (hash_bytes(D), E)])),
        "cut off": b"".join(encode([(hash_bytes(D), D)])) + f"{hash_bytes(E)} 99\n".encode() + E,
        "no header": b"not a header\n" + D,
        "a path for a hash": f"../../etc/passwd {len(D)}\n".encode() + D,
        "too large": f"{hash_bytes(D)} {MAX_RECORD + 1}\n".encode(),
        "a header without end": b"x" * 200,
    }
    for why, body in bad_bodies.items():
        refused = api.post("/api/blobs", content=body)
        assert refused.status_code == 422, why
        assert not blobs.has(hash_bytes(D)) and not blobs.has(hash_bytes(E)), why
    assert partials(blobs) == []


def test_a_commit_can_carry_small_content_inline(api: TestClient, services: Services) -> None:
    blobs = blobs_of(services)
    workspace_id = register(api)
    versions = f"/api/workspaces/{workspace_id}/versions"
    forged = {"parent": 0, "changes": [file("a.txt", A)],
              "inline": {hash_bytes(A): base64.b64encode(B).decode()}}  # fmt: skip
    refused = api.post(versions, json=forged)
    assert refused.status_code == 422 and "does not hash to it" in refused.text
    assert not blobs.has(hash_bytes(A)) and not blobs.has(hash_bytes(B))
    assert counts(services) == (0, 0)
    big = b"x" * (300 << 10)
    too_big = {"parent": 0, "inline": {hash_bytes(big): base64.b64encode(big).decode()}}
    assert api.post(versions, json=too_big).status_code == 422
    not_base64 = {"parent": 0, "inline": {hash_bytes(A): "%%%"}}
    assert api.post(versions, json=not_base64).status_code == 422

    good = {"parent": 0, "changes": [file("a.txt", A)],
            "inline": {hash_bytes(A): base64.b64encode(A).decode()}}  # fmt: skip
    made = api.post(versions, json=good)
    assert made.status_code == 201 and made.json()["number"] == 1
    assert blobs.read(hash_bytes(A)) == A


def test_a_manifest_naming_missing_blobs_is_refused(api: TestClient, services: Services) -> None:
    workspace_id = register(api)
    api.put(f"/api/blobs/{hash_bytes(A)}", content=A)

    response = api.post(
        f"/api/workspaces/{workspace_id}/versions",
        json={"parent": 0, "changes": [file("a.txt", A), file("b.txt", B)]},
    )

    assert response.status_code == 409
    assert response.json()["detail"]["missing"] == [hash_bytes(B)]
    assert api.get(f"/api/workspaces/{workspace_id}").json()["head"] == 0
    assert counts(services) == (0, 0)


def test_commits_make_versions_and_every_version_reads_back(
    api: TestClient, services: Services
) -> None:
    workspace_id = register(api)
    for data in (A, B):
        api.put(f"/api/blobs/{hash_bytes(data)}", content=data)
    versions = f"/api/workspaces/{workspace_id}/versions"
    first = api.post(versions, json={"parent": 0, "changes": [
        {"path": "src", "kind": "dir"}, file("src/a.txt", A), file("run.sh", B, 0o755),
        {"path": "link", "kind": "symlink", "target": "src/a.txt", "mode": 0o777},
    ]})  # fmt: skip
    assert first.status_code == 201, first.text
    assert first.json()["number"] == 1 and first.json()["files"] == 2
    assert first.json()["bytes"] == len(A) + len(B)

    second = api.post(versions, json={"parent": 1, "changes": [file("b.txt", A)],
                                      "deleted": ["src"]})  # fmt: skip
    assert second.status_code == 201 and second.json()["number"] == 2
    assert api.post(versions, json={"parent": 2, "changes": [file("b.txt", A)]}).status_code == 200

    assert second.json()["manifest_hash"] is None  # written when a task first asks for it
    snapshot = api.post(f"/api/workspaces/{workspace_id}/versions/2/snapshot").json()
    again = api.post(f"/api/workspaces/{workspace_id}/versions/2/snapshot").json()
    assert snapshot["manifest_hash"] == again["manifest_hash"] is not None
    head = api.get(f"/api/workspaces/{workspace_id}/manifest").json()
    assert head["version"] == 2 and head["manifest_hash"] == snapshot["manifest_hash"]
    assert [e["path"] for e in head["entries"]] == ["b.txt", "link", "run.sh"]
    old = api.get(f"/api/workspaces/{workspace_id}/manifest", params={"version": 1}).json()
    assert [e["path"] for e in old["entries"]] == ["link", "run.sh", "src", "src/a.txt"]
    assert blobs_of(services).has(snapshot["manifest_hash"])
    assert api.post(f"/api/workspaces/{workspace_id}/versions/7/snapshot").status_code == 404
    assert api.get(f"/api/workspaces/{workspace_id}/manifest?version=9").status_code == 404
    detail = api.get(f"/api/workspaces/{workspace_id}").json()
    assert detail["head"] == 2 and detail["version"]["number"] == 2


def test_bad_commits_change_nothing(api: TestClient, services: Services) -> None:
    workspace_id = register(api)
    api.put(f"/api/blobs/{hash_bytes(A)}", content=A)
    versions = f"/api/workspaces/{workspace_id}/versions"
    assert api.post(versions, json={"parent": 0, "changes": [file("a", A)]}).status_code == 201
    before = counts(services)

    stale = api.post(versions, json={"parent": 0, "changes": [file("b", A)]})
    assert stale.status_code == 409 and stale.json()["detail"]["head"] == 1
    for bad in [
        {"parent": 1, "changes": [file("../escape", A)]},
        {"parent": 1, "changes": [file("/abs", A)]},
        {"parent": 1, "changes": [file(".git/hooks/post-checkout", A)]},
        {"parent": 1, "deleted": ["../.."]},
        {"parent": 1, "changes": [{"path": "l", "kind": "symlink", "target": "../../etc"}]},
        {"parent": 1, "changes": [{"path": "l", "kind": "symlink", "target": "/etc/passwd"}]},
        {"parent": 1, "changes": [{"path": "a/x", "kind": "dir"}]},  # under the file a
        {"parent": 1, "changes": [{**file("c", A), "mode": 0o4755}]},
        {"parent": 1, "changes": [{**file("c", A), "hash": "zz"}]},
    ]:
        response = api.post(versions, json=bad)
        assert response.status_code == 422, (bad, response.text)
    assert counts(services) == before
    assert api.get(f"/api/workspaces/{workspace_id}").json()["head"] == 1
    missing = api.post("/api/workspaces/" + "0" * 32 + "/versions", json={"parent": 0})
    assert missing.status_code == 404


def test_folders_hold_what_is_under_them(api: TestClient) -> None:
    workspace_id = register(api)
    api.put(f"/api/blobs/{hash_bytes(A)}", content=A)
    versions = f"/api/workspaces/{workspace_id}/versions"
    first = api.post(versions, json={"parent": 0, "changes": [
        {"path": "a_b", "kind": "dir"}, file("a_b/x", A), {"path": "aXb", "kind": "dir"},
        file("aXb/y", A),
    ]})  # fmt: skip
    assert first.status_code == 201, first.text

    orphan = api.post(versions, json={"parent": 1, "changes": [file("nowhere/x", A)]})
    assert orphan.status_code == 422 and "its folder 'nowhere'" in orphan.json()["detail"]
    over = api.post(versions, json={"parent": 1, "changes": [file("a_b", A)]})
    assert over.status_code == 422 and "'a_b/x' sits under 'a_b'" in over.json()["detail"]
    assert api.get(f"/api/workspaces/{workspace_id}").json()["head"] == 1

    swapped = api.post(
        versions, json={"parent": 1, "changes": [file("a_b", A)], "deleted": ["a_b/x"]}
    )
    assert swapped.status_code == 201 and swapped.json()["files"] == 2
    gone = api.post(versions, json={"parent": 2, "deleted": ["a_b"]})  # `_` is no wildcard
    assert gone.status_code == 201 and gone.json()["files"] == 1
    tree = api.get(f"/api/workspaces/{workspace_id}/manifest").json()["entries"]
    assert [e["path"] for e in tree] == ["aXb", "aXb/y"]
