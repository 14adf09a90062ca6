"""Many small blobs in one request: records `<hash> <size>\\n<content>`, one after another.

A first sync of a source tree is mostly small files; one request each would spend the
whole sync on round trips. Files larger than MAX_RECORD go alone, streamed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from sync.errors import SyncError
from sync.hashing import is_digest

MAX_RECORD = 1 << 20
"""Largest blob a batch carries."""

MAX_RECORDS = 5_000
"""Most blobs one batch carries."""

MAX_BATCH_BYTES = 16 << 20
"""Most content one batch carries (the client sends less)."""

_HEADER_MAX = 64 + 1 + 8 + 1


class BadBatch(SyncError, ValueError):
    """Raised when a batch body is not well formed: the whole batch is refused."""


def encode(blobs: Iterable[tuple[str, bytes]]) -> Iterator[bytes]:
    for digest, data in blobs:
        yield f"{digest} {len(data)}\n".encode() + data


class BatchParser:
    """Turns the chunks of a body into ("start", hash), ("data", bytes) and ("end", hash)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._left = 0
        self._digest: str | None = None
        self.records = 0
        self.total = 0

    def feed(self, chunk: bytes) -> Iterator[tuple[str, str | bytes]]:
        self._buf += chunk
        while self._buf:
            if self._digest is None:
                end = self._buf.find(b"\n")
                if end < 0:
                    if len(self._buf) > _HEADER_MAX:
                        raise BadBatch("a record's header is too long: want '<hash> <size>\\n'")
                    return
                self._start(bytes(self._buf[:end]))
                del self._buf[: end + 1]
                assert self._digest is not None
                yield "start", self._digest
            take = min(self._left, len(self._buf))
            if take:
                yield "data", bytes(self._buf[:take])
                del self._buf[:take]
                self._left -= take
            if self._left == 0 and self._digest is not None:
                yield "end", self._digest
                self._digest = None

    def _start(self, header: bytes) -> None:
        parts = header.split(b" ")
        if len(parts) != 2 or not parts[1].isdigit():
            raise BadBatch(f"a record's header must be '<hash> <size>', not {header[:80]!r}")
        digest, size = parts[0].decode(errors="replace"), int(parts[1])
        if not is_digest(digest):
            raise BadBatch(f"{digest[:70]!r} is not a blob hash (64 lowercase hex digits)")
        if size > MAX_RECORD:
            raise BadBatch(f"blob {digest} is {size} bytes: larger than {MAX_RECORD} goes alone")
        self.records += 1
        self.total += size
        if self.records > MAX_RECORDS or self.total > MAX_BATCH_BYTES:
            raise BadBatch(f"a batch carries at most {MAX_RECORDS} blobs, {MAX_BATCH_BYTES} bytes")
        self._digest, self._left = digest, size

    def finish(self) -> None:
        """Raise BadBatch if the body ended inside a record."""
        if self._digest is not None or self._buf:
            raise BadBatch("the batch ended inside a record: nothing was stored")
