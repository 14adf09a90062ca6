"""`autan sync status` (as text at any width, or JSON) and `autan sync forget PATH`."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from cli import render
from cli.config import load
from cli.errors import CliError
from sync import follow
from sync import state as sync_state
from sync.config import SyncSettings
from sync.follow import TaskLine
from sync.state import SyncState


def _running(state_path: Path) -> bool:
    try:
        fd = os.open(state_path.with_suffix(".lock"), os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _conflicts(line: TaskLine) -> list[str]:
    return [
        f"{c.path} (theirs: {c.copy_path or 'kept in the sandbox'})" for c in line.conflicts
    ] + [
        f"{c.path} in the sandbox (yours: {c.copy_path or 'deletion not taken'})"
        for c in line.in_sandbox
    ]


def _task(line: TaskLine) -> dict[str, Any]:
    where = (line.branch or "-") if line.mode == "branch" else "the working tree"
    state = "error: " + line.error if line.error else ("done" if line.done else "following")
    return {
        "task_id": line.task_id,
        "mode": line.mode,
        "edits_land_on": where,
        "attempt": line.followed,
        "state": state,
        "conflicts": _conflicts(line),
    }


def _checkout(state: SyncState, state_dir: Path) -> dict[str, Any]:
    path = sync_state.state_file(state_dir, Path(state.root))
    lines = follow.load_lines(follow.lines_dir(path))
    return sync_state.summary(state) | {
        "daemon": "running" if _running(path) else "stopped",
        "tasks": [_task(line) for line in lines],
    }


def status(as_json: bool = False) -> None:
    """Each synced checkout: its workspace, version, last change, what is pending, its tasks."""
    state_dir = load(SyncSettings).state_dir
    checkouts = [_checkout(s, state_dir) for s in sync_state.load_all(state_dir)]
    out = render.console()
    if as_json:
        out.print(json.dumps(checkouts, indent=2), markup=False, soft_wrap=True, highlight=False)
        return
    if not checkouts:
        out.print("no checkouts synced yet: run `autan sync PATH`")
        return
    now = datetime.now(UTC)
    for n, checkout in enumerate(checkouts):
        if n:
            out.print()
        _show(out, checkout, now)


def _show(out: Console, checkout: dict[str, Any], now: datetime) -> None:
    """One checkout as lines that wrap but are never cut, whatever the terminal's width."""

    def line(text: str) -> None:
        out.print(text, markup=False, soft_wrap=True, highlight=False)

    pending = checkout["pending"]
    last = checkout["last_change"]
    changed = f"{render.age(datetime.fromisoformat(last), now)} ago" if last else "never"
    line(checkout["root"])
    line(f"  workspace  {checkout['workspace_id'] or '-'} on {checkout['server']}")
    line(f"  version    {checkout['version']} (last change {changed})")
    text = f"{len(pending['paths'])} path(s)"
    if pending["error"]:
        text += f": {pending['error']}"
    line(f"  pending    {text}")
    for refused in checkout["refused"]:
        line(f"  refused    symlink {refused} (points outside the checkout)")
    line(f"  daemon     {checkout['daemon']}")
    for task in checkout["tasks"]:
        attempt = f", attempt {task['attempt']}" if task["attempt"] else ""
        line(f"  task {task['task_id']}: {task['state']}{attempt}; edits land on "
             f"{task['edits_land_on']}")  # fmt: skip
        for conflict in task["conflicts"]:
            line(f"    conflict {conflict}")


def forget(path: str) -> None:
    """Drop a checkout from this machine's list: its state file and its tasks' lines. The
    workspace stays on the server; `autan sync PATH` registers the checkout again."""
    state_dir = load(SyncSettings).state_dir
    root = Path(path).expanduser().resolve()
    state_path = sync_state.state_file(state_dir, root)
    if sync_state.load(state_path) is None:
        known = ", ".join(s.root for s in sync_state.load_all(state_dir)) or "none"
        raise CliError(f"{root} is not a synced checkout (synced: {known})")
    if _running(state_path):
        raise CliError(f"{root} is being synced by a running `autan sync`: stop it first")
    shutil.rmtree(follow.lines_dir(state_path), ignore_errors=True)
    state_path.unlink()
    state_path.with_suffix(".lock").unlink(missing_ok=True)
    render.console().print(f"forgot {root}", markup=False, soft_wrap=True)
