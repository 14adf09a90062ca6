"""The sync seams: what the daemon needs of its server, and where the server keeps blobs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

from sync.manifests import Entry
from sync.schemas import WorkspaceDetail


class Remote(Protocol):
    def register(self, *, key: str, name: str, root: str) -> str:
        """Register the checkout (again); returns the workspace id."""
        ...

    def workspace(self, workspace_id: str) -> WorkspaceDetail:
        """The workspace with its head version (raises WorkspaceNotFound)."""
        ...

    def missing(self, hashes: list[str]) -> list[str]:
        """Which of `hashes` the server lacks."""
        ...

    def upload(self, digest: str, path: Path) -> None:
        """Send the file at `path` as blob `digest`, streamed."""
        ...

    def upload_chunked(self, digest: str, path: Path) -> int | None:
        """Send a big file as the chunks the server lacks; the bytes sent, or None (nothing
        sent: send it whole) where the server takes no chunk lists."""
        ...

    def upload_many(self, blobs: list[tuple[str, Path]]) -> None:
        """Send small files (each at most `sync.batches.MAX_RECORD`) in one request."""
        ...

    def commit(
        self,
        workspace_id: str,
        *,
        parent: int,
        changes: list[Entry],
        deleted: list[str],
        inline: dict[str, bytes] | None = None,
        renamed: list[tuple[str, str]] | None = None,
    ) -> int:
        """Make the next version from `parent`: `deleted` (with all beneath), then `renamed`
        (from, to: a folder moved whole), then `changes` (with small new content `inline`,
        by hash); returns the new head."""
        ...

    def manifest(self, workspace_id: str) -> tuple[int, dict[str, Entry]]:
        """The head version and its tree."""
        ...


class BlobSink(Protocol):
    """One blob being written: it enters the store on `commit` only if it hashes to its name."""

    digest: str | None
    size: int

    def write(self, chunk: bytes) -> None: ...

    def check(self) -> None:
        """Raise BlobHashMismatch unless the content written hashes to `digest`."""
        ...

    def commit(self) -> bool:
        """Verify and store; True when the store did not hold the blob yet."""
        ...

    def abort(self) -> None:
        """Drop what was written (safe after `commit`, and twice)."""
        ...


class Storage(Protocol):
    """Where blobs, manifests and trajectories live: the local disk (sync/blobs.py) or
    S3-compatible object storage (sync/s3.py). Blobs are named by their hash; files (a
    trajectory) by a key such as `trajectories/<attempt id>.json`."""

    def has(self, digest: str) -> bool: ...

    def missing(self, digests: Iterable[str]) -> list[str]:
        """The hashes of `digests` the store lacks, each once, in the order given."""
        ...

    def writer(self, digest: str | None) -> BlobSink:
        """A sink for blob `digest` (None: whatever the content hashes to)."""
        ...

    def commit_many(self, writers: Sequence[BlobSink]) -> int:
        """Store a batch of this store's sinks whole or not at all; how many were new."""
        ...

    def put_bytes(self, data: bytes) -> str: ...

    def read(self, digest: str) -> bytes: ...

    def open(self, digest: str) -> Iterator[bytes]:
        """The blob's content in chunks; ObjectMissing (at once) when it is not held."""
        ...

    def put_file(self, key: str, path: Path) -> None:
        """Store the file at `path` under `key`, replacing what was there."""
        ...

    def open_file(self, key: str) -> Iterator[bytes]:
        """The content stored under `key` in chunks; ObjectMissing (at once) when absent."""
        ...

    def listing(self) -> Iterator[tuple[str, float, int]]:
        """Every blob held: its hash, when it was stored (or last named, where the backend
        can tell: seconds since the epoch), and the bytes removing it would free."""
        ...

    def remove(self, digest: str) -> None:
        """Drop a blob (garbage collection); one already gone is no error."""
        ...


class LocalBlobs(Protocol):
    """Blobs as files on this host's disk, to build trees from: the disk backend itself, or a
    worker's bounded cache of object storage (sync/cache.py)."""

    def fetch(self, digests: Iterable[str]) -> None:
        """Have these blobs on this disk (ObjectMissing for one the store lacks)."""
        ...

    def path(self, digest: str) -> Path:
        """The file of a blob held on this disk."""
        ...

    def executable(self, digest: str) -> Path:
        """The blob's executable twin (0o755) beside it."""
        ...

    def has(self, digest: str) -> bool: ...

    def read(self, digest: str) -> bytes: ...

    def put_chunks(self, chunks: Iterable[bytes]) -> tuple[str, int]:
        """Store content of unknown hash, streamed (here and in the shared store); its hash
        and size."""
        ...
