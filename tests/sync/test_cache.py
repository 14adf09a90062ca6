"""A worker's blob cache of object storage, and snapshots built on a disk of the worker's own."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import SecretStr

from orchestrator.config import OrchestratorSettings
from sync.blobs import BlobStore
from sync.cache import IN_USE_S, BlobCache, worker_blobs
from sync.errors import StorageError, StorageUnavailable, SyncError
from sync.hashing import hash_bytes
from sync.manifests import Entry, canonical
from sync.s3 import S3Storage
from sync.snapshots import materialise
from sync.storage import StorageConfig, open_storage
from tests.object_storage import S3Server

MAIN, RUN = b"print('hi')\n", b"#!/bin/sh\necho run\n"


@pytest.fixture
def s3(s3_server: S3Server, tmp_path: Path) -> S3Storage:
    settings = OrchestratorSettings(data_dir=tmp_path, **s3_server.settings(s3_server.bucket()))
    store = open_storage(settings.storage_config(), tmp_path / "unused")
    assert isinstance(store, S3Storage)
    return store


def a_manifest(store: S3Storage | BlobStore) -> str:
    entries = [
        Entry(path="src", kind="dir", mode=0o755),
        Entry(path="src/main.py", kind="file", hash=store.put_bytes(MAIN), mode=0o644, size=12),
        Entry(path="run.sh", kind="file", hash=store.put_bytes(RUN), mode=0o755, size=19),
        Entry(path="main", kind="symlink", target="src/main.py", mode=0o777),
    ]
    return store.put_bytes(canonical(entries))


def check_tree(tree: Path) -> None:
    assert (tree / "src/main.py").read_bytes() == MAIN
    assert (tree / "run.sh").read_bytes() == RUN
    assert os.stat(tree / "run.sh").st_mode & 0o777 == 0o755
    assert os.stat(tree / "src/main.py").st_mode & 0o777 == 0o644
    assert os.readlink(tree / "main") == "src/main.py"


def test_a_cold_worker_fills_its_cache_and_links_the_snapshot_to_it(
    s3: S3Storage, tmp_path: Path
) -> None:
    manifest = a_manifest(s3)
    cache = worker_blobs(s3, tmp_path / "cache", 1 << 30)
    assert isinstance(cache, BlobCache)
    assert not cache.local.has(hash_bytes(MAIN))

    tree = materialise(cache, manifest, tmp_path / "snapshots")

    check_tree(tree)
    held = cache.local.path(hash_bytes(MAIN))
    assert held.read_bytes() == MAIN  # fetched once, verified, kept
    assert os.stat(tree / "src/main.py").st_ino == os.stat(held).st_ino  # same disk: a link
    warm = materialise(cache, manifest, tmp_path / "again")
    check_tree(warm)

    digest, size = cache.put_chunks(iter([b"agent ", b"edit\n"]))
    assert (digest, size) == (hash_bytes(b"agent edit\n"), 11)
    assert s3.read(digest) == b"agent edit\n"  # in the shared store before it returns


@pytest.fixture
def other_disk() -> Iterator[Path]:
    """A directory on another file system than the test's (tmpfs at /dev/shm)."""
    if os.stat("/dev/shm").st_dev == os.stat(tempfile.gettempdir()).st_dev:
        pytest.skip("/dev/shm is on the same file system as the temporary directory")
    path = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="autan-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_blobs_on_another_file_system_are_copied_never_linked(
    other_disk: Path, tmp_path: Path
) -> None:
    shared = BlobStore(other_disk / "blobs")  # a directory every host mounts
    manifest = a_manifest(shared)

    tree = materialise(worker_blobs(shared, tmp_path / "cache", 1 << 30), manifest, tmp_path / "s")

    check_tree(tree)
    assert os.stat(tree / "src/main.py").st_nlink == 1  # a copy, where a link raised EXDEV
    assert os.stat(tree / "run.sh").st_dev != os.stat(shared.path(hash_bytes(RUN))).st_dev


def test_a_damaged_or_missing_blob_is_refused_and_nothing_is_kept(
    s3: S3Storage, tmp_path: Path
) -> None:
    digest = hash_bytes(MAIN)
    s3.client.put_object(Bucket=s3.bucket, Key=s3.blob_key(digest), Body=b"not that\n")
    cache = BlobCache(s3, tmp_path / "cache", 1 << 30)
    with pytest.raises(StorageError, match=f"blob {digest} is damaged in the object store"):
        cache.fetch([digest])
    assert not cache.local.has(digest) and cache.local.partials() == []

    entries = [Entry(path="gone.txt", kind="file", hash=hash_bytes(RUN), mode=0o644, size=19)]
    manifest = s3.put_bytes(canonical(entries))
    with pytest.raises(SyncError, match=f"no blob {hash_bytes(RUN)}"):
        materialise(cache, manifest, tmp_path / "snapshots")
    assert not (tmp_path / "snapshots" / manifest).exists()


def test_the_cache_keeps_to_its_budget_dropping_what_was_used_longest_ago(
    s3: S3Storage, tmp_path: Path
) -> None:
    blobs = [bytes([n]) * 400 for n in range(5)]
    digests = [s3.put_bytes(b) for b in blobs]
    cache = BlobCache(s3, tmp_path / "cache", budget=1000)
    long_ago = time.time() - IN_USE_S - 100
    for age, digest in enumerate(digests):
        cache.local.put_bytes(blobs[age])
        os.utime(cache.local.path(digest), (long_ago + age, long_ago + age))

    freed = cache.prune()

    assert freed == 1200  # to 80% of the budget: the three used longest ago went
    assert [cache.local.has(d) for d in digests] == [False, False, False, True, True]
    assert cache.read(digests[0]) == blobs[0]  # fetched again when wanted, past the budget:
    assert [cache.local.has(d) for d in digests] == [True, False, False, False, True]

    cache.local.put_bytes(b"x" * 900)  # used just now, as blobs[0]: never dropped
    again = BlobCache(s3, tmp_path / "cache", budget=1000)  # another worker process
    assert again.prune() == 400  # the one old blob only, though the rest is past the budget
    assert [cache.local.has(d) for d in digests] == [True, False, False, False, False]
    assert again.local.has(hash_bytes(b"x" * 900))


class _Busy(BaseHTTPRequestHandler):
    """An S3 endpoint that answers every request 503 SlowDown, and counts them."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        body = b"<Error><Code>SlowDown</Code><Message>busy</Message></Error>"
        self.send_response(503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_worker_tries_a_busy_store_a_bounded_number_of_times(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Busy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Busy.seen.clear()
    config = StorageConfig(
        url="s3://bucket/p", endpoint_url=f"http://127.0.0.1:{server.server_address[1]}",
        region="us-east-1", access_key_id="k", secret_access_key=SecretStr("s"), attempts=3,
    )  # fmt: skip
    blobs = worker_blobs(open_storage(config, tmp_path), tmp_path / "cache", 1 << 20)
    manifest = hash_bytes(b"a manifest")
    try:
        with pytest.raises(StorageUnavailable, match=r"busy \(SlowDown\)"):
            materialise(blobs, manifest, tmp_path / "snapshots")
    finally:
        server.shutdown()
        server.server_close()
    key = f"/bucket/p/blobs/{manifest[:2]}/{manifest[2:]}"
    assert _Busy.seen == [key] * 3  # the first try and two more, then the attempt fails
    assert not (tmp_path / "snapshots" / manifest).exists()
