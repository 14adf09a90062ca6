"""Workspaces, their versions and their entries in the store, in the caller's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orchestrator.access import Caller, Owner
from orchestrator.models import (
    Task,
    User,
    Workspace,
    WorkspaceConflict,
    WorkspaceEntry,
    WorkspaceVersion,
)
from sync.base import Storage
from sync.errors import WorkspaceNotFound
from sync.manifests import Entry, Kind, canonical


def register(
    session: Session, *, key: str, name: str, root: str, caller: Caller, now: datetime
) -> tuple[Workspace, bool]:
    """The caller's user's workspace with `key`, made if new; says whether it was made. Any
    token of the user finds it; another user's with the same key is never handed over. Two
    callers at once (`autan sync` and `autan run --workspace` starting together) get the
    same one."""
    mine = (
        select(Workspace)
        .where(Workspace.owner_id == caller.user_id, Workspace.key == key)
        .order_by(Workspace.created_at, Workspace.id)
    )
    found = session.scalars(mine).first()
    if found is None:
        workspace = Workspace(
            key=key, name=name, root=root, created_by=caller.token_id, owner_id=caller.user_id,
            head=0, created_at=now, updated_at=now,
        )  # fmt: skip
        try:
            with session.begin_nested():
                session.add(workspace)
            return workspace, True
        except IntegrityError:
            found = session.scalars(mine).first()  # the other caller's, made meanwhile
            if found is None:
                raise
    found.name, found.root = name, root
    return found, False


def get(session: Session, *, workspace_id: str, caller: Caller | None = None) -> Workspace:
    """The workspace; WorkspaceNotFound when there is none, or when `caller` does not reach it
    (the same answer: another person's workspace is not revealed)."""
    workspace = session.get(Workspace, workspace_id)
    if workspace is None or (caller is not None and not caller.reaches(owner(session, workspace))):
        raise WorkspaceNotFound(f"no workspace with id {workspace_id!r}")
    return workspace


def owner(session: Session, workspace: Workspace) -> Owner:
    """Who a workspace belongs to: its owner and the owner's team."""
    if workspace.owner_id is None:
        return Owner(user_id=None, team=None)
    team = session.scalar(select(User.team).where(User.id == workspace.owner_id))
    return Owner(user_id=workspace.owner_id, team=team)


def list_all(session: Session, *, caller: Caller | None = None) -> list[Workspace]:
    """Every workspace, newest change first; with `caller`, only those it reaches."""
    query = select(Workspace).order_by(Workspace.updated_at.desc())
    if caller is not None and caller.role != "admin":
        query = query.outerjoin(User, User.id == Workspace.owner_id)
        mine = Workspace.owner_id == caller.user_id
        query = query.where(or_(mine, User.team == caller.team) if caller.team else mine)
    return list(session.scalars(query))


def holds(session: Session, *, workspace_id: str, digest: str) -> bool:
    """Whether a version of the workspace, any, has a file with content `digest`."""
    found = select(WorkspaceEntry.id).where(
        WorkspaceEntry.workspace_id == workspace_id, WorkspaceEntry.hash == digest
    )
    return session.scalar(found.limit(1)) is not None


def version(session: Session, *, workspace_id: str, number: int) -> WorkspaceVersion | None:
    return session.scalars(
        select(WorkspaceVersion).where(
            WorkspaceVersion.workspace_id == workspace_id, WorkspaceVersion.number == number
        )
    ).first()


def entries_at(session: Session, *, workspace_id: str, number: int) -> dict[str, Entry]:
    """The tree of version `number` (0: empty)."""
    rows = session.scalars(
        select(WorkspaceEntry).where(
            WorkspaceEntry.workspace_id == workspace_id,
            WorkspaceEntry.since <= number,
            or_(WorkspaceEntry.until.is_(None), WorkspaceEntry.until > number),
        )
    )
    return {row.path: _entry(row) for row in rows}


def _entry(row: WorkspaceEntry) -> Entry:
    # Checked when it was committed: read back without validating again (large trees).
    return Entry.model_construct(
        path=row.path, kind=cast(Kind, row.kind), hash=row.hash, mode=row.mode, target=row.target,
        size=row.size,
    )  # fmt: skip


def live(session: Session, *, workspace_id: str, where: ColumnElement[bool]) -> dict[str, Entry]:
    """The head's entries that match `where`."""
    rows = session.scalars(
        select(WorkspaceEntry).where(
            WorkspaceEntry.workspace_id == workspace_id, WorkspaceEntry.until.is_(None), where
        )
    )
    return {row.path: _entry(row) for row in rows}


def beneath(path: str) -> ColumnElement[bool]:
    """Rows strictly beneath `path`: a range on the path index (paths compare byte by byte,
    and "0" follows "/"), so a folder of any size is found in one indexed statement."""
    return and_(WorkspaceEntry.path >= f"{path}/", WorkspaceEntry.path < f"{path}0")


def snapshot(
    session: Session, *, workspace_id: str, number: int, blobs: Storage
) -> WorkspaceVersion:
    """The version with its manifest blob, written on first ask (a task starting from it)."""
    row = version(session, workspace_id=workspace_id, number=number)
    if row is None:
        raise WorkspaceNotFound(f"workspace {workspace_id} has no version {number}")
    if row.manifest_hash is None:
        tree = entries_at(session, workspace_id=workspace_id, number=number)
        row.manifest_hash = blobs.put_bytes(canonical(tree.values()))
        session.flush()
    return row


def changes_between(
    session: Session, *, workspace_id: str, after: int, upto: int
) -> tuple[list[Entry], list[str]]:
    """What changed from version `after` to `upto`: entries new or changed, and paths gone."""
    born = session.scalars(
        select(WorkspaceEntry).where(
            WorkspaceEntry.workspace_id == workspace_id,
            WorkspaceEntry.since > after,
            WorkspaceEntry.since <= upto,
            or_(WorkspaceEntry.until.is_(None), WorkspaceEntry.until > upto),
        )
    )
    changes = {row.path: _entry(row) for row in born}
    ended = session.scalars(
        select(WorkspaceEntry.path).where(
            WorkspaceEntry.workspace_id == workspace_id,
            WorkspaceEntry.since <= after,
            WorkspaceEntry.until > after,
            WorkspaceEntry.until <= upto,
        )
    )
    deleted = sorted({path for path in ended if path not in changes})
    return sorted(changes.values(), key=lambda e: e.path), deleted


def tasks_of(session: Session, *, workspace_id: str, limit: int = 100) -> list[Task]:
    """The newest tasks started from the workspace (their repo is `workspace:<id>@<n>`)."""
    return list(
        session.scalars(
            select(Task)
            .where(Task.repo.like(f"workspace:{workspace_id}@%"))
            .order_by(Task.created_at.desc())
            .limit(limit)
        )
    )


def set_conflicts(
    session: Session,
    *,
    workspace_id: str,
    task_id: str,
    side: str,
    conflicts: list[tuple[str, str | None]],
    now: datetime,
) -> None:
    """Make `conflicts` (path, copy) the open ones of `task_id` on `side`; others are resolved."""
    rows = session.scalars(
        select(WorkspaceConflict).where(
            WorkspaceConflict.workspace_id == workspace_id,
            WorkspaceConflict.task_id == task_id,
            WorkspaceConflict.side == side,
            WorkspaceConflict.resolved_at.is_(None),
        )
    )
    wanted = dict(conflicts)
    for row in rows:
        if row.path in wanted and wanted[row.path] == row.copy_path:
            del wanted[row.path]
        else:
            row.resolved_at = now
    for path, copy in wanted.items():
        row = WorkspaceConflict(workspace_id=workspace_id, task_id=task_id, path=path, side=side)
        row.copy_path, row.created_at = copy, now
        session.add(row)


def open_conflicts(session: Session, *, workspace_id: str | None = None) -> list[WorkspaceConflict]:
    """Conflicts not resolved; one met in a sandbox lasts only while its task runs (after, it
    is the daemon's to report: the agent's version came home beside the developer's)."""
    ended = select(Task.id).where(Task.finished_at.is_not(None))
    query = select(WorkspaceConflict).where(
        WorkspaceConflict.resolved_at.is_(None),
        or_(WorkspaceConflict.side != "sandbox", WorkspaceConflict.task_id.not_in(ended)),
    )
    if workspace_id is not None:
        query = query.where(WorkspaceConflict.workspace_id == workspace_id)
    return list(session.scalars(query.order_by(WorkspaceConflict.created_at)))
