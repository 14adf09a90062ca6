"""Garbage collection: old versions pruned but never one a live task started from; blobs and
snapshots removed only when nothing names them and the grace period is over."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from orchestrator import store
from orchestrator.config import OrchestratorSettings
from orchestrator.models import utcnow
from orchestrator.services import Services
from orchestrator.workspace_gc import GcReport, collect
from sync.blobs import BlobStore
from sync.hashing import hash_bytes
from sync.snapshots import materialise
from tests.cli.conftest import Autan
from tests.sync.test_api import file, register
from tests.sync.test_api_back import submit_from
from tests.workers import settings_env

A, B, C, AGENT, STRAY = b"a\n", b"b\n", b"c\n", b"the agent's\n", b"stray\n"
DAY = 24 * 3600


def age(blobs: BlobStore, *contents: bytes) -> None:
    """Make blobs look two days old (the grace period is one)."""
    then = time.time() - 2 * DAY
    for data in contents:
        os.utime(blobs.path(hash_bytes(data)), (then, then))


def gc(services: Services, *, keep: int, dry_run: bool = False) -> GcReport:
    data = services.settings.data_dir
    with services.sessions.begin() as session:
        report = collect(
            session, blobs=BlobStore(data / "blobs"), snapshots_dir=data / "snapshots",
            keep_versions=keep, grace=timedelta(days=1), now=utcnow(), dry_run=dry_run,
        )  # fmt: skip
        if dry_run:
            session.rollback()
    return report


def three_versions(api: TestClient) -> str:
    workspace_id = register(api)
    for data in (A, B, C, AGENT, STRAY):
        api.put(f"/api/blobs/{hash_bytes(data)}", content=data)
    versions = f"/api/workspaces/{workspace_id}/versions"
    for body in (
        {"parent": 0, "changes": [file("a.txt", A), file("b.txt", B)]},
        {"parent": 1, "changes": [file("a.txt", C)]},
        {"parent": 2, "deleted": ["b.txt"]},
    ):
        assert api.post(versions, json=body).status_code == 201
    return workspace_id


def test_old_versions_and_what_only_they_named_go(api: TestClient, services: Services) -> None:
    blobs = BlobStore(services.settings.data_dir / "blobs")
    workspace_id = three_versions(api)
    age(blobs, A, B, C, AGENT)  # STRAY stays young: an upload whose commit may be coming

    dry = gc(services, keep=1, dry_run=True)
    assert (dry.versions_pruned, dry.blobs_removed) == (2, 3) and blobs.has(hash_bytes(A))

    report = gc(services, keep=1)
    assert (report.versions_pruned, report.blobs_removed) == (2, 3)  # A, B, AGENT
    assert [blobs.has(hash_bytes(x)) for x in (A, B, C, AGENT, STRAY)] == [
        False,
        False,
        True,
        False,
        True,
    ]
    manifest = api.get(f"/api/workspaces/{workspace_id}/manifest").json()
    assert [e["path"] for e in manifest["entries"]] == ["a.txt"]  # the head reads back whole
    assert api.get(f"/api/workspaces/{workspace_id}/manifest?version=1").status_code == 404
    assert gc(services, keep=1) == GcReport()  # nothing more to do


def test_a_live_task_keeps_its_version_its_edits_and_its_snapshot(
    api: TestClient, services: Services
) -> None:
    blobs = BlobStore(services.settings.data_dir / "blobs")
    workspace_id = three_versions(api)
    task_id = submit_from(api, workspace_id, version=1)  # still queued: live
    with services.sessions.begin() as session:
        change = {"attempt": 1, "changes": [file("agent.txt", AGENT)], "deleted": []}
        store.add_event(session, task_id=task_id, kind="sync.changed", data=change, now=utcnow())
    manifest = api.post(f"/api/workspaces/{workspace_id}/versions/1/snapshot").json()
    snapshots = services.settings.data_dir / "snapshots"
    tree = materialise(blobs, manifest["manifest_hash"], snapshots)
    stray_tree = snapshots / hash_bytes(b"a manifest no one names")
    stray_tree.mkdir()
    then = time.time() - 2 * DAY
    for path in (tree, stray_tree):
        os.utime(path, (then, then))
    age(blobs, A, B, C, AGENT, STRAY)
    api.post("/api/blobs/missing", json={"hashes": [hash_bytes(STRAY)]})  # named again: young

    report = gc(services, keep=1)

    assert report.versions_pruned == 0  # version 1 is the live task's base
    assert all(blobs.has(hash_bytes(x)) for x in (A, B, C, AGENT, STRAY))
    assert tree.is_dir() and not stray_tree.exists() and report.snapshots_removed == 1
    assert Path(tree, "a.txt").read_bytes() == A


def test_autan_gc_says_what_it_would_remove(
    api: TestClient, services: Services, settings: OrchestratorSettings
) -> None:
    three_versions(api)
    age(BlobStore(services.settings.data_dir / "blobs"), A, B, C, AGENT)
    autan = Autan(settings_env(settings))
    dry = autan("gc", "--keep-versions", "1", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would remove 2 version(s) (2 entry rows), 3 blob(s)" in dry.stdout
    done = autan("gc", "--keep-versions", "1")
    assert "removed 2 version(s)" in done.stdout
    assert autan("gc", "--keep-versions", "0").returncode != 0  # at least one is kept
