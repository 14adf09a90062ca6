"""Big files as chunks, on both storage backends: a round trip through sync and a worker's
snapshot, an edit that sends only the chunks it touched, forged chunk lists refused with
nothing stored, and a server without chunk lists sent whole files."""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastcdc import fastcdc

from orchestrator.services import Services
from sync.base import Storage
from sync.cache import worker_blobs
from sync.chunks import AVG_CHUNK, MAX_CHUNK, MAX_CHUNKS, MIN_CHUNK, pieces
from sync.hashing import hash_bytes
from sync.remote import HttpRemote
from sync.snapshots import materialise
from tests.live import LiveApi
from tests.sync.conftest import CountingTransport, Daemons
from tests.sync.test_api import partials

MIB = 1 << 20


@pytest.fixture
def storage_fields(paired_storage: dict[str, str]) -> dict[str, str]:
    return paired_storage


def noise(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


def chunk_sizes(data: bytes) -> dict[str, int]:
    return {hash_bytes(piece): len(piece) for piece in pieces(io.BytesIO(data))}


def test_cutting_a_window_at_a_time_cuts_as_the_whole_file_is_cut() -> None:
    data = noise(21 * MIB + 12345)
    whole = [data[c.offset : c.offset + c.length]
             for c in fastcdc(data, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK)]  # fmt: skip
    assert list(pieces(io.BytesIO(data))) == whole
    assert len(whole) > 40 and max(len(p) for p in whole) <= MAX_CHUNK


def test_after_an_insertion_or_a_deletion_the_cuts_fall_back_into_step() -> None:
    data = noise(12 * MIB)
    before = chunk_sizes(data)
    middle = len(data) // 2
    for edited in (
        data[:middle] + b"inserted" + data[middle:],
        data[:middle] + data[middle + 99 :],
    ):
        after = chunk_sizes(edited)
        new = [chunk for chunk in after if chunk not in before]
        assert 1 <= len(new) <= 2 and len(after) - len(new) >= len(before) - 2


def test_a_big_file_goes_as_chunks_and_an_edit_sends_only_the_chunks_it_touched(
    daemons: Daemons, checkout: Path, services: Services, tmp_path: Path
) -> None:
    data = noise(9 * MIB)
    (checkout / "big.bin").write_bytes(data)
    (checkout / "small.txt").write_text("small\n")
    daemon = daemons.make(checkout)
    report = daemon.sync()

    sent = daemons.transports[0]
    digest = hash_bytes(data)
    # Asked whole, told which chunks are lacking (all), chunks sent, list again: stored.
    assert sent.sent.count(("PUT", f"/api/blobs/{digest}/chunks")) == 2
    assert sent.count("PUT", f"/api/blobs/{digest}") == 2  # never the file itself
    assert (report.uploaded, report.uploaded_bytes) == (2, len(data) + 6)
    workspace_id = daemon.state.workspace_id or ""
    remote = daemons.remotes[0]
    manifest = remote.snapshot(workspace_id, report.version)
    blobs = worker_blobs(services.storage, tmp_path / "cache", 1 << 30)
    tree = materialise(blobs, manifest, tmp_path / "snapshots")
    assert (tree / "big.bin").read_bytes() == data
    assert (tree / "small.txt").read_text() == "small\n"

    middle = len(data) // 2
    edited = data[:middle] + b"x" * 100 + data[middle + 100 :]
    (checkout / "big.bin").write_bytes(edited)
    sent.clear()
    report = daemon.sync()

    before, after = chunk_sizes(data), chunk_sizes(edited)
    new = sum(size for chunk, size in after.items() if chunk not in before)
    assert 0 < new <= 2 * MAX_CHUNK
    assert (report.uploaded, report.uploaded_bytes) == (1, new)
    # The daemon sent this file before: the new chunks go first, then the list, once.
    assert sent.sent.count(("PUT", f"/api/blobs/{hash_bytes(edited)}/chunks")) == 1
    assert sum(sent.body_bytes) < new + 64 * 1024  # the chunks, their list, the commit
    assert b"".join(services.storage.open(hash_bytes(edited))) == edited


def fetched(live_api: LiveApi, digest: str) -> bytes:
    """A blob as the server holds it, read back by its hash (the admin's route)."""
    got = httpx.get(f"{live_api.url}/api/blobs/{digest}",
                    headers={"Authorization": f"Bearer {live_api.token}"}, timeout=60)  # fmt: skip
    assert got.status_code == 200, got.text
    return got.content


class OlderServer(CountingTransport):
    """The real API as a server from before chunk lists: it has no such route."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/chunks"):
            self.sent.append((request.method, request.url.path))
            self.body_bytes.append(0)
            return httpx.Response(404, json={"detail": "Not Found"}, request=request)
        return super().handle_request(request)


def test_a_server_without_chunk_lists_gets_big_files_whole(
    daemons: Daemons, checkout: Path, live_api: LiveApi, tmp_path: Path
) -> None:
    first, second = noise(5 * MIB, seed=1), noise(5 * MIB, seed=2)
    (checkout / "one.bin").write_bytes(first)
    daemon = daemons.make(checkout)
    older = OlderServer()
    daemon.remote = remote = HttpRemote(live_api.url, live_api.token, transport=older)
    try:
        assert daemon.sync().uploaded_bytes == len(first)
        (checkout / "two.bin").write_bytes(second)
        assert daemon.sync().uploaded_bytes == len(second)
    finally:
        remote.close()
    assert fetched(live_api, hash_bytes(second)) == second
    assert older.count("PUT", "/api/blobs/") == 3  # asked once, then whole files only
    assert older.sent.count(("PUT", f"/api/blobs/{hash_bytes(second)}")) == 1


class CollectingStore(CountingTransport):
    """The real API, with garbage collection removing a chunk just after its first upload."""

    def __init__(self, store: Storage, chunk: str) -> None:
        super().__init__()
        self.store, self.chunk = store, chunk

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if (request.method, request.url.path) == ("POST", "/api/blobs") and self.chunk:
            response.read()
            self.store.remove(self.chunk)
            self.chunk = ""
        return response


def test_a_chunk_collected_while_a_big_file_is_sent_is_sent_again(
    live_api: LiveApi, services: Services, tmp_path: Path
) -> None:
    data = noise(5 * MIB, seed=5)
    (tmp_path / "big.bin").write_bytes(data)
    first = next(pieces(io.BytesIO(data)))
    collecting = CollectingStore(services.storage, hash_bytes(first))
    remote = HttpRemote(live_api.url, live_api.token, transport=collecting)
    try:
        sent = remote.upload_chunked(hash_bytes(data), tmp_path / "big.bin")
        assert sent == len(data) + len(first)
        assert collecting.count("PUT", "/api/blobs/") == 3  # lacking all, lacking one, stored
        assert services.storage.read(hash_bytes(data)) == data

        # Sent before, the file's new chunks go first, then its list: here the store has
        # collected one more chunk meanwhile, so the list names it and it goes again.
        edited = data[:-100] + b"y" * 100
        (tmp_path / "big.bin").write_bytes(edited)
        services.storage.remove(hash_bytes(first))
        collecting.clear()
        tail = list(pieces(io.BytesIO(edited)))[-1]
        sent = remote.upload_chunked(hash_bytes(edited), tmp_path / "big.bin")
    finally:
        remote.close()
    assert sent == len(tail) + len(first)
    assert collecting.count("PUT", "/api/blobs/") == 2  # one chunk lacking, stored
    assert services.storage.read(hash_bytes(edited)) == edited


def put_list(live_api: LiveApi, digest: str, body: Any) -> httpx.Response:
    return httpx.put(
        f"{live_api.url}/api/blobs/{digest}/chunks", json=body, timeout=60,
        headers={"Authorization": f"Bearer {live_api.token}"},
    )  # fmt: skip


def test_forged_chunk_lists_are_refused_and_store_nothing(
    live_api: LiveApi, services: Services
) -> None:
    blobs = services.storage
    a, b = noise(300_000, seed=3), noise(200_000, seed=4)
    ha, hb = blobs.put_bytes(a), blobs.put_bytes(b)
    lost = hash_bytes(b"a chunk never sent")
    file = hash_bytes(a + b)
    forged: list[tuple[str, Any, int, str]] = [
        (hash_bytes(b + a), {"size": 500_000, "chunks": [[ha, 300_000], [hb, 200_000]]}, 422,
         "hashes to"),
        (file, {"size": 500_000, "chunks": [[ha, 300_000], [lost, 200_000]]}, 409,
         "missing"),
        (file, {"size": 2 * MAX_CHUNK, "chunks": [[ha, 2 * MAX_CHUNK]]}, 422,
         f"chunks hold 1 to {MAX_CHUNK}"),
        (file, {"size": 500_000, "chunks": [[ha, 200_000], [hb, 300_000]]}, 422,
         "is not 200000 bytes long"),
        (file, {"size": 500_000, "chunks": [[file, 300_000], [hb, 200_000]]}, 422,
         "is the file itself"),
        (file, {"size": 500_001, "chunks": [[ha, 300_000], [hb, 200_000]]}, 422,
         "add up to 500000 bytes, not the 500001"),
        (file, {"size": MAX_CHUNKS + 1, "chunks": [[ha, 1]] * (MAX_CHUNKS + 1)}, 422,
         f"at most {MAX_CHUNKS} items"),
        (file, {"size": 500_000, "chunks": [["not-a-hash", 500_000]]}, 422,
         "is not a blob hash"),
        ("not-a-hash", {"size": 500_000, "chunks": [[ha, 300_000], [hb, 200_000]]}, 422,
         "is not a blob hash"),
    ]  # fmt: skip
    for digest, body, code, reason in forged:
        answer = put_list(live_api, digest, body)
        assert answer.status_code == code, (reason, answer.text)
        assert reason in answer.text
        assert not blobs.has(hash_bytes(b + a)) and not blobs.has(file)
        assert partials(blobs) == []
    assert put_list(live_api, file, {"size": 500_000, "chunks": []}).status_code == 422
    missing = put_list(live_api, file, forged[1][1]).json()["detail"]["missing"]
    assert missing == [lost]

    whole = {"size": 500_000, "chunks": [[ha, 300_000], [hb, 200_000]]}
    stored = put_list(live_api, file, whole)
    assert (stored.status_code, stored.json()) == (201, {"hash": file, "size": 500_000,
                                                        "created": True})  # fmt: skip
    assert blobs.read(file) == a + b
    assert put_list(live_api, file, whole).status_code == 200
