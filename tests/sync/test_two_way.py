"""Two-way sync with the whole platform: `autan sync` on a checkout, a task from the workspace
run by a real worker in a bubblewrap sandbox, a local save seen by the agent, and the agent's
edits on branch `autan/<task>` in a worktree beside the checkout, the checkout untouched."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.config import OrchestratorSettings
from serving.script import Script
from serving.scripted import ScriptedServer, start_in_thread
from tests.agent.bugs import git
from tests.agent.workers import AgentWorkers, runner_env
from tests.cli.conftest import Autan, task_id_in
from tests.live import LiveApi
from tests.sync.conftest import git_checkout
from tests.sync.test_cli import cli_env
from tests.waiting import wait_until
from tests.workers import ROOT

VENV_BIN = str(Path(sys.executable).parent)
WAIT_FOR_LOCAL = (
    "for i in $(seq 1 600); do [ -f local.txt ] && break; sleep 0.05; done; "
    "cat local.txt > seen.txt"
)


LAST = {
    "finish": ("finish", {"summary": "saw the local save, wrote agent.txt"}),
    "unfinished": ("bash", {"command": "true"}),  # a third step, and no finish: partial work
}


def agent_script(last: str = "finish") -> Script:
    """Waits for the developer's save to show up, copies it, writes a file of its own, then
    finishes (or, `unfinished`, runs one more command and so spends a 3-step budget)."""
    calls = [
        ("bash", {"command": WAIT_FOR_LOCAL}),
        ("write_file", {"path": "agent.txt", "content": "written by the agent\n"}),
        LAST[last],
    ]
    return Script.model_validate(
        {"turns": [{"tool_calls": [{"name": n, "arguments": a}]} for n, a in calls]}
    )


@pytest.fixture(params=["finish"])
def model(request: pytest.FixtureRequest) -> Iterator[ScriptedServer]:
    server = start_in_thread(agent_script(request.param))
    yield server
    server.stop()


@pytest.fixture
def agent_workers(settings: OrchestratorSettings, tmp_path: Path) -> Iterator[AgentWorkers]:
    logs = tmp_path / "agent-worker-logs"
    logs.mkdir()
    env = runner_env(tmp_path, VENV_BIN) | {"AUTAN_SANDBOX_BACKEND": "bwrap"}
    pool = AgentWorkers(settings, logs, env)
    yield pool
    pool.stop_all()


def branch_file(worktree: Path, branch: str, path: str) -> str | None:
    shown = subprocess.run(
        ["git", "-C", str(worktree), "show", f"{branch}:{path}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return shown.stdout if shown.returncode == 0 else None


def test_a_local_save_reaches_the_agent_and_its_edits_land_on_a_branch(
    settings: OrchestratorSettings,
    live_api: LiveApi,
    agent_workers: AgentWorkers,
    model: ScriptedServer,
    tmp_path: Path,
) -> None:
    checkout = git_checkout(
        tmp_path / "project", {"a.txt": "committed\n"}, {"wip.txt": "uncommitted work\n"}
    )
    env = cli_env(settings, live_api, tmp_path)
    autan = Autan(env)
    with sync_daemon(checkout, env, tmp_path):
        agent_workers.start(model_url=model.url)
        ran = autan("run", "use what I save", "--workspace", str(checkout))
        assert ran.returncode == 0, ran.stderr
        task = task_id_in(ran.stdout)
        (checkout / "a.txt").rename(checkout / "moved.txt")  # before the save the agent waits on
        (checkout / "local.txt").write_text("saved locally\n")

        worktree = tmp_path / "project.autan" / task
        branch = f"autan/{task}"
        wait_until(
            lambda: worktree.is_dir() and branch_file(worktree, branch, "agent.txt") is not None,
            timeout=120, what="the agent's edit on its branch",
        )  # fmt: skip
        assert branch_file(worktree, branch, "agent.txt") == "written by the agent\n"
        assert branch_file(worktree, branch, "seen.txt") == "saved locally\n"
        assert branch_file(worktree, branch, "wip.txt") == "uncommitted work\n"

        headers = {"Authorization": f"Bearer {live_api.token}"}
        shown = task_ended(live_api.url, task, headers)
        # The checkout has no tests, so nothing can verify the agent's work: kept, not succeeded.
        assert shown["state"] == "unverified", shown
        assert "no tests found" in str(shown["reason"]), shown
        # The task's diff is the agent's work only; the developer's saves are shown apart.
        diff = httpx.get(f"{live_api.url}/api/tasks/{task}/diff", headers=headers).text
        assert "b/agent.txt" in diff and "b/seen.txt" in diff, diff
        assert "local.txt" not in diff and "moved.txt" not in diff and "a/a.txt" not in diff, diff
        apart = from_checkout(live_api.url, task, headers)
        assert apart["paths"] == ["a.txt", "local.txt", "moved.txt"], apart
        assert "rename from a.txt\nrename to moved.txt\n" in apart["diff"], apart
        assert "+saved locally\n" in apart["diff"] and "agent.txt" not in apart["diff"], apart
        log = git_log(worktree, branch)
        assert log[-1] == "start" and "starts from workspace version 1" in log[-2], log
        assert all("from attempt 1" in message for message in log[:-2]) and len(log) >= 3, log
        # The checkout itself is untouched: no agent file, the same status as before.
        assert not (checkout / "agent.txt").exists() and not (checkout / "seen.txt").exists()
        status = git(checkout, "status", "--porcelain").splitlines()
        assert sorted(status) == [" D a.txt", "?? local.txt", "?? moved.txt", "?? wip.txt"]
        shown = autan("sync", "status")
        assert task in shown.stdout and branch in shown.stdout, shown.stdout


@contextmanager
def sync_daemon(checkout: Path, env: dict[str, str], tmp_path: Path) -> Iterator[None]:
    """`autan sync CHECKOUT` as a child process, writing to a file, not a pipe: a failure in
    the block shows what it said. Stopped with SIGTERM, it must exit 0."""
    said = tmp_path / "daemon.log"
    with said.open("wb") as out:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "cli", "sync", str(checkout)], cwd=ROOT, env=env,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        yield
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nthe daemon said:\n{said.read_text()}") from exc
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)
    assert daemon.returncode == 0, said.read_text()


@pytest.mark.parametrize("model", ["unfinished"], indirect=True)
def test_partial_work_left_by_a_live_attempt_holds_the_agents_edits_only(
    settings: OrchestratorSettings,
    live_api: LiveApi,
    agent_workers: AgentWorkers,
    model: ScriptedServer,
    tmp_path: Path,
) -> None:
    checkout = git_checkout(tmp_path / "project", {"a.txt": "committed\n"}, {})
    env = cli_env(settings, live_api, tmp_path)
    autan = Autan(env)
    agent_workers.runner_env.update({"AUTAN_AGENT__MAX_STEPS": "3"})
    headers = {"Authorization": f"Bearer {live_api.token}"}
    with sync_daemon(checkout, env, tmp_path):
        agent_workers.start(model_url=model.url)
        ran = autan("run", "use what I save", "--workspace", str(checkout))
        assert ran.returncode == 0, ran.stderr
        task = task_id_in(ran.stdout)
        (checkout / "local.txt").write_text("saved locally\n")
        shown = task_ended(live_api.url, task, headers)
        assert shown["state"] == "failed" and "steps" in str(shown["reason"]), shown
        got = httpx.get(f"{live_api.url}/api/tasks/{task}/diff", headers=headers)
        assert got.status_code == 200 and got.headers["X-Autan-Partial"] == "true", got.text
        assert "b/agent.txt" in got.text and "b/seen.txt" in got.text, got.text
        assert "local.txt" not in got.text, got.text
        apart = from_checkout(live_api.url, task, headers)
        assert apart["paths"] == ["local.txt"] and "+saved locally\n" in apart["diff"], apart


def git_log(worktree: Path, branch: str) -> list[str]:
    out = git(worktree, "log", "--format=%s", branch)
    return [line for line in out.splitlines() if line]


def task_ended(url: str, task: str, headers: dict[str, str]) -> dict[str, Any]:
    """The task as the API shows it, once it has ended."""

    def ended() -> dict[str, Any] | None:
        shown: dict[str, Any] = httpx.get(f"{url}/api/tasks/{task}", headers=headers).json()
        return shown if shown["state"] not in ("queued", "running") else None

    return wait_until(ended, timeout=120, what="the task to end")


def from_checkout(url: str, task: str, headers: dict[str, str]) -> dict[str, Any]:
    """The data of the task's one `sync.from_checkout` event: the changes from the checkout."""
    stored = httpx.get(f"{url}/api/tasks/{task}/events?follow=false", headers=headers)
    assert stored.status_code == 200, stored.text
    found = [
        json.loads(frame.split("\ndata: ", 1)[1])["data"]
        for frame in stored.text.split("\n\n")
        if "\nevent: sync.from_checkout\n" in frame
    ]
    assert len(found) == 1, stored.text
    data: dict[str, Any] = found[0]
    return data
