"""Garbage collection of workspaces: old versions pruned, then blobs and snapshots nothing names.

A blob is kept while a version still in the store names it (a file, or a manifest), while
a task that has not ended or ended within the grace period sent it as an agent's edit (the
daemon, or `autan pull`, may still fetch it), or while it is younger than the grace period
(an upload whose commit has not come yet). On disk, asking for a blob (`missing`) or
committing it touches it, so a blob named again just before a collection is young, and
kept; in object storage a blob's age is its upload's, and a commit that names one removed
meanwhile gets 409 with it missing, so the daemon sends it again.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from orchestrator.live_link import CHANGED
from orchestrator.models import Event, Task, Workspace, WorkspaceEntry, WorkspaceVersion
from sync import snapshots
from sync.base import Storage
from sync.hashing import is_digest

log = logging.getLogger(__name__)


@dataclass
class GcReport:
    versions_pruned: int = 0
    entries_pruned: int = 0
    blobs_removed: int = 0
    bytes_freed: int = 0
    snapshots_removed: int = 0
    dry_run: bool = False


def prune_versions(session: Session, *, keep: int) -> tuple[int, int]:
    """Drop versions older than the newest `keep` of each workspace, but never one that a
    task still queued or running started from; returns (versions, entry rows) dropped."""
    versions = entries = 0
    for workspace in session.scalars(select(Workspace)):
        cutoff = workspace.head - keep + 1
        prefix = f"{snapshots.PREFIX}{workspace.id}@"
        for (repo,) in session.execute(
            select(Task.repo).where(Task.repo.like(f"{prefix}%"), Task.finished_at.is_(None))
        ):
            cutoff = min(cutoff, int(repo.removeprefix(prefix)))
        if cutoff <= 1:
            continue
        old_entries = (
            WorkspaceEntry.workspace_id == workspace.id,
            WorkspaceEntry.until.is_not(None),
            WorkspaceEntry.until <= cutoff,
        )
        old_versions = (
            WorkspaceVersion.workspace_id == workspace.id,
            WorkspaceVersion.number < cutoff,
        )
        entries += session.scalar(select(func.count()).where(*old_entries)) or 0
        versions += session.scalar(select(func.count()).where(*old_versions)) or 0
        session.execute(delete(WorkspaceEntry).where(*old_entries))
        session.execute(delete(WorkspaceVersion).where(*old_versions))
    return versions, entries


def named_blobs(session: Session, *, since: datetime) -> set[str]:
    """Every blob hash the store still names (see the module's note)."""
    named: set[str] = set(session.scalars(select(WorkspaceEntry.hash).where(
        WorkspaceEntry.hash.is_not(None))))  # fmt: skip
    named |= set(session.scalars(select(WorkspaceVersion.manifest_hash).where(
        WorkspaceVersion.manifest_hash.is_not(None))))  # fmt: skip
    recent = select(Task.id, Task.ref).where(
        Task.repo.like(f"{snapshots.PREFIX}%"),
        or_(Task.finished_at.is_(None), Task.finished_at >= since),
    )
    for task_id, ref in session.execute(recent):
        if ref:
            named.add(ref)
        events = select(Event.data).where(Event.task_id == task_id, Event.kind == CHANGED)
        for data in session.scalars(events):
            named.update(c.get("hash") for c in data.get("changes", []) if c.get("hash"))
    return named


def collect(
    session: Session,
    *,
    blobs: Storage,
    snapshots_dir: Path,
    keep_versions: int,
    grace: timedelta,
    now: datetime,
    dry_run: bool = False,
) -> GcReport:
    """Prune versions, then remove what nothing names and the grace period does not cover."""
    report = GcReport(dry_run=dry_run)
    trial = session.begin_nested() if dry_run else None  # a dry run prunes, looks, undoes
    report.versions_pruned, report.entries_pruned = prune_versions(session, keep=keep_versions)
    session.flush()
    named = named_blobs(session, since=now - grace)
    if trial is not None:
        trial.rollback()
    oldest = time.time() - grace.total_seconds()
    for digest, stored, size in blobs.listing():  # looked at last: one named meanwhile is young
        if digest not in named and stored < oldest:
            report.blobs_removed += 1
            report.bytes_freed += size
            if not dry_run:
                blobs.remove(digest)
    if snapshots_dir.is_dir():
        for tree in sorted(snapshots_dir.iterdir()):
            if tree.is_dir() and is_digest(tree.name) and tree.name not in named:
                _remove_snapshot(tree, oldest, report)
    return report


def _remove_snapshot(tree: Path, oldest: float, report: GcReport) -> None:
    if tree.stat().st_mtime >= oldest:
        return
    report.snapshots_removed += 1
    if not report.dry_run:
        shutil.rmtree(tree, ignore_errors=True)
        tree.with_name(f"{tree.name}.lock").unlink(missing_ok=True)
