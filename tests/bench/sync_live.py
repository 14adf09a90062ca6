"""Two-way sync latency: a local save until it reads back in a live bubblewrap sandbox, and an
agent's edit in the sandbox until it is in the `autan/<task>` worktree beside the checkout.

The API runs in its own process and `autan sync` is a child process, as a developer runs
them; the attempt's side is what a worker runs (`LiveAttempt` over a real sandbox, its events
written through the lifecycle), here in the benchmark's process so it can time both ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from orchestrator import workspace_store
from orchestrator.base import AttemptContext
from orchestrator.live_link import LiveAttempt
from orchestrator.schemas import TaskSpec
from orchestrator.workspace_feed import WorkspaceFeed
from sandbox import SandboxConfig, create_sandbox
from sandbox.errors import SandboxError
from sync import snapshots
from sync.blobs import BlobStore
from sync.remote import HttpRemote
from tests.agent.bugs import git
from tests.bench.env import Bench, api_process, bench_env
from tests.bench.stats import summary_ms
from tests.waiting import wait_until
from tests.workers import ROOT, settings_env

FILES = 10_000


def _poll(done: Callable[[], bool], timeout: float = 10.0) -> float:
    """When `done` first held, looked at every half millisecond."""
    wait_until(done, timeout=timeout, interval=0.0005, what="the change to arrive")
    return time.perf_counter()


def _reads(read: Callable[[], bytes], want: bytes) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return read() == want
        except (OSError, SandboxError):
            return False

    return check


def bench_live(database: str, *, saves: int = 200) -> list[dict[str, Any]]:
    with bench_env(database, "none") as bench, api_process(bench) as base:
        checkout = bench.workdir / "project"
        for i in range(FILES):  # 100 folders of 100 modules
            if i % 100 == 0:
                (checkout / "src" / f"d{i // 100}").mkdir(parents=True)
            (checkout / "src" / f"d{i // 100}" / f"m{i}.py").write_text(f"VALUE = {i}\n" * 20)
        git(checkout, "init", "-q", "-b", "main")
        git(checkout, "add", "-A")
        git(checkout, "commit", "-q", "-m", "start")
        env = settings_env(bench.settings) | {
            "AUTAN_URL": base, "AUTAN_TOKEN": bench.token,
            "AUTAN_SYNC_STATE_DIR": str(bench.workdir / "sync-state"),
        }  # fmt: skip
        daemon = subprocess.Popen(
            [sys.executable, "-m", "cli", "sync", str(checkout)], cwd=ROOT, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        remote = HttpRemote(base, bench.token)
        try:
            workspace = _first_version(remote)
            manifest = remote.snapshot(workspace, 1)
            lifecycle = bench.services.lifecycle
            task, _ = lifecycle.submit(
                TaskSpec(repo=snapshots.repo_of(workspace, 1), ref=manifest, instruction="bench")
            )
            claim = lifecycle.claims.claim(task.attempts[0].id, worker="bench")
            assert claim is not None
            blobs = bench.services.storage
            assert isinstance(blobs, BlobStore)
            tree = snapshots.base_tree(task.repo, manifest, blobs, bench.workdir / "snapshots")
            config = SandboxConfig(backend="bwrap", root=bench.workdir / "sandboxes")
            config.limits.require_cgroups = False
            sandbox = create_sandbox(tree, config)
            ctx = AttemptContext(
                task=lifecycle.get(task.id), attempt_id=claim.attempt_id, number=1,
                emit=lambda kind, data: _emitted(lifecycle.claims.emit(claim, kind, data)),
                phase=lambda state: None,
            )  # fmt: skip
            live = LiveAttempt(ctx, sandbox, blobs, WorkspaceFeed(bench.services))
            try:
                into, to_server = _local_to_sandbox(
                    checkout, sandbox.read_file, saves, partial(_head_made, bench, workspace)
                )
                worktree = checkout.parent / "project.autan" / task.id
                back = _sandbox_to_local(sandbox.write_file, live.live.poke, worktree, saves)
            finally:
                live.stop()
                sandbox.close()
        finally:
            remote.close()
            os.killpg(daemon.pid, signal.SIGTERM)
            daemon.wait(timeout=60)
    common = {"database": database, "files_in_tree": FILES, "sandbox": "bwrap"}
    return [
        {"figure": "local save to visible in a live sandbox", **common, **summary_ms(into)},
        {"figure": "local save to version committed on the server (part of the above)",
         **common, **summary_ms(to_server)},
        {"figure": "agent edit to visible in the autan/<task> worktree", **common,
         **summary_ms(back)},
    ]  # fmt: skip


def _head_made(bench: Bench, workspace_id: str) -> datetime:
    with bench.services.sessions() as session:
        head = workspace_store.get(session, workspace_id=workspace_id).head
        row = workspace_store.version(session, workspace_id=workspace_id, number=head)
        assert row is not None
        return row.created_at


def _emitted(_: object) -> None:
    """The lifecycle answers the event it wrote; an attempt's emit answers nothing."""


def _first_version(remote: HttpRemote) -> str:
    found: list[str] = []

    def synced() -> bool:
        try:
            workspaces = remote._http.get("/api/workspaces").json()
        except httpx.HTTPError:
            return False
        found[:] = [w["id"] for w in workspaces if w["head"] >= 1]
        return bool(found)

    wait_until(synced, timeout=120, what="the daemon's first sync")
    return found[0]


def _local_to_sandbox(
    checkout: Path, read: Callable[[str], bytes], saves: int, committed: Callable[[], datetime]
) -> tuple[list[float], list[float]]:
    """Each save's latency, and the part of it until the server had the new version."""
    latencies, to_server = [], []
    for i in range(saves):
        path = f"src/d0/m{i % 20}.py"
        content = f"VALUE = {i}  # saved\n".encode()
        wall, start = time.time(), time.perf_counter()
        (checkout / path).write_bytes(content)
        latencies.append(_poll(_reads(partial(read, path), content)) - start)
        to_server.append(committed().timestamp() - wall)
    return latencies, to_server


def _sandbox_to_local(
    write: Callable[[str, bytes], None], poke: Callable[[], None], worktree: Path, edits: int
) -> list[float]:
    latencies = []
    for i in range(edits):
        path = f"src/agent{i % 20}.py"
        content = f"EDIT = {i}\n".encode()
        start = time.perf_counter()
        write(path, content)
        poke()  # what the agent's file.change event does
        # The first edit also waits for the daemon to find the task (it looks every 2 s).
        timeout = 30.0 if i == 0 else 10.0
        arrived = _poll(_reads((worktree / path).read_bytes, content), timeout)
        if i:
            latencies.append(arrived - start)
    return latencies
