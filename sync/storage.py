"""Which storage backend a URL names: the local disk (the default) or S3-compatible storage."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr

from sync.base import Storage
from sync.blobs import BlobStore


class StorageConfig(BaseModel):
    """Where the platform keeps blobs, manifests and trajectories."""

    url: str = ""
    """`s3://bucket/prefix` for object storage, `file:///path` for a directory; empty: the
    data directory's `blobs` (one host, or a directory every host mounts)."""

    endpoint_url: str = ""
    """The S3 API's address (MinIO, Ceph RGW); empty: AWS S3 of `region`."""

    region: str = ""
    """The S3 region; empty: botocore's default."""

    access_key_id: str = ""
    """The S3 access key; empty: botocore's own chain (an instance role, a profile)."""

    secret_access_key: SecretStr = SecretStr("")
    """The S3 secret key, with `access_key_id`."""

    attempts: int = Field(default=4, ge=1)
    """Tries of one request that failed in a way that may pass (unreachable, 5xx, throttled)."""

    timeout_s: float = Field(default=10.0, gt=0)
    """Longest wait to connect to, or to hear from, the object store."""


def _file(config: StorageConfig, default_root: Path) -> Storage:
    parts = urlsplit(config.url)
    return BlobStore(Path(parts.path) if parts.path else default_root)


def _s3(config: StorageConfig, _: Path) -> Storage:
    from sync.s3 import S3Storage  # boto3 loads only where object storage is used

    parts = urlsplit(config.url)
    if not parts.netloc:
        raise ValueError(f"{config.url!r} names no bucket: use s3://bucket/prefix")
    prefix = parts.path.strip("/")
    return S3Storage.connect(
        parts.netloc, f"{prefix}/" if prefix else "", endpoint_url=config.endpoint_url,
        region=config.region, access_key_id=config.access_key_id,
        secret_access_key=config.secret_access_key.get_secret_value(),
        attempts=config.attempts, timeout_s=config.timeout_s,
    )  # fmt: skip


BACKENDS: dict[str, Callable[[StorageConfig, Path], Storage]] = {"file": _file, "s3": _s3}


def open_storage(config: StorageConfig, default_root: Path) -> Storage:
    """The backend `config.url` names; an empty URL is the directory `default_root`."""
    scheme = urlsplit(config.url).scheme if config.url else "file"
    if scheme not in BACKENDS:
        raise ValueError(
            f"storage URL {config.url!r}: unknown scheme {scheme!r}, use one of {sorted(BACKENDS)}"
        )
    return BACKENDS[scheme](config, default_root)
