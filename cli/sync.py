"""`autan sync`: mirror a checkout to the server and watch it; `autan sync status` lists them."""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cli import render
from cli.config import CliSettings, load
from cli.errors import CliError
from sync import follow, snapshots
from sync import state as sync_state
from sync.config import SyncSettings
from sync.daemon import ONE_SHOT_WAIT_S, SyncDaemon
from sync.errors import AlreadySyncing, SyncError
from sync.follow import Mode
from sync.followers import Followers
from sync.remote import HttpRemote
from sync.state import SyncState

log = logging.getLogger("sync")


def _daemon(path: Path, server: str | None) -> tuple[SyncDaemon, HttpRemote]:
    settings, sync_settings = load(CliSettings), load(SyncSettings)
    root = path.expanduser().resolve()
    if not root.is_dir():
        raise CliError(f"{root} is not a directory: give the checkout to sync")
    url = (server or settings.url).rstrip("/")
    remote = HttpRemote(url, settings.resolved_token)
    daemon = SyncDaemon(
        root,
        remote,
        server=url,
        state_path=sync_state.state_file(sync_settings.state_dir, root),
        config=sync_settings.sync_daemon,
    )
    return daemon, remote


def sync(
    path: Annotated[
        str, typer.Argument(help="The checkout to mirror (default: here); `status` lists them.")
    ] = ".",
    server: Annotated[str | None, typer.Option(help="The Autan API (default: AUTAN_URL).")] = None,
    once: Annotated[bool, typer.Option("--once", help="Sync once and exit; do not watch.")] = False,
    apply: Annotated[
        Mode,
        typer.Option(
            "--apply",
            help="Where running tasks' edits land: `branch` (autan/<task> in a worktree beside "
            "the checkout) or `inplace` (this working tree, conflicts kept as PATH.autan-<task>).",
        ),
    ] = "branch",
) -> None:
    """Mirror a checkout to its workspace on the server, then send each change as it happens."""
    if path == "status":
        status()
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    daemon, remote = _daemon(Path(path), server)
    out = render.console()
    try:
        if once:
            daemon.acquire(wait_s=ONE_SHOT_WAIT_S)
            try:
                report = daemon.sync()
            finally:
                daemon.release()
            out.print(
                f"workspace {daemon.state.workspace_id} at version {report.version}: "
                f"{len(report.changed)} changed, {len(report.deleted)} deleted, "
                f"{report.uploaded} blob(s) uploaded ({report.uploaded_bytes} bytes)",
                markup=False, soft_wrap=True,
            )  # fmt: skip
            return
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        out.print(f"syncing {daemon.root} to {remote.url}; Ctrl-C stops", markup=False)
        followers = Followers(
            daemon.root, remote, daemon.register(), follow.lines_dir(daemon.path), mode=apply
        )
        tasks = threading.Thread(target=followers.run, args=(stop,), name="autan-tasks")
        tasks.start()
        try:
            daemon.run(stop)
        finally:
            stop.set()
            tasks.join(timeout=30)
    except SyncError as exc:
        raise CliError(str(exc)) from exc
    finally:
        remote.close()


def pull(
    task_id: Annotated[str, typer.Argument(help="The task whose edits to bring home.")],
    path: Annotated[str, typer.Option(help="The synced checkout the task started from.")] = ".",
    apply: Annotated[
        Mode, typer.Option("--apply", help="`branch` (autan/<task>) or `inplace`.")
    ] = "branch",
) -> None:
    """Bring a task's edits home once: onto branch autan/<task>, or into the working tree."""
    daemon, remote = _daemon(Path(path), None)
    out = render.console()
    try:
        workspace_id = daemon.state.workspace_id
        if workspace_id is None:
            raise CliError(f"{daemon.root} has not been synced: run `autan sync` there first")
        state_dir = follow.lines_dir(daemon.path)
        line = follow.load_line(follow.line_path(state_dir, task_id))
        if line is None:
            version = next((t.version for t in remote.tasks(workspace_id) if t.id == task_id), None)
            if version is None:
                raise CliError(f"task {task_id} did not start from workspace {workspace_id}")
            line = follow.TaskLine(
                task_id=task_id, workspace_id=workspace_id, version=version, mode=apply
            )
        elif line.mode != apply and line.seq:
            raise CliError(
                f"task {task_id} is already being brought home {line.mode}; "
                f"pull it with --apply {line.mode}"
            )
        follower = follow.TaskFollower(daemon.root, remote, line, state_dir)
        follower.catch_up()
        follower.save()
    except SyncError as exc:
        raise CliError(str(exc)) from exc
    finally:
        remote.close()
    where = f"branch {line.branch} in {line.worktree}" if line.mode == "branch" else daemon.root
    state = "" if line.done else " (the task is still running: pull again for the rest)"
    out.print(f"task {task_id}: its edits are on {where}{state}", markup=False, soft_wrap=True)
    for conflict in line.conflicts:
        out.print(f"conflict: {conflict.path} (theirs: {conflict.copy_path})", markup=False)


def _running(state: SyncState, state_dir: Path) -> bool:
    lock = sync_state.state_file(state_dir, Path(state.root)).with_suffix(".lock")
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def status() -> None:
    """Each synced checkout: its workspace, version, last change, what is pending."""
    state_dir = load(SyncSettings).state_dir
    states = sync_state.load_all(state_dir)
    out = render.console()
    if not states:
        out.print("no checkouts synced yet: run `autan sync PATH`")
        return
    now = datetime.now(UTC)
    table = Table("checkout", "workspace", "version", "last change", "pending", "daemon")
    for state in states:
        pending = f"{len(state.pending.paths)} path(s)"
        if state.pending.error:
            pending += f": {state.pending.error}"
        if state.refused:
            pending += f"; {len(state.refused)} symlink(s) refused"
        table.add_row(
            state.root,
            f"{state.workspace_id or '-'} on {state.server}",
            str(state.version),
            f"{render.age(state.last_change, now)} ago" if state.last_change else "never",
            pending,
            "running" if _running(state, state_dir) else "stopped",
        )
    out.print(table)
    for state in states:
        _tasks(out, state, state_dir)


def _tasks(out: Console, state: SyncState, state_dir: Path) -> None:
    lines = follow.load_lines(follow.lines_dir(sync_state.state_file(state_dir, Path(state.root))))
    if not lines:
        return
    table = Table("task", "edits land on", "attempt", "state", "conflicts", title=state.root)
    for line in lines:
        where = line.branch or "-" if line.mode == "branch" else "the working tree"
        table.add_row(
            line.task_id,
            where,
            str(line.followed or "-"),
            "error: " + line.error if line.error else ("done" if line.done else "following"),
            "\n".join([f"{c.path} (theirs: {c.copy_path or 'kept in the sandbox'})"
                        for c in line.conflicts]
                       + [f"{c.path} in the sandbox (yours: {c.copy_path or 'deletion not taken'})"
                          for c in line.in_sandbox]) or "none",
        )  # fmt: skip
    out.print(table)


def workspace_base(path: str) -> tuple[str, str]:
    """The task repo and ref for the checkout at `path`: synced once now, then its head."""
    daemon, remote = _daemon(Path(path), None)
    try:
        try:
            daemon.acquire()
        except AlreadySyncing:
            workspace_id = daemon.state.workspace_id  # its daemon keeps the server current
        else:
            try:
                daemon.sync()
                workspace_id = daemon.state.workspace_id
            finally:
                daemon.release()
        if workspace_id is None:
            raise CliError(f"{daemon.root} has not been synced yet: run `autan sync` there")
        detail = remote.workspace(workspace_id)
        if detail.version is None:
            raise CliError(f"workspace {workspace_id} has no version yet: is {daemon.root} empty?")
        number = detail.version.number
        manifest_hash = remote.snapshot(workspace_id, number)
    except SyncError as exc:
        raise CliError(str(exc)) from exc
    finally:
        remote.close()
    return snapshots.repo_of(workspace_id, number), manifest_hash
