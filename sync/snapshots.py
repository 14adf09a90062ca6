"""Workspace snapshots as base trees: a manifest built into a directory from blobs on this disk."""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import uuid
from pathlib import Path

from sync.base import LocalBlobs
from sync.errors import ObjectMissing, SyncError, WorkspaceNotFound
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


FICLONE = 0x40049409
"""The ioctl that makes a file share another's blocks (btrfs, XFS): a copy that costs nothing."""


def manifest(blobs: LocalBlobs, manifest_hash: str) -> dict[str, Entry]:
    """The entries of the manifest blob `manifest_hash`, checked."""
    try:
        if not is_digest(manifest_hash):
            raise ObjectMissing(manifest_hash)
        data = blobs.read(manifest_hash)
    except ObjectMissing:
        raise WorkspaceNotFound(f"no manifest {manifest_hash!r} in the blob store") from None
    if hash_bytes(data) != manifest_hash:
        raise SyncError(f"manifest {manifest_hash} is damaged in the blob store")
    return parse(data)


def materialise(blobs: LocalBlobs, manifest_hash: str, root: Path) -> Path:
    """The tree of the manifest blob `manifest_hash` under `root`, made once.

    Files are hard links to the blobs (executables to each blob's executable twin) when the
    blobs are on the same file system as `root`, and copies (shared blocks where the file
    system can) when not; the tree is built in a temporary directory and renamed into place
    whole.
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


def _build(blobs: LocalBlobs, entries: dict[str, Entry], into: Path) -> None:
    files = [e.hash or "" for e in entries.values() if e.kind == "file"]
    try:
        blobs.fetch(files)
    except ObjectMissing as exc:
        raise SyncError(f"the snapshot cannot be made: {exc}") from exc
    link = bool(files) and os.stat(blobs.path(files[0])).st_dev == os.stat(into).st_dev
    for path in sorted(entries):  # parents sort before their children
        entry, dest = entries[path], into / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        if entry.kind == "dir":
            dest.mkdir(exist_ok=True)
        elif entry.kind == "symlink":
            os.symlink(entry.target or "", dest)
        else:
            link = _place(blobs, entry, dest, link)


def _place(blobs: LocalBlobs, entry: Entry, dest: Path, link: bool) -> bool:
    """The file of `entry` at `dest`; whether hard links still work (a bind mount of the same
    file system refuses them too: EXDEV, and from then on a copy)."""
    digest, executable = entry.hash or "", bool(entry.mode & 0o100)
    if link:
        try:
            os.link(blobs.executable(digest) if executable else blobs.path(digest), dest)
            return True
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
    _copy(blobs.path(digest), dest, 0o755 if executable else 0o644)
    return False


def _copy(source: Path, dest: Path, mode: int) -> None:
    with open(source, "rb") as src, open(dest, "xb") as dst:
        try:
            fcntl.ioctl(dst.fileno(), FICLONE, src.fileno())
        except OSError:
            shutil.copyfileobj(src, dst, 1 << 20)
    os.chmod(dest, mode)


def base_tree(repo: str, ref: str | None, blobs: LocalBlobs, snapshots_dir: Path) -> Path:
    """The base tree for a task whose repo is `workspace:<id>@<version>` and ref the manifest hash.

    The orchestrator's runner calls this for workspace tasks, with the blobs on its disk (the
    store, or its cache of object storage) and its own snapshots directory.
    """
    workspace_of(repo)
    if ref is None:
        raise SyncError(f"{repo}: the task's ref must be the version's manifest hash")
    return materialise(blobs, ref, snapshots_dir)
