"""Committing a change to a workspace: checked against only what it touches, then versioned."""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from orchestrator import workspace_store as store
from orchestrator.models import Workspace, WorkspaceEntry, WorkspaceVersion
from orchestrator.store import changed
from sync.base import Storage
from sync.errors import BlobsMissing, StaleVersion, UnsafePath
from sync.manifests import Entry, check_links, check_parents

CHUNK = 500  # paths per IN (...): well under every database's limit on bound parameters


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:depth]) for depth in range(1, len(parts))]


def _load(
    session: Session, workspace_id: str, changes: list[Entry], deleted: list[str]
) -> dict[str, Entry]:
    """The head's entries a change can affect: those it names, their parents, what is beneath
    the paths it deletes, and every symlink (a symlink's safety depends on the others)."""
    named = {e.path for e in changes} | set(deleted)
    exact = sorted(named | {p for e in changes for p in _parents(e.path)})
    tree: dict[str, Entry] = {}
    for start in range(0, len(exact), CHUNK):
        where = WorkspaceEntry.path.in_(exact[start : start + CHUNK])
        tree.update(store.live(session, workspace_id=workspace_id, where=where))
    for path in deleted:
        tree.update(store.live(session, workspace_id=workspace_id, where=store.beneath(path)))
    links = WorkspaceEntry.kind == "symlink"
    tree.update(store.live(session, workspace_id=workspace_id, where=links))
    return tree


def _check(
    session: Session,
    workspace_id: str,
    before: dict[str, Entry],
    tree: dict[str, Entry],
    touched: set[str],
) -> None:
    """Raise UnsafePath unless every touched entry's folder is in the tree as a folder, a folder
    turned into a file leaves nothing beneath it, and every symlink stays inside.

    Every entry having its folder is what lets a commit check only what it touches.
    """
    for path in touched:
        entry = tree.get(path)
        if entry is None:
            continue
        folder = os.path.dirname(path)
        if folder and folder not in tree:
            raise UnsafePath(f"{path!r}: its folder {folder!r} is not in the workspace")
        check_parents(path, tree)
        old = before.get(path)
        if old is not None and old.kind == "dir" and entry.kind != "dir":
            below = session.scalars(
                select(WorkspaceEntry.path).where(
                    WorkspaceEntry.workspace_id == workspace_id,
                    WorkspaceEntry.until.is_(None),
                    store.beneath(path),
                )
            )
            staying = [p for p in below if p in tree or p not in touched]
            if staying:
                raise UnsafePath(f"{staying[0]!r} sits under {path!r}, which is not a directory")
    check_links({p: e.target for p, e in tree.items() if e.kind == "symlink" and e.target})


def commit(
    session: Session,
    *,
    workspace_id: str,
    parent: int,
    changes: Iterable[Entry],
    deleted: Iterable[str],
    blobs: Storage,
    now: datetime,
) -> WorkspaceVersion | None:
    """Make version parent+1 from `parent` and a change; None when nothing changes.

    Raises StaleVersion when `parent` is not the head, BlobsMissing when an entry names
    content the store lacks, UnsafePath when the new tree would be unsafe. Nothing is
    written unless the whole change is accepted. The cost is in proportion to the change
    (and the workspace's symlinks), not to the size of the tree.
    """
    workspace = store.get(session, workspace_id=workspace_id)
    if workspace.head != parent:
        raise StaleVersion(parent, workspace.head)
    changes, deleted = list(changes), list(deleted)
    tree = _load(session, workspace_id, changes, deleted)
    before = dict(tree)
    touched: set[str] = set()
    for path in deleted:
        prefix = path + "/"
        for gone in [p for p in tree if p == path or p.startswith(prefix)]:
            del tree[gone]
            touched.add(gone)
    for entry in changes:
        if tree.get(entry.path) != entry:
            tree[entry.path] = entry
            touched.add(entry.path)
    if not touched:
        return None
    _check(session, workspace_id, before, tree, touched)
    missing = blobs.missing(e.hash for p in touched if (e := tree.get(p)) and e.hash)
    if missing:
        raise BlobsMissing(missing)
    return _write(session, workspace, parent, before, tree, sorted(touched), now)


def _write(
    session: Session,
    workspace: Workspace,
    parent: int,
    before: dict[str, Entry],
    tree: dict[str, Entry],
    touched: list[str],
    now: datetime,
) -> WorkspaceVersion:
    number = parent + 1
    # The guard makes two commits against one parent race safely: one wins, one is stale.
    won = changed(
        session,
        update(Workspace)
        .where(Workspace.id == workspace.id, Workspace.head == parent)
        .values(head=number, updated_at=now),
    )
    if not won:
        session.refresh(workspace)
        raise StaleVersion(parent, workspace.head)
    for start in range(0, len(touched), CHUNK):
        session.execute(
            update(WorkspaceEntry)
            .where(
                WorkspaceEntry.workspace_id == workspace.id,
                WorkspaceEntry.path.in_(touched[start : start + CHUNK]),
                WorkspaceEntry.until.is_(None),
            )
            .values(until=number)
            .execution_options(synchronize_session=False)
        )
    added = [e for p in touched if (e := tree.get(p)) is not None]
    session.add_all(
        WorkspaceEntry(
            workspace_id=workspace.id,
            path=e.path,
            kind=e.kind,
            hash=e.hash,
            mode=e.mode,
            target=e.target,
            size=e.size,
            since=number,
            until=None,
        )
        for e in added
    )
    removed = [e for p in touched if (e := before.get(p)) is not None and e.kind == "file"]
    previous = store.version(session, workspace_id=workspace.id, number=parent)
    row = WorkspaceVersion(
        workspace_id=workspace.id,
        number=number,
        manifest_hash=None,
        files=(previous.files if previous else 0)
        + sum(e.kind == "file" for e in added)
        - len(removed),
        bytes=(previous.bytes if previous else 0)
        + sum(e.size for e in added if e.kind == "file")
        - sum(e.size for e in removed),
        changed=len(touched),
        created_at=now,
    )
    session.add(row)
    session.flush()
    session.refresh(workspace)
    return row
