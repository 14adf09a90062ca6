"""The daemon's local state file: what the server holds, so a restart resends nothing unchanged."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from sync.errors import SyncError
from sync.manifests import Entry
from sync.scan import Local, Stamp


class Pending(BaseModel):
    """What the daemon could not send yet, and why."""

    paths: list[str] = Field(default_factory=list)
    error: str | None = None
    since: datetime | None = None


class SyncState(BaseModel):
    """One checkout's sync: the workspace, the version last committed, and that version's tree."""

    root: str
    server: str
    workspace_id: str | None = None
    version: int = 0
    entries: dict[str, tuple[Entry, Stamp]] = Field(default_factory=dict)
    last_change: datetime | None = None
    last_sync: datetime | None = None
    pending: Pending = Field(default_factory=Pending)
    refused: list[str] = Field(default_factory=list)
    pid: int | None = None

    def committed(self) -> dict[str, Local]:
        return {path: Local(entry, stamp) for path, (entry, stamp) in self.entries.items()}

    def remember(self, entries: dict[str, Local]) -> None:
        self.entries = {path: (local.entry, local.stamp) for path, local in entries.items()}


def state_file(state_dir: Path, root: Path) -> Path:
    """Where the state of the checkout at `root` lives (one file per checkout)."""
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:20]
    return state_dir / f"{key}.json"


def load(path: Path) -> SyncState | None:
    try:
        return SyncState.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except (ValidationError, ValueError) as exc:
        raise SyncError(
            f"the sync state {path} is unreadable ({exc}); remove it to sync from scratch "
            "(the server sends back nothing: only content it lacks is uploaded again)"
        ) from exc


def save(state: SyncState, path: Path) -> None:
    write_atomic(path, state.model_dump_json().encode())


def write_atomic(path: Path, data: bytes) -> None:
    """Write a state file atomically: a temporary file, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_all(state_dir: Path) -> list[SyncState]:
    """Every checkout's state under `state_dir`, for `autan sync status`."""
    states = []
    for path in sorted(state_dir.glob("*.json")):
        state = load(path)
        if state is not None:
            states.append(state)
    return states


def summary(state: SyncState) -> dict[str, object]:
    return json.loads(state.model_dump_json(exclude={"entries"}))  # type: ignore[no-any-return]
