"""A worker's bounded, content-addressed cache of the blobs in object storage, on its own disk."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sync.base import LocalBlobs, Storage
from sync.blobs import EXEC_SUFFIX, BlobStore
from sync.errors import BlobHashMismatch, StorageError

log = logging.getLogger(__name__)

PARALLEL = 16
"""Blobs fetched at once when a tree needs many."""

IN_USE_S = 600.0
"""A blob used this recently is never dropped: a tree may be being built from it."""

KEEP = 0.8
"""Pruning stops when the cache holds this share of its budget, so it does not run each fill."""


class BlobCache:
    """Implements LocalBlobs over a shared store: a blob is fetched on first use and checked
    against its hash as it arrives (content that does not match is refused, and nothing is
    kept); past `budget` bytes, the blobs used longest ago are dropped."""

    def __init__(self, store: Storage, root: Path, budget: int) -> None:
        self.store = store
        self.local = BlobStore(root)
        self.budget = budget
        self._size: int | None = None
        self._lock = threading.Lock()

    def fetch(self, digests: Iterable[str]) -> None:
        wanted = [d for d in dict.fromkeys(digests) if not self._touch(d)]
        if len(wanted) > 1:
            with ThreadPoolExecutor(min(PARALLEL, len(wanted))) as pool:
                list(pool.map(self._fill, wanted))
        elif wanted:
            self._fill(wanted[0])
        if wanted:
            self.prune()

    def path(self, digest: str) -> Path:
        self.fetch([digest])
        return self.local.path(digest)

    def executable(self, digest: str) -> Path:
        self.fetch([digest])
        return self.local.executable(digest)

    def has(self, digest: str) -> bool:
        return self.local.has(digest) or self.store.has(digest)

    def read(self, digest: str) -> bytes:
        return self.path(digest).read_bytes()

    def put_chunks(self, chunks: Iterable[bytes]) -> tuple[str, int]:
        """Kept here, then sent to the store before this returns (others fetch it from there)."""
        digest, size = self.local.put_chunks(chunks)
        self._grew(size)
        writer = self.store.writer(digest)
        try:
            with open(self.local.path(digest), "rb") as file:
                while chunk := file.read(1 << 20):
                    writer.write(chunk)
            writer.commit()
        finally:
            writer.abort()
        return digest, size

    def prune(self) -> int:
        """Drop the blobs used longest ago (never one used in the last IN_USE_S) until the
        cache holds KEEP of its budget; how many bytes went."""
        if self._known_size() <= self.budget:
            return 0
        held = sorted(self._held())
        total = sum(size for _, size, _ in held)
        freed, recent = 0, time.time() - IN_USE_S
        for mtime, size, path in held:
            if total - freed <= self.budget * KEEP or mtime >= recent:
                break
            path.unlink(missing_ok=True)
            if not path.name.endswith(EXEC_SUFFIX):
                path.with_name(path.name + EXEC_SUFFIX).unlink(missing_ok=True)
            freed += size
        self._size = total - freed
        if freed:
            log.info(
                "blob cache %s: dropped %d bytes to keep to its budget", self.local.root, freed
            )
        return freed

    def _touch(self, digest: str) -> bool:
        """Mark a held blob as used now; False when it is not held."""
        try:
            os.utime(self.local.path(digest))
        except FileNotFoundError:
            return False
        return True

    def _fill(self, digest: str) -> None:
        writer = self.local.writer(digest)
        try:
            for chunk in self.store.open(digest):
                writer.write(chunk)
            writer.commit()
        except BlobHashMismatch as exc:
            raise StorageError(f"blob {digest} is damaged in the object store: {exc}") from exc
        finally:
            writer.abort()
        self._grew(writer.size)

    def _grew(self, size: int) -> None:
        with self._lock:
            if self._size is not None:
                self._size += size

    def _known_size(self) -> int:
        if self._size is None:
            self._size = sum(size for _, size, _ in self._held())
        return self._size

    def _held(self) -> list[tuple[float, int, Path]]:
        """(last use, size, file) of each file in the cache."""
        held = []
        for folder in self.local.objects.iterdir():
            for path in folder.iterdir():
                try:
                    st = path.stat()
                except FileNotFoundError:  # another worker process pruned it
                    continue
                held.append((st.st_mtime, st.st_size, path))
        return held


def worker_blobs(store: Storage, cache_dir: Path, budget: int) -> LocalBlobs:
    """What a worker builds trees from: the store itself when it is a directory (this host's
    disk, or one every host mounts), else a cache of it under `cache_dir`."""
    if isinstance(store, BlobStore):
        return store
    return BlobCache(store, cache_dir, budget)
