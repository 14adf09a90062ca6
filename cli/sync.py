"""`autan sync`: mirror a checkout to the server and watch it; `autan sync status` lists them."""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path
from typing import Annotated

import typer

from cli import render, sync_status
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
        str,
        typer.Argument(
            help="The checkout to mirror (default: here); `status` lists them, `forget PATH` "
            "drops one from the list."
        ),
    ] = ".",
    target: Annotated[
        str | None, typer.Argument(help="With `forget`: the checkout to drop.", show_default=False)
    ] = None,
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
    as_json: Annotated[
        bool, typer.Option("--json", help="With `status`: the checkouts as JSON.")
    ] = False,
) -> None:
    """Mirror a checkout to its workspace on the server, then send each change as it happens."""
    if path == "status":
        sync_status.status(as_json)
        return
    if path == "forget":
        if target is None:
            raise CliError("name the checkout to forget: `autan sync forget PATH`")
        sync_status.forget(target)
        return
    if target is not None:
        raise CliError(f"one checkout at a time: got {path!r} and {target!r}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the daemon's lines, not each request
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
        workspace_id = daemon.register_when_reachable(stop)
        if workspace_id is None:
            return
        followers = Followers(
            daemon.root, remote, workspace_id, follow.lines_dir(daemon.path), mode=apply
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
        saved = follow.line_path(state_dir, task_id)
        line = follow.load_line(saved)
        if line is not None and line.mode != apply:
            # Followed the other way (a branch-mode daemon): a line of its own, so the branch
            # stays as the daemon keeps it and the working tree gets the edits too.
            saved = follow.line_path(state_dir, task_id, apply)
            line = follow.load_line(saved)
        if line is None:
            version = next((t.version for t in remote.tasks(workspace_id) if t.id == task_id), None)
            if version is None:
                raise CliError(f"task {task_id} did not start from workspace {workspace_id}")
            line = follow.TaskLine(
                task_id=task_id, workspace_id=workspace_id, version=version, mode=apply
            )
        follower = follow.TaskFollower(daemon.root, remote, line, state_dir, saved)
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
        kept = f" (theirs: {conflict.copy_path})" if conflict.copy_path else ""
        out.print(f"conflict: {conflict.path}{kept}", markup=False, soft_wrap=True)


def _first_version_of(daemon: SyncDaemon) -> str | None:
    """The workspace of a checkout whose daemon is running, once that daemon has committed a
    version: one started a moment ago may still be registering or sending its first tree."""
    deadline = time.monotonic() + ONE_SHOT_WAIT_S
    while True:
        state = sync_state.load(daemon.path)
        if state is not None and state.workspace_id is not None and state.version > 0:
            return state.workspace_id
        if time.monotonic() >= deadline:
            return state.workspace_id if state is not None else None
        time.sleep(0.1)  # a poll of the state file, which the daemon writes as it commits


def workspace_base(path: str) -> tuple[str, str]:
    """The task repo and ref for the checkout at `path`: synced once now, then its head."""
    daemon, remote = _daemon(Path(path), None)
    try:
        try:
            daemon.acquire()
        except AlreadySyncing:
            workspace_id = _first_version_of(daemon)  # its daemon keeps the server current
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
