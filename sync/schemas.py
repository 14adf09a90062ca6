"""What the workspace API takes and gives: registrations, blob batches, commits, manifests."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sync.hashing import is_digest
from sync.manifests import Entry, check_path

MAX_BATCH = 10_000
"""Most hashes one `missing` question may carry."""

MAX_COMMIT = 200_000
"""Most entries and deletions one commit may carry (a first sync of a large tree)."""


class WorkspaceRegister(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    key: str = Field(min_length=1, max_length=255)
    """The daemon's stable name for the checkout (host and path)."""
    name: str = Field(min_length=1, max_length=255)
    root: str = Field(min_length=1, max_length=4096)


class WorkspaceView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    key: str
    name: str
    root: str
    head: int
    created_at: datetime
    updated_at: datetime


class VersionView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    workspace_id: str
    number: int
    manifest_hash: str | None
    """Set once a snapshot of the version was asked for (`POST .../snapshot`)."""
    files: int
    bytes: int
    changed: int
    created_at: datetime


class WorkspaceDetail(WorkspaceView):
    """A workspace with its newest version (None before the first commit)."""

    version: VersionView | None


class MissingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hashes: list[str] = Field(max_length=MAX_BATCH)

    @field_validator("hashes")
    @classmethod
    def _digests(cls, hashes: list[str]) -> list[str]:
        bad = [h for h in hashes if not is_digest(h)]
        if bad:
            raise ValueError(f"not blob hashes (64 lowercase hex digits): {bad[:5]}")
        return hashes


class MissingResponse(BaseModel):
    missing: list[str]


class CommitRequest(BaseModel):
    """A change against version `parent`: entries added or changed, paths deleted (with all
    beneath them)."""

    model_config = ConfigDict(extra="forbid")

    parent: int = Field(ge=0)
    changes: list[Entry] = Field(default_factory=list, max_length=MAX_COMMIT)
    deleted: list[str] = Field(default_factory=list, max_length=MAX_COMMIT)

    @field_validator("deleted")
    @classmethod
    def _paths(cls, deleted: list[str]) -> list[str]:
        return [check_path(p) for p in deleted]


class ManifestView(BaseModel):
    version: int
    manifest_hash: str | None
    entries: list[Entry]
