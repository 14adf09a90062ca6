"""The storage backend on local disk: blobs verified on the way in, written atomically."""

from __future__ import annotations

import ctypes
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from sync.base import BlobSink, Storage
from sync.errors import BlobHashMismatch, ObjectMissing, StorageError
from sync.hashing import CHUNK, hash_bytes, is_digest, new_hasher

EXEC_SUFFIX = ".x"
"""An executable twin of a blob: hard links share their mode, so 0o755 needs its own inode."""


_libc = ctypes.CDLL(None, use_errno=True)


def _syncfs(path: Path) -> None:
    """Flush the whole file system `path` is on (one journal commit for many files)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(path))
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobWriter:
    """One upload in progress: a temporary file that becomes the blob only if the hash matches."""

    def __init__(self, store: BlobStore, digest: str | None) -> None:
        self.store = store
        self.digest = digest
        """The hash the content must have; None takes whatever it hashes to."""
        self.tmp = store.tmp / f"{uuid.uuid4().hex}.part"
        self._file = open(self.tmp, "xb")  # noqa: SIM115 - closed in commit() or abort()
        self._hasher = new_hasher()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self._hasher.update(chunk)
        self._file.write(chunk)
        self.size += len(chunk)

    def commit(self) -> bool:
        """Verify, fsync and rename into place; True when the store did not have the blob yet."""
        try:
            if self.digest is None:
                self.digest = self._hasher.hexdigest()
            self.check()
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            final = self.store.path(self.digest)
            if final.exists():
                return False
            final.parent.mkdir(exist_ok=True)
            os.chmod(self.tmp, 0o644)
            os.replace(self.tmp, final)
            _fsync_dir(final.parent)
            return True
        finally:
            self.abort()

    def check(self) -> None:
        """Raise BlobHashMismatch unless the content hashes to the name it came under."""
        actual = self._hasher.hexdigest()
        if actual != self.digest:
            raise BlobHashMismatch(
                f"content sent as {self.digest} hashes to {actual}: nothing was stored"
            )

    def abort(self) -> None:
        """Drop the temporary file (an upload cut off, or refused)."""
        self._file.close()
        self.tmp.unlink(missing_ok=True)


class BlobStore:
    """Implements Storage and LocalBlobs: blobs named by their BLAKE3 under
    `root/objects/ab/cdef...`, files under `root/files/<key>`, temporaries in `root/tmp`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects = root / "objects"
        self.files = root / "files"
        self.tmp = root / "tmp"
        self.objects.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        if not is_digest(digest):
            raise ValueError(f"{digest!r} is not a blob hash (64 lowercase hex digits)")
        return self.objects / digest[:2] / digest[2:]

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def fetch(self, digests: Iterable[str]) -> None:
        """Implements LocalBlobs: this store is on the disk already; check that it holds them."""
        for digest in digests:
            if not self.has(digest):
                raise ObjectMissing(f"no blob {digest} in the store")

    def missing(self, digests: Iterable[str]) -> list[str]:
        """The hashes of `digests` the store lacks, each once, in the order given. Those it
        holds are touched: named again, they are young to garbage collection."""
        lacking = []
        for digest in dict.fromkeys(digests):
            try:
                os.utime(self.path(digest))
            except FileNotFoundError:
                lacking.append(digest)
        return lacking

    def writer(self, digest: str | None) -> BlobWriter:
        if digest is not None:
            self.path(digest)  # refuses a malformed name before a byte is written
        return BlobWriter(self, digest)

    def put_bytes(self, data: bytes) -> str:
        return put_bytes(self, data)

    def put_chunks(self, chunks: Iterable[bytes]) -> tuple[str, int]:
        """Store content of unknown hash, streamed; returns its hash and size."""
        writer = BlobWriter(self, None)
        for chunk in chunks:
            writer.write(chunk)
        writer.commit()
        assert writer.digest is not None
        return writer.digest, writer.size

    def commit_many(self, sinks: Sequence[BlobSink]) -> int:
        """Store a batch whole or not at all: every hash checked first, then one flush of
        the file system for all of them (not an fsync each), renames, and one more flush.
        Returns how many blobs were new."""
        writers = [sink for sink in sinks if isinstance(sink, BlobWriter)]
        assert len(writers) == len(sinks), "a batch of another store's sinks"
        for writer in writers:
            writer.check()
        for writer in writers:
            writer._file.close()
        _syncfs(self.tmp)
        created = 0
        try:
            for writer in writers:
                assert writer.digest is not None
                final = self.path(writer.digest)
                if final.exists():
                    continue
                final.parent.mkdir(exist_ok=True)
                os.chmod(writer.tmp, 0o644)
                os.replace(writer.tmp, final)
                created += 1
        finally:
            _syncfs(self.objects)
        return created

    def read(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise ObjectMissing(f"no blob {digest} in the store") from None

    def open(self, digest: str) -> Iterator[bytes]:
        return _chunks(self.path(digest), f"blob {digest}")

    def put_file(self, key: str, path: Path) -> None:
        final = self._file(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        copy_atomically(path, final, 0o644, self.tmp)

    def open_file(self, key: str) -> Iterator[bytes]:
        return _chunks(self._file(key), f"file {key}")

    def _file(self, key: str) -> Path:
        parts = key.split("/")
        if not key or any(part in ("", ".", "..") for part in parts) or "\0" in key:
            raise StorageError(f"{key!r} is not a storage key (names joined by /)")
        return self.files.joinpath(*parts)

    def listing(self) -> Iterator[tuple[str, float, int]]:
        """A blob's time is its mtime (touched when named again); its bytes count only where
        no snapshot shares its inode."""
        for folder in sorted(self.objects.iterdir()):
            for path in sorted(folder.iterdir()):
                digest = folder.name + path.name
                if not is_digest(digest):
                    continue  # an executable twin goes with its blob
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                yield digest, st.st_mtime, st.st_size if st.st_nlink == 1 else 0

    def remove(self, digest: str) -> None:
        path = self.path(digest)
        path.unlink(missing_ok=True)
        path.with_name(path.name + EXEC_SUFFIX).unlink(missing_ok=True)

    def executable(self, digest: str) -> Path:
        """The blob's executable twin (0o755), copied once beside it, atomically."""
        twin = self.path(digest).with_name(self.path(digest).name + EXEC_SUFFIX)
        if not twin.exists():
            copy_atomically(self.path(digest), twin, 0o755, self.tmp)
        return twin

    def partials(self) -> list[Path]:
        """Temporary files of uploads still running or cut off."""
        return sorted(self.tmp.iterdir())


def put_bytes(store: Storage, data: bytes) -> str:
    """Store `data` as a blob in any backend; its hash."""
    digest = hash_bytes(data)
    writer = store.writer(digest)
    writer.write(data)
    writer.commit()
    return digest


def copy_atomically(source: Path, dest: Path, mode: int, tmp_dir: Path) -> None:
    """`dest` becomes a copy of `source` with `mode` whole, or not at all (by a temporary
    file in `tmp_dir`, on dest's file system, flushed and renamed)."""
    tmp = tmp_dir / f"{uuid.uuid4().hex}.part"
    try:
        with open(source, "rb") as src, open(tmp, "xb") as dst:
            while chunk := src.read(CHUNK):
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _chunks(path: Path, what: str) -> Iterator[bytes]:
    """The file's content in chunks, opened now: ObjectMissing at once when it is absent."""
    try:
        file = open(path, "rb")  # noqa: SIM115 - closed by the generator
    except FileNotFoundError:
        raise ObjectMissing(f"no {what} in the store") from None

    def chunks() -> Iterator[bytes]:
        with file:
            while chunk := file.read(CHUNK):
                yield chunk

    return chunks()
