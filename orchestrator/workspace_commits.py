"""Committing a change to a workspace: checked against only what it touches, then versioned."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, case, func, insert, literal, or_, select, update
from sqlalchemy.orm import Session

from orchestrator import workspace_store as store
from orchestrator.models import Workspace, WorkspaceEntry, WorkspaceVersion
from orchestrator.store import changed
from sync.base import Storage
from sync.errors import BlobsMissing, StaleVersion, UnsafePath
from sync.manifests import MAX_PATH_BYTES, Entry, check_links, check_parents
from sync.renames import roots

CHUNK = 500  # paths per IN (...): well under every database's limit on bound parameters


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:depth]) for depth in range(1, len(parts))]


def _within(path: str, top: str) -> bool:
    return path == top or path.startswith(top + "/")


@dataclass
class _Plan:
    """What a commit does besides the entries it names: folders deleted or moved whole,
    done by prefix in the store rather than row by row."""

    folders: list[str] = field(default_factory=list)
    """Deleted folders: every row beneath each ends in one statement."""
    moves: list[tuple[str, str]] = field(default_factory=list)
    """Renames (from, to): the rows at and beneath `from` copied under `to`, then ended."""
    moved_rows: int = 0
    gone_files: int = 0
    gone_bytes: int = 0
    gone_rows: int = 0


def _live_range(workspace_id: str, top: str) -> list[ColumnElement[bool]]:
    return [
        WorkspaceEntry.workspace_id == workspace_id,
        WorkspaceEntry.until.is_(None),
        or_(WorkspaceEntry.path == top, store.beneath(top)),
    ]


def _load(session: Session, workspace_id: str, named: set[str]) -> dict[str, Entry]:
    """The head's entries a change can affect: those it names, their parents, and every
    symlink (a symlink's safety depends on the others). What lies beneath a deleted or moved
    folder is not read: it goes, or moves, whole."""
    exact = sorted(named | {p for path in named for p in _parents(path)})
    tree: dict[str, Entry] = {}
    for start in range(0, len(exact), CHUNK):
        where = WorkspaceEntry.path.in_(exact[start : start + CHUNK])
        tree.update(store.live(session, workspace_id=workspace_id, where=where))
    links = WorkspaceEntry.kind == "symlink"
    tree.update(store.live(session, workspace_id=workspace_id, where=links))
    return tree


def _check_moves(moves: list[tuple[str, str]], deleted: list[str], changes: list[Entry]) -> None:
    """What a rename moves is moved unread: no deletion or change may name a path at or
    beneath either of its ends, and no two renames may overlap."""
    ends = [end for move in moves for end in move]
    for source, to in moves:
        if _within(to, source) or _within(source, to):
            raise UnsafePath(f"cannot rename {source!r} to {to!r}: one is inside the other")
    others = [*deleted, *(e.path for e in changes)]
    for n, end in enumerate(ends):
        later = ends[n + 2 - n % 2 :]  # its partner is checked above
        for path in others + later:
            if _within(path, end) or (path in later and _within(end, path)):
                raise UnsafePath(
                    f"{path!r} is at or inside {end!r}, which this commit also renames: "
                    "send the rename and the other change in separate commits"
                )


def _delete_folders(
    session: Session, workspace_id: str, tree: dict[str, Entry], deleted: list[str], plan: _Plan
) -> set[str]:
    """Take the deleted paths out of `tree`; a folder's contents are counted, not read."""
    touched: set[str] = set()
    for path in roots(deleted):
        if tree.get(path) is not None and tree[path].kind == "dir":
            plan.folders.append(path)
            files, size, rows = session.execute(
                select(
                    func.sum(case((WorkspaceEntry.kind == "file", 1), else_=0)),
                    func.sum(WorkspaceEntry.size),
                    func.count(),
                ).where(*_live_range(workspace_id, path), WorkspaceEntry.path != path)
            ).one()
            plan.gone_files += files or 0
            plan.gone_bytes += size or 0
            plan.gone_rows += rows
        for gone in [p for p in tree if _within(p, path)]:
            del tree[gone]
            if gone == path or path not in plan.folders:
                touched.add(gone)  # beneath a folder, it ends with the folder's range
    return touched


def _move(
    session: Session, workspace_id: str, tree: dict[str, Entry], moves: list[tuple[str, str]]
) -> set[str]:
    """Apply renames to `tree` (the loaded entries at and beneath each source follow it);
    the ends to check. Raises UnsafePath for a missing source, a taken destination, or a
    path the move would make too long."""
    ends: set[str] = set()
    for source, to in moves:
        if source not in tree:
            raise UnsafePath(f"cannot rename {source!r}: it is not in the workspace")
        if to in tree:
            raise UnsafePath(f"cannot rename {source!r} to {to!r}: {to!r} exists")
        for path in [p for p in tree if _within(p, source)]:
            new = to + path[len(source) :]
            tree[new] = tree.pop(path).model_copy(update={"path": new})
        ends.add(to)
        growth = len(to.encode()) - len(source.encode())
        if growth > 0:  # a path's bytes are at most four times its characters
            near = session.scalars(
                select(WorkspaceEntry.path).where(
                    *_live_range(workspace_id, source),
                    func.length(WorkspaceEntry.path) >= (MAX_PATH_BYTES - growth) // 4,
                )
            )
            for path in near:
                if len(path.encode()) + growth > MAX_PATH_BYTES:
                    raise UnsafePath(f"renaming {source!r} to {to!r} makes {path!r} too long")
    return ends


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
    renamed: Iterable[tuple[str, str]] = (),
) -> WorkspaceVersion | None:
    """Make version parent+1 from `parent` and a change; None when nothing changes.

    Deletions come first, then renames (`from`, `to`: the path and all beneath it move),
    then the entries. Raises StaleVersion when `parent` is not the head, BlobsMissing when
    an entry names content the store lacks, UnsafePath when the new tree would be unsafe.
    Nothing is written unless the whole change is accepted. The cost is in proportion to
    the paths named (and the workspace's symlinks), not to the size of the tree nor of the
    folders deleted or renamed: those are a few statements each.
    """
    workspace = store.get(session, workspace_id=workspace_id)
    if workspace.head != parent:
        raise StaleVersion(parent, workspace.head)
    changes, deleted, moves = list(changes), list(deleted), list(renamed)
    _check_moves(moves, deleted, changes)
    named = (
        {e.path for e in changes} | set(roots(deleted)) | {end for move in moves for end in move}
    )
    tree = _load(session, workspace_id, named)
    before = dict(tree)
    plan = _Plan(moves=moves)
    touched = _delete_folders(session, workspace_id, tree, deleted, plan)
    moved = _move(session, workspace_id, tree, moves)
    for entry in changes:
        if tree.get(entry.path) != entry:
            tree[entry.path] = entry
            touched.add(entry.path)
    if not touched and not moves:
        return None
    _check(session, workspace_id, before, tree, touched | moved)
    missing = blobs.missing(e.hash for p in touched if (e := tree.get(p)) and e.hash)
    if missing:
        raise BlobsMissing(missing)
    return _write(session, workspace, parent, before, tree, sorted(touched), plan, now)


def _end(session: Session, *where: ColumnElement[bool], number: int) -> int:
    result = session.execute(
        update(WorkspaceEntry)
        .where(*where)
        .values(until=number)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _write(
    session: Session,
    workspace: Workspace,
    parent: int,
    before: dict[str, Entry],
    tree: dict[str, Entry],
    touched: list[str],
    plan: _Plan,
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
    for folder in plan.folders:
        _end(session, *_live_range(workspace.id, folder), number=number)
    ending = [p for p in touched if p in before]
    for start in range(0, len(ending), CHUNK):
        _end(
            session,
            WorkspaceEntry.workspace_id == workspace.id,
            WorkspaceEntry.path.in_(ending[start : start + CHUNK]),
            WorkspaceEntry.until.is_(None),
            number=number,
        )
    for source, to in plan.moves:
        copied = select(
            WorkspaceEntry.workspace_id,
            literal(to).concat(func.substr(WorkspaceEntry.path, len(source) + 1)),
            WorkspaceEntry.kind,
            WorkspaceEntry.hash,
            WorkspaceEntry.mode,
            WorkspaceEntry.target,
            WorkspaceEntry.size,
            literal(number),
        ).where(*_live_range(workspace.id, source))
        columns = ["workspace_id", "path", "kind", "hash", "mode", "target", "size", "since"]
        session.execute(insert(WorkspaceEntry).from_select(columns, copied))
        plan.moved_rows += _end(
            session,
            *_live_range(workspace.id, source),
            WorkspaceEntry.since < number,
            number=number,
        )
    added = [e for p in touched if (e := tree.get(p)) is not None]
    if added:
        rows = [{**e.model_dump(), "workspace_id": workspace.id, "since": number} for e in added]
        session.execute(insert(WorkspaceEntry), rows)
    folders = set(plan.folders)  # what they held is counted by `_delete_folders`
    removed = [
        e
        for p in touched
        if (e := before.get(p)) is not None
        and e.kind == "file"
        and not any(parent in folders for parent in _parents(p))
    ]
    previous = store.version(session, workspace_id=workspace.id, number=parent)
    row = WorkspaceVersion(
        workspace_id=workspace.id,
        number=number,
        manifest_hash=None,
        files=(previous.files if previous else 0)
        + sum(e.kind == "file" for e in added)
        - len(removed)
        - plan.gone_files,
        bytes=(previous.bytes if previous else 0)
        + sum(e.size for e in added if e.kind == "file")
        - sum(e.size for e in removed)
        - plan.gone_bytes,
        changed=len(touched) + plan.gone_rows + 2 * plan.moved_rows,
        created_at=now,
    )
    session.add(row)
    session.flush()
    session.refresh(workspace)
    return row
