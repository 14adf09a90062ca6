"""Content hashes (BLAKE3, 64 hex digits) of bytes and of files that may change while read."""

from __future__ import annotations

import os
import re
from pathlib import Path

from blake3 import blake3

from sync.errors import FileUnstable

CHUNK = 1 << 20
DIGEST = re.compile(r"^[0-9a-f]{64}$")


def new_hasher() -> blake3:
    return blake3(max_threads=1)


def hash_bytes(data: bytes) -> str:
    hasher = new_hasher()
    hasher.update(data)
    return str(hasher.hexdigest())


def is_digest(value: str) -> bool:
    return bool(DIGEST.match(value))


def stamp(st: os.stat_result) -> tuple[int, int, int, int]:
    """What says a file changed without reading it: size, mtime, ctime, inode."""
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def hash_file(path: Path, tries: int = 3) -> tuple[str, os.stat_result]:
    """Hash a regular file; read it again when it changed during the read.

    Raises FileUnstable after `tries` reads that each saw the file change, and
    FileNotFoundError (or another OSError) when it went away.
    """
    for _ in range(tries):
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as file:
            before = os.fstat(file.fileno())
            hasher, read = new_hasher(), 0
            while chunk := file.read(CHUNK):
                hasher.update(chunk)
                read += len(chunk)
            after = os.fstat(file.fileno())
        if stamp(before) == stamp(after) and read == after.st_size:
            return str(hasher.hexdigest()), after
    raise FileUnstable(f"{path} changed every time it was read ({tries} reads); will retry")
