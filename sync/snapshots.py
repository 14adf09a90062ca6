"""Workspace snapshots as base trees: a manifest built into a directory by hard links to blobs."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import uuid
from pathlib import Path

from sync.blobs import BlobStore
from sync.errors import SyncError, WorkspaceNotFound
from sync.hashing import hash_bytes, is_digest
from sync.manifests import Entry, parse

PREFIX = "workspace:"
REPO = re.compile(r"^workspace:([0-9a-f]{32})@([0-9]+)$")


def repo_of(workspace_id: str, version: int) -> str:
    """The task `repo` value that starts a task from a workspace version."""
    return f"{PREFIX}{workspace_id}@{version}"


def is_workspace(repo: str) -> bool:
    return repo.startswith(PREFIX)


def workspace_of(repo: str) -> tuple[str, int]:
    """The workspace id and version of a task `repo` made by `repo_of`."""
    match = REPO.match(repo)
    if match is None:
        raise SyncError(f"{repo!r} is not a workspace (workspace:<id>@<version>)")
    return match.group(1), int(match.group(2))


def manifest(blobs: BlobStore, manifest_hash: str) -> dict[str, Entry]:
    """The entries of the manifest blob `manifest_hash`, checked."""
    if not is_digest(manifest_hash) or not blobs.has(manifest_hash):
        raise WorkspaceNotFound(f"no manifest {manifest_hash!r} in the blob store")
    data = blobs.read(manifest_hash)
    if hash_bytes(data) != manifest_hash:
        raise SyncError(f"manifest {manifest_hash} is damaged in the blob store")
    return parse(data)


def materialise(blobs: BlobStore, manifest_hash: str, root: Path) -> Path:
    """The tree of the manifest blob `manifest_hash` under `root`, made once.

    Files are hard links to the blobs (executables to each blob's executable twin);
    the tree is built in a temporary directory and renamed into place whole.
    """
    if not is_digest(manifest_hash):
        raise SyncError(f"{manifest_hash!r} is not a manifest hash")
    final = root / manifest_hash
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    lock = os.open(root / f"{manifest_hash}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if final.is_dir():
            return final
        entries = manifest(blobs, manifest_hash)
        tmp = root / "tmp" / f"{manifest_hash[:16]}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            _build(blobs, entries, tmp)
            tmp.rename(final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return final
    finally:
        os.close(lock)


def _build(blobs: BlobStore, entries: dict[str, Entry], into: Path) -> None:
    for path in sorted(entries):  # parents sort before their children
        entry, dest = entries[path], into / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        if entry.kind == "dir":
            dest.mkdir(exist_ok=True)
        elif entry.kind == "symlink":
            os.symlink(entry.target or "", dest)
        else:
            digest = entry.hash or ""
            if not blobs.has(digest):
                raise SyncError(f"{path}: blob {digest} is missing from the store")
            source = blobs.executable(digest) if entry.mode & 0o100 else blobs.path(digest)
            os.link(source, dest)


def base_tree(repo: str, ref: str | None, data_dir: Path) -> Path:
    """The base tree for a task whose repo is `workspace:<id>@<version>` and ref the manifest hash.

    The orchestrator's runner calls this for workspace tasks; the blobs and snapshots live
    under the platform's data directory.
    """
    workspace_of(repo)
    if ref is None:
        raise SyncError(f"{repo}: the task's ref must be the version's manifest hash")
    return materialise(BlobStore(data_dir / "blobs"), ref, data_dir / "snapshots")
