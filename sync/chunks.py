"""Big files as content-defined chunks (FastCDC): cut by the daemon, joined by the server.

A file above CHUNKED_ABOVE travels as the chunks the server lacks and a list naming all of
them; chunks are ordinary blobs named by their hash, so a chunk held once is never sent
again and a small edit costs the chunks it touched. The file keeps its own hash: the server
joins the chunks into the file's blob and stores it only if the whole hashes to that name.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from fastcdc import fastcdc
from pydantic import BaseModel, ConfigDict, Field

from sync.base import Storage
from sync.errors import BlobHashMismatch, BlobsMissing, ChunkListInvalid, ObjectMissing
from sync.hashing import hash_bytes, is_digest, new_hasher

CHUNKED_ABOVE = 4 << 20
"""Files larger than this go as chunks; smaller ones (nearly every file of a source tree) whole."""

MIN_CHUNK, AVG_CHUNK, MAX_CHUNK = 32 << 10, 128 << 10, 512 << 10
"""FastCDC's bounds: an edit costs the one or two chunks around it, and every edit the list
(about 80 bytes a chunk, 1,600 chunks for 200 MB); tried on 200 MB, larger chunks cost
more in chunks than they save in list. A chunk fits a batch record (batches.MAX_RECORD)."""

MAX_CHUNKS = 100_000
"""Most chunks one list may name; a file cut into more goes whole."""

WINDOW = 8 << 20
"""Bytes of a file held at once while cutting it."""


class ChunkList(BaseModel):
    """A file as its chunks in order: each `[hash, size]`."""

    model_config = ConfigDict(extra="forbid")

    size: int = Field(ge=1)
    """The file's size: the chunks' sizes add up to it."""
    chunks: list[tuple[str, int]] = Field(min_length=1, max_length=MAX_CHUNKS)


@dataclass(frozen=True)
class Chunk:
    digest: str
    offset: int
    size: int


def pieces(file: BinaryIO) -> Iterator[bytes]:
    """The file's chunks in order, cut as FastCDC cuts the whole file, read a window at a time.

    A cut depends only on the bytes from the chunk's start up to MAX_CHUNK on, so a chunk is
    final once that much of the file follows its start in the window (or the file ends)."""
    buf = b""
    while True:
        buf += file.read(WINDOW - len(buf))
        last = len(buf) < WINDOW
        taken = 0
        for cut in fastcdc(buf, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK):
            if not last and len(buf) - cut.offset < MAX_CHUNK:
                break
            taken = cut.offset + cut.length
            yield buf[cut.offset : taken]
        buf = buf[taken:]
        if last:
            return


def split(file: BinaryIO, digest: str) -> list[Chunk]:
    """The file's chunks, each hashed; BlobHashMismatch when the whole no longer hashes to
    `digest` (it changed since it was hashed)."""
    whole, chunks, offset = new_hasher(), [], 0
    for data in pieces(file):
        whole.update(data)
        chunks.append(Chunk(hash_bytes(data), offset, len(data)))
        offset += len(data)
    if whole.hexdigest() != digest:
        raise BlobHashMismatch(f"{file.name} changed since it was hashed")
    return chunks


def read_chunk(fd: int, chunk: Chunk) -> bytes:
    """A chunk's bytes read again from the file; BlobHashMismatch when they changed."""
    data = os.pread(fd, chunk.size, chunk.offset)
    if hash_bytes(data) != chunk.digest:
        raise BlobHashMismatch(f"a chunk at byte {chunk.offset} changed since it was hashed")
    return data


def check(digest: str, listing: ChunkList) -> None:
    """Raise ChunkListInvalid for a list that cannot be the file `digest`."""
    total = 0
    for index, (chunk, size) in enumerate(listing.chunks):
        if not is_digest(chunk):
            raise ChunkListInvalid(f"chunk {index}: {chunk!r} is not a blob hash")
        if chunk == digest:
            raise ChunkListInvalid(f"chunk {index} is the file itself: a file is not its own chunk")
        if not 1 <= size <= MAX_CHUNK:
            raise ChunkListInvalid(f"chunk {index} has {size} bytes: chunks hold 1 to {MAX_CHUNK}")
        total += size
    if total != listing.size:
        raise ChunkListInvalid(f"the chunks add up to {total} bytes, not the {listing.size} stated")


def join(store: Storage, digest: str, listing: ChunkList) -> bool:
    """Store blob `digest` as the chunks joined, streamed; True when it is new.

    Raises ChunkListInvalid, BlobsMissing (the chunks the store lacks) or BlobHashMismatch;
    nothing is stored then."""
    check(digest, listing)
    if store.has(digest):
        return False
    lacking = store.missing(chunk for chunk, _ in listing.chunks)
    if lacking:
        raise BlobsMissing(lacking)
    writer = store.writer(digest)
    try:
        for index, (chunk, size) in enumerate(listing.chunks):
            held = 0
            try:
                for data in store.open(chunk):
                    held += len(data)
                    if held > size:
                        break
                    writer.write(data)
            except ObjectMissing:  # collected since it was asked about
                raise BlobsMissing([chunk]) from None
            if held != size:
                raise ChunkListInvalid(f"chunk {index} ({chunk}) is not {size} bytes long")
        return writer.commit()
    finally:
        writer.abort()
