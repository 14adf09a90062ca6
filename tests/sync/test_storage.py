"""The storage backends, disk and S3 (moto's server), and API replicas sharing one S3 store."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from orchestrator import trajectories
from orchestrator.config import OrchestratorSettings
from orchestrator.models import utcnow
from orchestrator.reporting import Reporters
from orchestrator.services import Services
from orchestrator.workspace_gc import GcReport, collect
from sync.base import Storage
from sync.errors import BlobHashMismatch, ObjectMissing, StorageError, StorageUnavailable
from sync.hashing import hash_bytes
from sync.s3 import LIST_FROM, PART, S3Storage
from sync.storage import StorageConfig, open_storage
from tests.live import free_port
from tests.object_storage import S3Server
from tests.waiting import wait_until
from web.app import create_app
from web.config import WebSettings

A, B = b"alpha\n", b"beta\n"


@pytest.fixture(params=["disk", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "disk":
        return open_storage(StorageConfig(), tmp_path / "blobs")
    server: S3Server = request.getfixturevalue("s3_server")
    settings = OrchestratorSettings(data_dir=tmp_path, **server.settings(server.bucket()))
    return open_storage(settings.storage_config(), tmp_path)


def test_blobs_and_files_round_trip(storage: Storage, tmp_path: Path) -> None:
    digest = storage.put_bytes(A)
    assert digest == hash_bytes(A)
    assert storage.has(digest) and storage.read(digest) == A
    assert b"".join(storage.open(digest)) == A
    assert storage.missing([hash_bytes(B), digest, hash_bytes(B)]) == [hash_bytes(B)]
    writer = storage.writer(None)
    writer.write(B)
    assert writer.commit() is True and writer.digest == hash_bytes(B)
    again = storage.writer(hash_bytes(B))
    again.write(B)
    assert again.commit() is False

    record = tmp_path / "trajectory.json"
    record.write_text('{"steps": []}')
    storage.put_file("trajectories/a1.json", record)
    assert b"".join(storage.open_file("trajectories/a1.json")) == b'{"steps": []}'


def test_wrong_content_missing_objects_and_bad_names_are_refused(storage: Storage) -> None:
    writer = storage.writer(hash_bytes(A))
    writer.write(B)
    with pytest.raises(BlobHashMismatch, match="hashes to"):
        writer.commit()
    assert not storage.has(hash_bytes(A)) and not storage.has(hash_bytes(B))
    with pytest.raises(ObjectMissing, match=hash_bytes(A)):
        storage.open(hash_bytes(A))
    with pytest.raises(ObjectMissing, match=hash_bytes(A)):
        storage.read(hash_bytes(A))
    with pytest.raises(ObjectMissing, match=r"trajectories/none\.json"):
        storage.open_file("trajectories/none.json")
    for key in ("", "../x", "a//b", "a/./b"):
        with pytest.raises(StorageError, match="not a storage key"):
            storage.open_file(key)
    with pytest.raises(ValueError, match="not a blob hash"):
        storage.writer("../../etc/passwd")


def test_a_large_blob_goes_up_in_parts_and_only_when_it_verifies(s3_server: S3Server) -> None:
    fields = s3_server.settings(s3_server.bucket())
    storage = open_storage(OrchestratorSettings(**fields).storage_config(), Path("/nonexistent"))
    assert isinstance(storage, S3Storage)
    big = bytes(range(256)) * (PART // 256) + b"tail" * 1000  # two parts
    wrong = storage.writer(hash_bytes(big))
    for i in range(0, len(big), 1 << 20):
        wrong.write(big[i : i + (1 << 20)] if i else b"X" + big[1 : 1 << 20])
    with pytest.raises(BlobHashMismatch):
        wrong.commit()
    assert not storage.has(hash_bytes(big))
    assert storage.client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", []) == []

    right = storage.writer(hash_bytes(big))
    for i in range(0, len(big), 1 << 20):
        right.write(big[i : i + (1 << 20)])
    assert right.commit() is True
    assert storage.read(hash_bytes(big)) == big


def test_a_bad_storage_url_is_refused_naming_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown scheme 'gs'.*\['file', 's3'\]"):
        open_storage(StorageConfig(url="gs://bucket/x"), tmp_path)
    with pytest.raises(ValueError, match="names no bucket"):
        open_storage(StorageConfig(url="s3:///prefix"), tmp_path)
    assert open_storage(StorageConfig(url=f"file://{tmp_path}/elsewhere"), tmp_path).put_bytes(A)
    assert (tmp_path / "elsewhere" / "objects").is_dir()


@pytest.fixture
def shared(settings: OrchestratorSettings, s3_server: S3Server) -> OrchestratorSettings:
    return settings.model_copy(update=s3_server.settings(s3_server.bucket()))


@pytest.fixture
def replicas(
    shared: OrchestratorSettings, tmp_path: Path, admin_token_for: str
) -> Iterator[tuple[TestClient, TestClient]]:
    """Two API apps on their own data directories, one database and one S3 store."""
    one = Services(shared.model_copy(update={"data_dir": tmp_path / "api1"}), reporters=Reporters())
    two = Services(shared.model_copy(update={"data_dir": tmp_path / "api2"}), reporters=Reporters())
    headers = {"Authorization": f"Bearer {admin_token_for}"}
    with (
        TestClient(create_app(one, WebSettings()), headers=headers) as first,
        TestClient(create_app(two, WebSettings()), headers=headers) as second,
    ):
        yield first, second
    one.close()
    two.close()


@pytest.fixture
def admin_token_for(shared: OrchestratorSettings) -> str:
    from orchestrator.tokens import create_token

    services = Services(shared, reporters=Reporters())
    services.migrate()
    with services.sessions.begin() as session:
        token = create_token(session, name="admin", is_admin=True, now=utcnow())
    services.close()
    return token


def test_any_replica_serves_what_another_stored(
    replicas: tuple[TestClient, TestClient], tmp_path: Path
) -> None:
    first, second = replicas
    digest = hash_bytes(A)
    assert first.put(f"/api/blobs/{digest}", content=iter([A[:2], A[2:]])).status_code == 201
    assert second.post("/api/blobs/missing", json={"hashes": [digest]}).json() == {"missing": []}
    fetched = second.get(f"/api/blobs/{digest}")
    assert fetched.status_code == 200 and fetched.content == A
    assert second.put(f"/api/blobs/{digest}", content=A).status_code == 200  # held already

    workspace = first.post("/api/workspaces", json={"key": "k", "name": "p", "root": "/p"})
    entry = {"path": "a.txt", "kind": "file", "hash": digest, "mode": 0o644, "size": len(A)}
    versions = f"/api/workspaces/{workspace.json()['id']}/versions"
    made = second.post(versions, json={"parent": 0, "changes": [entry]})
    assert made.status_code == 201, made.text
    snapshot = first.post(f"{versions}/1/snapshot").json()
    manifest = second.get(f"/api/blobs/{snapshot['manifest_hash']}")
    assert manifest.status_code == 200 and b"a.txt" in manifest.content
    assert not (tmp_path / "api1" / "blobs").exists() and not (tmp_path / "api2" / "blobs").exists()

    missing = hash_bytes(B)
    absent = second.get(f"/api/blobs/{missing}")
    assert absent.status_code == 404 and missing in absent.json()["detail"]


def test_an_unreachable_store_is_a_503_with_retry_after(
    settings: OrchestratorSettings, admin_token: str, tmp_path: Path
) -> None:
    down = settings.model_copy(
        update={"storage_url": "s3://gone/x", "s3_endpoint_url": f"http://127.0.0.1:{free_port()}",
                "storage_attempts": 1, "s3_access_key_id": "k", "s3_secret_access_key": "s"}
    )  # fmt: skip
    services = Services(down, reporters=Reporters())
    with TestClient(
        create_app(services, WebSettings()), headers={"Authorization": f"Bearer {admin_token}"}
    ) as api:
        for method, path, body in (
            ("PUT", f"/api/blobs/{hash_bytes(A)}", A),
            ("GET", f"/api/blobs/{hash_bytes(A)}", None),
            ("POST", "/api/blobs/missing", None),
        ):
            json = {"hashes": [hash_bytes(A)]} if body is None and method == "POST" else None
            answer = api.request(method, path, content=body, json=json)
            assert answer.status_code == 503, (path, answer.text)
            assert answer.headers["Retry-After"].isdigit()
            assert answer.json()["part"] == "object storage"
            assert "unreachable" in answer.json()["detail"]
        ready = wait_until(
            lambda: "storage" in (r := api.get("/readyz")).json()["checks"] and r,
            what="the first refresh",
        )
        assert ready.status_code == 503 and "storage" in ready.json()["failing"]
        assert "object store is unreachable" in ready.json()["checks"]["storage"]
    services.close()
    with pytest.raises(StorageUnavailable):
        services.storage.has(hash_bytes(A))
    saved = tmp_path / "a1.json"
    saved.write_text("{}")
    assert trajectories.upload(services.storage, "a1", saved, keep=False) is False
    assert saved.exists()  # kept on the worker when the store is away; the attempt goes on


def test_a_trajectory_stored_by_a_worker_is_served_by_any_replica(
    replicas: tuple[TestClient, TestClient], shared: OrchestratorSettings, tmp_path: Path
) -> None:
    first, second = replicas
    made = first.post("/api/tasks", json={"repo": "https://example.com/r.git", "instruction": "x"})
    assert made.status_code == 201, made.text
    task = made.json()
    url = f"/api/tasks/{task['id']}/attempts/1/trajectory"
    absent = second.get(url)
    assert absent.status_code == 404 and "stored when the attempt ends" in absent.json()["detail"]

    saved = tmp_path / "a.json"
    saved.write_text('{"reason": "finished", "steps": 2}')
    worker = open_storage(shared.storage_config(), tmp_path / "worker")  # a worker's own view
    trajectories.upload(worker, task["attempts"][0]["id"], saved, keep=False)
    assert not saved.exists()

    served = second.get(url)
    assert served.status_code == 200 and served.headers["content-type"] == "application/json"
    assert served.json() == {"reason": "finished", "steps": 2}
    assert first.get(f"/api/tasks/{task['id']}/attempts/2/trajectory").status_code == 404
    assert first.get(f"/api/tasks/{task['id']}/attempts/0/trajectory").status_code == 422
    assert first.get("/api/tasks/nope/attempts/1/trajectory").status_code == 404
    assert TestClient(first.app).get(url).status_code == 401


def test_trajectories_left_by_failed_uploads_are_sent_and_removed_once_old_enough(
    storage: Storage, tmp_path: Path
) -> None:
    spool = tmp_path / "trajectories"
    spool.mkdir()
    for name, age in [("left1", 600), ("left2", 301), ("fresh", 10)]:
        path = spool / f"{name}.json"
        path.write_text(f'{{"attempt": "{name}"}}')
        then = time.time() - age
        os.utime(path, (then, then))
    assert trajectories.upload_left(storage, spool) == 2
    assert sorted(p.name for p in spool.iterdir()) == ["fresh.json"]  # maybe in flight
    assert b"".join(storage.open_file("trajectories/left1.json")) == b'{"attempt": "left1"}'
    assert b"".join(storage.open_file("trajectories/left2.json")) == b'{"attempt": "left2"}'
    with pytest.raises(ObjectMissing):
        storage.open_file("trajectories/fresh.json")
    assert trajectories.upload_left(storage, spool) == 0


def test_garbage_collection_removes_unnamed_blobs_from_the_bucket(
    shared: OrchestratorSettings, admin_token_for: str
) -> None:
    services = Services(shared, reporters=Reporters())
    headers = {"Authorization": f"Bearer {admin_token_for}"}
    with TestClient(create_app(services, WebSettings()), headers=headers) as api:
        workspace = api.post("/api/workspaces", json={"key": "k", "name": "p", "root": "/p"})
        for data in (A, B):
            assert api.put(f"/api/blobs/{hash_bytes(data)}", content=data).status_code == 201
        entry = {"path": "a.txt", "kind": "file", "hash": hash_bytes(A), "mode": 0o644, "size": 6}
        versions = f"/api/workspaces/{workspace.json()['id']}/versions"
        assert api.post(versions, json={"parent": 0, "changes": [entry]}).status_code == 201
    storage = services.storage
    assert sorted(d for d, _, _ in storage.listing()) == sorted([hash_bytes(A), hash_bytes(B)])

    def gc(dry_run: bool) -> GcReport:
        with services.sessions.begin() as session:
            return collect(
                session, blobs=storage, snapshots_dir=shared.data_dir / "snapshots",
                keep_versions=1, grace=timedelta(0), now=utcnow(), dry_run=dry_run,
            )  # fmt: skip

    assert (gc(True).blobs_removed, storage.has(hash_bytes(B))) == (1, True)
    report = gc(False)
    assert (report.blobs_removed, report.bytes_freed) == (1, len(B))
    assert storage.has(hash_bytes(A)) and not storage.has(hash_bytes(B))  # A is named
    services.close()


def test_missing_answers_the_same_for_a_few_hashes_and_for_a_folder_full(
    storage: Storage,
) -> None:
    same_folder = [d for n in range(20_000) if (d := hash_bytes(str(n).encode()))[:2] == "ab"]
    held = [storage.put_bytes(str(n).encode()) for n in range(20_000)
            if hash_bytes(str(n).encode()) in same_folder[:LIST_FROM]]  # fmt: skip
    absent = ["ab" + "0" * 62, "ab" + "f" * 62, hash_bytes(b"elsewhere")]
    asked = [*held, *same_folder[LIST_FROM:], *absent, held[0]]  # a folder listed; others asked
    assert storage.missing(asked) == [*same_folder[LIST_FROM:], *absent]
    assert storage.missing(held[:2] + absent[2:]) == absent[2:]  # a HEAD each
