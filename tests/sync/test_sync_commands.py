"""The commands people use: `autan pull --apply inplace` after a branch-mode daemon, `autan sync
status` at any width and as JSON, `autan sync forget`, and one server under two spellings."""

from __future__ import annotations

import fcntl
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from orchestrator import store
from orchestrator.config import OrchestratorSettings
from orchestrator.models import utcnow
from orchestrator.services import Services
from sync.follow import TaskLine, line_path, lines_dir, load_line
from sync.hashing import hash_bytes
from sync.state import load, state_file
from tests.cli.conftest import Autan, task_id_in
from tests.live import LiveApi
from tests.sync.child import SyncProcess
from tests.sync.conftest import Daemons
from tests.sync.test_api import A, B, file
from tests.sync.test_cli import cli_env
from tests.waiting import wait_until


@dataclass
class Synced:
    autan: Autan
    task_id: str
    workspace_id: str


@pytest.fixture
def synced(
    settings: OrchestratorSettings,
    live_api: LiveApi,
    services: Services,
    checkout: Path,
    tmp_path: Path,
) -> Synced:
    """The checkout synced, a task started from it, and one change set of its agent (a.txt
    edited, old.txt deleted) on the server, as a worker records it."""
    autan = Autan(cli_env(settings, live_api, tmp_path))
    (checkout / "a.txt").write_bytes(A)
    (checkout / "old.txt").write_bytes(A)
    assert autan("sync", str(checkout), "--once").returncode == 0
    ran = autan("run", "tidy a.txt", "--workspace", str(checkout))
    assert ran.returncode == 0, ran.stderr
    task_id = task_id_in(ran.stdout)
    headers = {"Authorization": f"Bearer {live_api.token}"}
    put = httpx.put(f"{live_api.url}/api/blobs/{hash_bytes(B)}", content=B, headers=headers)
    assert put.status_code in (200, 201)
    change = {"attempt": 1, "changes": [file("a.txt", B)], "deleted": ["old.txt"],
              "bases": {"a.txt": file("a.txt", A), "old.txt": file("old.txt", A)}}  # fmt: skip
    with services.sessions.begin() as session:
        store.add_event(session, task_id=task_id, kind="sync.changed", data=change, now=utcnow())
    state = load(state_file(tmp_path / "sync-state", checkout))
    assert state is not None and state.workspace_id is not None
    return Synced(autan, task_id, state.workspace_id)


def test_pull_in_place_after_a_branch_mode_daemon_followed_the_task(
    synced: Synced, checkout: Path, tmp_path: Path
) -> None:
    autan, task_id, workspace_id = synced.autan, synced.task_id, synced.workspace_id
    lines = lines_dir(state_file(tmp_path / "sync-state", checkout))
    lines.mkdir(parents=True)
    branch = TaskLine(task_id=task_id, workspace_id=workspace_id, version=1, mode="branch",
                      seq=1, followed=1, branch=f"autan/{task_id}")  # fmt: skip
    line_path(lines, task_id).write_text(branch.model_dump_json())  # as its daemon left it

    pulled = autan("pull", task_id, "--path", str(checkout), "--apply", "inplace")

    assert pulled.returncode == 0, pulled.stderr
    assert f"task {task_id}: its edits are on {checkout}" in pulled.stdout
    assert (checkout / "a.txt").read_bytes() == B and not (checkout / "old.txt").exists()
    assert load_line(line_path(lines, task_id)) == branch  # the daemon's line is its own
    inplace = load_line(line_path(lines, task_id, "inplace"))
    assert inplace is not None and inplace.mode == "inplace" and inplace.applied
    again = autan("pull", task_id, "--path", str(checkout), "--apply", "inplace")
    assert again.returncode == 0 and (checkout / "a.txt").read_bytes() == B

    shown = autan("sync", "status", "--json")
    assert shown.returncode == 0, shown.stderr
    [listed] = json.loads(shown.stdout)
    tasks = sorted((t["mode"], t["edits_land_on"]) for t in listed["tasks"])
    assert tasks == [("branch", f"autan/{task_id}"), ("inplace", "the working tree")]


def test_pull_prints_each_conflict_as_a_path(synced: Synced, checkout: Path) -> None:
    autan, task_id = synced.autan, synced.task_id
    (checkout / "a.txt").write_text("mine, saved meanwhile\n")

    pulled = autan("pull", task_id, "--path", str(checkout), "--apply", "inplace")

    assert pulled.returncode == 0, pulled.stderr
    assert (checkout / "a.txt").read_text() == "mine, saved meanwhile\n"
    conflicts = [line for line in pulled.stdout.splitlines() if line.startswith("conflict")]
    assert len(conflicts) == 1 and conflicts[0].startswith("conflict: a.txt (theirs: a.txt.autan-")
    assert "[" not in conflicts[0] and (checkout / conflicts[0].split()[-1][:-1]).read_bytes() == B


def test_status_fits_any_width_and_forget_drops_a_checkout(
    settings: OrchestratorSettings, live_api: LiveApi, tmp_path: Path
) -> None:
    autan = Autan(cli_env(settings, live_api, tmp_path))
    deep = tmp_path / ("a-checkout-with-a-long-name-" * 4) / "and-deeper-still"
    deep.mkdir(parents=True)
    (deep / "x.txt").write_text("x\n")
    other = tmp_path / "other"
    other.mkdir()
    (other / "y.txt").write_text("y\n")
    for checkout in (deep, other):
        assert autan("sync", str(checkout), "--once").returncode == 0

    narrow = autan("sync", "status", COLUMNS="40")
    assert narrow.returncode == 0
    assert str(deep) in narrow.stdout.splitlines()  # whole, on its own line, never cut
    assert "  version    1 (last change" in narrow.stdout and "…" not in narrow.stdout
    listed = json.loads(autan("sync", "status", "--json").stdout)
    assert sorted(c["root"] for c in listed) == sorted([str(deep), str(other)])
    assert {c["daemon"] for c in listed} == {"stopped"} and {c["version"] for c in listed} == {1}
    assert all("entries" not in c for c in listed)

    forgot = autan("sync", "forget", str(deep))
    assert forgot.returncode == 0 and f"forgot {deep}" in forgot.stdout
    assert [c["root"] for c in json.loads(autan("sync", "status", "--json").stdout)] == [str(other)]
    assert not state_file(tmp_path / "sync-state", deep).exists()
    assert not lines_dir(state_file(tmp_path / "sync-state", deep)).exists()

    unknown = autan("sync", "forget", str(deep))
    assert unknown.returncode != 0 and "is not a synced checkout" in unknown.stderr
    assert str(other) in unknown.stderr
    bare = autan("sync", "forget")
    assert bare.returncode != 0 and "autan sync forget PATH" in bare.stderr
    two = autan("sync", str(deep), str(other))
    assert two.returncode != 0 and "one checkout at a time" in two.stderr


def test_forget_refuses_a_checkout_whose_daemon_runs(
    settings: OrchestratorSettings, live_api: LiveApi, checkout: Path, tmp_path: Path
) -> None:
    autan = Autan(cli_env(settings, live_api, tmp_path))
    assert autan("sync", str(checkout), "--once").returncode == 0
    path = state_file(tmp_path / "sync-state", checkout)
    fd = os.open(path.with_suffix(".lock"), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a running daemon holds it
        refused = autan("sync", "forget", str(checkout))
    finally:
        os.close(fd)
    assert refused.returncode != 0 and "stop it first" in refused.stderr
    assert path.exists()


def test_one_server_under_two_spellings_is_not_synced_again(
    daemons: Daemons, checkout: Path
) -> None:
    (checkout / "a.txt").write_text("a\n")
    first = daemons.make(checkout)
    assert first.sync().version == 1
    first.save()
    workspace_id = first.state.workspace_id

    again = daemons.make(checkout)  # the same server, its URL spelled another way
    again.server = daemons.url.replace("127.0.0.1", "localhost") + "/"
    sent = daemons.transports[-1]
    report = again.sync()

    assert report.version == 1 and report.changed == [] and report.uploaded == 0
    assert again.state.workspace_id == workspace_id and again.state.server == again.server
    assert [m for m, _ in sent.sent] == ["GET", "GET"]  # the workspace, then its head
    assert sent.sent[0][1] == f"/api/workspaces/{workspace_id}"


def test_a_server_that_does_not_hold_the_workspace_gets_the_checkout_anew(
    daemons: Daemons, checkout: Path
) -> None:
    (checkout / "a.txt").write_text("a\n")
    first = daemons.make(checkout)
    first.sync()
    registered = first.state.workspace_id
    first.state.workspace_id = "0" * 32  # as if synced to another server, which made this id
    first.save()

    other = daemons.make(checkout)
    other.server = "http://another.example"
    sent = daemons.transports[-1]
    report = other.sync()

    # Registered again by its key: this server already holds the checkout, so nothing is sent.
    assert sent.sent[:2] == [("GET", f"/api/workspaces/{'0' * 32}"), ("POST", "/api/workspaces")]
    assert other.state.workspace_id == registered and report.version == 1
    assert other.state.server == "http://another.example" and report.uploaded == 0


def test_ctrl_c_stops_the_daemon_at_once_while_it_follows_a_task(
    settings: OrchestratorSettings, live_api: LiveApi, checkout: Path, tmp_path: Path
) -> None:
    env = cli_env(settings, live_api, tmp_path)
    (checkout / "a.txt").write_text("a\n")
    daemon = SyncProcess(env, checkout, log=tmp_path / "sync.log")
    try:
        wait_until(lambda: "version 1:" in daemon.output(), timeout=60, what="the first sync")
        ran = Autan(env)("run", "tidy a.txt", "--workspace", str(checkout))
        assert ran.returncode == 0, ran.stderr
        task_id = task_id_in(ran.stdout)
        wait_until(
            lambda: f"following task {task_id}" in daemon.output(), timeout=30,
            what="the daemon to follow the task",
        )  # fmt: skip
        # The follower now waits in a long-poll the server holds for 25 s; the task never
        # ends (no worker). Ctrl-C must not wait for it.
        daemon.reaper.send_signal(signal.SIGINT)
        ended = daemon.wait(timeout=10)
    finally:
        daemon.kill()
    assert ended.returncode == 0, daemon.output()
    assert "HTTP Request" not in daemon.output()  # httpx's line per request is silenced
