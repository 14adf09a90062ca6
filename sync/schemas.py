"""What the workspace API takes and gives: registrations, blob batches, commits, manifests."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Base64Bytes, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from sync.hashing import hash_bytes, is_digest
from sync.manifests import Entry, check_path
from sync.text import Line

MAX_BATCH = 10_000
"""Most hashes one `missing` question may carry."""

MAX_INLINE = 256 << 10
"""Most content a commit may carry inline."""

MAX_COMMIT = 200_000
"""Most entries and deletions one commit may carry (a first sync of a large tree)."""


class _EntryText(BaseModel):
    """An entry's text fields as the API takes them: Entry itself also describes local
    trees, whose names may hold what a request must not."""

    model_config = ConfigDict(extra="ignore")

    path: Line | None = None
    target: Line | None = None


def _entry_text(value: Any) -> Any:
    # The refusal's loc names the field (changes.3.path); the value stays a plain Entry,
    # which the commit compares with the stored tree.
    if isinstance(value, dict):
        _EntryText.model_validate(value)
    return value


EntryIn = Annotated[Entry, BeforeValidator(_entry_text)]
"""An entry sent to the API: an Entry whose path and target are Lines."""


class WorkspaceRegister(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    key: Line = Field(min_length=1, max_length=255)
    """The daemon's stable name for the checkout (host and path)."""
    name: Line = Field(min_length=1, max_length=255)
    root: Line = Field(min_length=1, max_length=4096)


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


class Rename(BaseModel):
    """A path moved, with all beneath it: the store moves a folder of any size in a few
    statements, where its files one by one would be a deletion and an entry each."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source: Line = Field(alias="from")
    to: Line

    @field_validator("source", "to")
    @classmethod
    def _safe(cls, path: str) -> str:
        return check_path(path)


class CommitRequest(BaseModel):
    """A change against version `parent`: paths deleted (with all beneath them), then
    renamed, then entries added or changed."""

    model_config = ConfigDict(extra="forbid")

    parent: int = Field(ge=0)
    changes: list[EntryIn] = Field(default_factory=list, max_length=MAX_COMMIT)
    deleted: list[Line] = Field(default_factory=list, max_length=MAX_COMMIT)
    renamed: list[Rename] = Field(default_factory=list, max_length=1000)
    inline: dict[str, Base64Bytes] = Field(default_factory=dict, max_length=16)
    """Content of a few small new blobs (base64, by hash), so an editor's save is one request."""

    @field_validator("deleted")
    @classmethod
    def _paths(cls, deleted: list[str]) -> list[str]:
        return [check_path(p) for p in deleted]

    @field_validator("inline")
    @classmethod
    def _inline(cls, inline: dict[str, bytes]) -> dict[str, bytes]:
        if sum(len(data) for data in inline.values()) > MAX_INLINE:
            raise ValueError(f"at most {MAX_INLINE} bytes inline; upload larger content first")
        for digest, data in inline.items():
            if not is_digest(digest) or hash_bytes(data) != digest:
                raise ValueError(f"inline content sent as {digest[:70]!r} does not hash to it")
        return inline


class ManifestView(BaseModel):
    version: int
    manifest_hash: str | None
    entries: list[Entry]


class WorkspaceTask(BaseModel):
    """A task started from a workspace, as the daemon follows it."""

    id: str
    state: str
    title: str
    version: int
    """The workspace version it started from."""
    finished: bool
    created_at: datetime


class AgentChange(BaseModel):
    """One `sync.changed` event: an attempt's edits since its previous one."""

    seq: int
    attempt: int
    changes: list[Entry] = Field(default_factory=list)
    deleted: list[str] = Field(default_factory=list)
    bases: dict[str, Entry | None] = Field(default_factory=dict)
    """Each path as the sandbox and the checkout last agreed on it (None: absent)."""

    @field_validator("deleted")
    @classmethod
    def _paths(cls, deleted: list[str]) -> list[str]:
        return [check_path(p) for p in deleted]


class TaskChanges(BaseModel):
    """The agent's edits of a task after a seq; `chosen` names the kept attempt once it ended."""

    task_id: str
    version: int
    finished: bool
    chosen: int | None = None
    changes: list[AgentChange]
    last: int
    """The seq to ask after next time."""


class ConflictCopy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: Line
    copy_path: Line | None = None
    """Where the other side's version was kept (`PATH.autan-<task>`), if it was."""

    @field_validator("path", "copy_path")
    @classmethod
    def _safe(cls, path: str | None) -> str | None:
        return None if path is None else check_path(path)


class ConflictReport(BaseModel):
    """The daemon's open conflicts of one task (those it no longer sends are resolved)."""

    model_config = ConfigDict(extra="forbid")

    task_id: Line = Field(min_length=1, max_length=32)
    conflicts: list[ConflictCopy] = Field(default_factory=list, max_length=10_000)


class ConflictView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    workspace_id: str
    task_id: str
    path: str
    side: str
    copy_path: str | None
    created_at: datetime
