"""The storage backend on S3-compatible object storage (AWS S3, MinIO, Ceph RGW), via boto3."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from sync.base import BlobSink
from sync.blobs import put_bytes
from sync.errors import BlobHashMismatch, ObjectMissing, StorageError, StorageUnavailable
from sync.hashing import CHUNK, is_digest, new_hasher

PART = 8 << 20
"""Bytes of one part of a multipart upload: what a sink holds in memory at most."""

PARALLEL = 16
"""Requests one batch (`missing`, `commit_many`) sends at once."""

LIST_FROM = 16
"""Hashes asked of one folder from which listing the folder beats a HEAD each."""

_MISSING = {"404", "NoSuchKey", "NotFound"}
T = TypeVar("T")


@contextmanager
def translated(what: str) -> Iterator[None]:
    """boto3's errors as the sync package's: absent, unreachable or busy (transient), refused."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in _MISSING:
            raise ObjectMissing(f"no {what} in the object store") from exc
        if status >= 500 or code in ("SlowDown", "RequestTimeout", "Throttling"):
            raise StorageUnavailable(f"the object store is busy ({code or status})") from exc
        raise StorageError(
            f"the object store refused {what}: {code} {error.get('Message', '')}"
        ) from exc
    except BotoCoreError as exc:
        raise StorageUnavailable(f"the object store is unreachable ({exc})") from exc


class S3Writer:
    """Implements BlobSink: small blobs go up whole once verified; larger ones as a multipart
    upload that is completed only if the content hashes to its name (aborted otherwise), so a
    blob's key never holds the wrong content, and memory holds one part at most."""

    def __init__(self, store: S3Storage, digest: str | None) -> None:
        self.store = store
        self.digest = digest
        self.size = 0
        self._hasher = new_hasher()
        self._buffer = bytearray()
        self._upload: str | None = None
        self._parts: list[dict[str, Any]] = []

    def write(self, chunk: bytes) -> None:
        self._hasher.update(chunk)
        self._buffer += chunk
        self.size += len(chunk)
        if len(self._buffer) >= PART:
            if self.digest is None:
                raise StorageError("a blob of unknown hash larger than one part: name it first")
            self._send_part()

    def check(self) -> None:
        actual = self._hasher.hexdigest()
        if self.digest is None:
            self.digest = actual
        if actual != self.digest:
            raise BlobHashMismatch(
                f"content sent as {self.digest} hashes to {actual}: nothing was stored"
            )

    def commit(self) -> bool:
        try:
            self.check()
            assert self.digest is not None
            if self.store.has(self.digest):
                return False
            key = self.store.blob_key(self.digest)
            with translated(f"blob {self.digest}"):
                if self._upload is None:
                    self.store.client.put_object(
                        Bucket=self.store.bucket, Key=key, Body=bytes(self._buffer)
                    )
                    return True
                if self._buffer:
                    self._send_part()
                self.store.client.complete_multipart_upload(
                    Bucket=self.store.bucket, Key=key, UploadId=self._upload,
                    MultipartUpload={"Parts": self._parts},
                )  # fmt: skip
                self._upload = None
            return True
        finally:
            self.abort()

    def abort(self) -> None:
        self._buffer = bytearray()
        upload, self._upload = self._upload, None
        if upload is not None and self.digest is not None:
            with translated("an upload"):
                self.store.client.abort_multipart_upload(
                    Bucket=self.store.bucket, Key=self.store.blob_key(self.digest), UploadId=upload
                )

    def _send_part(self) -> None:
        assert self.digest is not None
        key = self.store.blob_key(self.digest)
        with translated(f"blob {self.digest}"):
            if self._upload is None:
                started = self.store.client.create_multipart_upload(
                    Bucket=self.store.bucket, Key=key
                )
                self._upload = str(started["UploadId"])
            number = len(self._parts) + 1
            sent = self.store.client.upload_part(
                Bucket=self.store.bucket, Key=key, UploadId=self._upload, PartNumber=number,
                Body=bytes(self._buffer),
            )  # fmt: skip
        self._parts.append({"PartNumber": number, "ETag": sent["ETag"]})
        self._buffer = bytearray()


class S3Storage:
    """Implements Storage: blobs at `<prefix>blobs/ab/cdef...`, files at `<prefix><key>`."""

    def __init__(self, bucket: str, prefix: str, client: Any) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.client = client

    @classmethod
    def connect(
        cls,
        bucket: str,
        prefix: str,
        *,
        endpoint_url: str | None,
        region: str | None,
        access_key_id: str | None,
        secret_access_key: str | None,
        attempts: int,
        timeout_s: float,
    ) -> S3Storage:
        """A client with bounded retries (botocore's standard mode retries only errors that
        may pass: connection failures, 5xx, throttling) and bounded waits."""
        config = Config(
            retries={"total_max_attempts": attempts, "mode": "standard"},
            connect_timeout=timeout_s,
            read_timeout=timeout_s,
            max_pool_connections=PARALLEL * 2,
        )
        client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url or None, region_name=region or None,
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None, config=config,
        )  # fmt: skip
        return cls(bucket, prefix, client)

    def blob_key(self, digest: str) -> str:
        if not is_digest(digest):
            raise ValueError(f"{digest!r} is not a blob hash (64 lowercase hex digits)")
        return f"{self.prefix}blobs/{digest[:2]}/{digest[2:]}"

    def file_key(self, key: str) -> str:
        if not key or any(part in ("", ".", "..") for part in key.split("/")):
            raise StorageError(f"{key!r} is not a storage key (names joined by /)")
        return f"{self.prefix}files/{key}"

    def has(self, digest: str) -> bool:
        try:
            with translated(f"blob {digest}"):
                self.client.head_object(Bucket=self.bucket, Key=self.blob_key(digest))
        except ObjectMissing:
            return False
        return True

    def missing(self, digests: Iterable[str]) -> list[str]:
        """A folder (`blobs/ab/`) asked for LIST_FROM hashes or more is listed (a request per
        1,000 blobs held); the others are asked a HEAD each, PARALLEL at a time."""
        wanted = list(dict.fromkeys(digests))
        folders: dict[str, int] = {}
        for digest in wanted:
            self.blob_key(digest)
            folders[digest[:2]] = folders.get(digest[:2], 0) + 1
        listed = [folder for folder, count in folders.items() if count >= LIST_FROM]
        held: set[str] = set().union(*self._each(self._folder, listed))
        single = [digest for digest in wanted if folders[digest[:2]] < LIST_FROM]
        found = self._each(self.has, single)
        held.update(digest for digest, yes in zip(single, found, strict=True) if yes)
        return [digest for digest in wanted if digest not in held]

    def _folder(self, folder: str) -> set[str]:
        """The hashes of the blobs held in one folder."""
        return {digest for digest, _, _ in self._list(f"{self.prefix}blobs/{folder}/")}

    def writer(self, digest: str | None) -> S3Writer:
        if digest is not None:
            self.blob_key(digest)
        return S3Writer(self, digest)

    def commit_many(self, writers: Sequence[BlobSink]) -> int:
        for writer in writers:
            writer.check()
        return sum(self._each(lambda w: w.commit(), list(writers)))

    def put_bytes(self, data: bytes) -> str:
        return put_bytes(self, data)

    def read(self, digest: str) -> bytes:
        return b"".join(self.open(digest))

    def open(self, digest: str) -> Iterator[bytes]:
        return self._get(self.blob_key(digest), f"blob {digest}")

    def put_file(self, key: str, path: Path) -> None:
        with translated(f"file {key}"):
            self.client.upload_file(str(path), self.bucket, self.file_key(key))

    def open_file(self, key: str) -> Iterator[bytes]:
        return self._get(self.file_key(key), f"file {key}")

    def listing(self) -> Iterator[tuple[str, float, int]]:
        """A blob's time is when it was stored: S3 cannot touch an object cheaply, so a blob
        named again is not made young (a commit naming one removed meanwhile gets 409 with
        it missing, and the daemon sends it again)."""
        return self._list(f"{self.prefix}blobs/")

    def _list(self, under: str) -> Iterator[tuple[str, float, int]]:
        pages = self.client.get_paginator("list_objects_v2")
        with translated("the blob listing"):
            for page in pages.paginate(Bucket=self.bucket, Prefix=under):
                for item in page.get("Contents", []):
                    rest = str(item["Key"])[len(self.prefix) + len("blobs/") :]
                    digest = rest.replace("/", "")
                    if is_digest(digest):
                        yield digest, item["LastModified"].timestamp(), int(item["Size"])

    def remove(self, digest: str) -> None:
        with translated(f"blob {digest}"):
            self.client.delete_object(Bucket=self.bucket, Key=self.blob_key(digest))

    def _get(self, key: str, what: str) -> Iterator[bytes]:
        with translated(what):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]

        def chunks() -> Iterator[bytes]:
            with translated(what):
                try:
                    yield from body.iter_chunks(CHUNK)
                finally:
                    body.close()

        return chunks()

    def _each(self, call: Callable[[T], Any], items: list[T]) -> list[Any]:
        """`call` on each item, PARALLEL at a time; the first error is raised."""
        if len(items) <= 1:
            return [call(item) for item in items]
        with ThreadPoolExecutor(min(PARALLEL, len(items))) as pool:
            return list(pool.map(call, items))
