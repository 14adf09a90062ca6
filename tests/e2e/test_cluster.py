"""The platform as a cluster, each host a network namespace: tasks from git and from a synced
workspace on either worker, a killed worker host, blobs through either API replica.

Hosts: `db` (a PostgreSQL cluster of the test's own, listening on the host's address),
`redis` (a redis-server of its own, likewise), `storage` (moto's S3 server), `git` (`git daemon`), `model` (the scripted
model server), `api-1` and `api-2` (uvicorn, each with its own data directory) and
`worker-a` and `worker-b` (`autan worker`, each with its own data directory, blob cache,
trees and sandboxes). The test process is the operator's laptop on the same bridge. The
workers' and one replica's wall clocks are off (libfaketime): worker-a's 90 s fast, worker-b's
90 s slow, api-2's 45 s fast; the database host keeps the true one. Skips only where this
machine cannot make network namespaces.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.states import TaskState
from sync.hashing import hash_bytes
from tests.cli.conftest import Autan, base_env, task_id_in
from tests.e2e.hosts import CLOCKS, WORKERS, Platform, start_platform
from tests.e2e.netns import Cluster, cannot_make_namespaces
from tests.sync.conftest import git_checkout
from tests.waiting import wait_until
from tests.workers import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]


def test_a_machine_that_cannot_make_namespaces_is_told_why() -> None:
    # Without the capability (in a user namespace of its own), the probe fails and says why:
    # the reason the cluster test skips with.
    probe = "from tests.e2e.netns import cannot_make_namespaces; print(cannot_make_namespaces())"
    said = subprocess.run(
        ["unshare", "--user", "--map-user=65534", "--", sys.executable, "-c", probe],
        cwd=ROOT, env=base_env(), capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert said.stdout.startswith("ip netns add autan-probe-"), said
    assert "Operation not permitted" in said.stdout
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    assert "autan-probe-" not in listed.stdout


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    if why := cannot_make_namespaces():
        pytest.skip(
            f"this machine cannot make network namespaces ({why}): the cluster test "
            "needs root or CAP_NET_ADMIN"
        )
    logs = tmp_path / "logs"
    logs.mkdir()
    net = Cluster(logs)
    try:
        made = Platform(net, tmp_path)
        try:
            start_platform(made)
            yield made
        finally:
            made.close()
    finally:
        net.close()  # what a half-made Platform could not


def ended(api: str, token: str, task_id: str) -> dict[str, Any]:
    """The task as `api` shows it, once it has ended."""

    def done() -> dict[str, Any] | None:
        shown: dict[str, Any] = httpx.get(
            f"{api}/api/tasks/{task_id}", headers={"Authorization": f"Bearer {token}"}, timeout=10
        ).json()
        return shown if TaskState(shown["state"]).terminal else None

    return wait_until(done, timeout=180, interval=0.2, what=f"task {task_id} to end")


def host_of(attempt: dict[str, Any]) -> str:
    """The host whose worker ran the attempt last (a worker is named HOST:PID)."""
    return str(attempt["worker"]).split(":")[0]


def kept_the_work(p: Platform, api: str, shown: dict[str, Any], runs: int) -> None:
    # No tests in the repository: nothing can verify the work, so kept as unverified.
    assert shown["state"] == "unverified", (shown, p.logs())
    assert "no tests found" in shown["reason"]
    for attempt in shown["attempts"]:
        assert (attempt["state"], attempt["runs"]) == ("succeeded", runs), attempt
        assert "+from a worker" in attempt["result"]["diff"]
        assert attempt["result"]["summary"] == "wrote cluster.txt"
        # The trajectory went to object storage: either replica serves it.
        trajectory = httpx.get(
            f"{api}/api/tasks/{shown['id']}/attempts/{attempt['number']}/trajectory",
            headers={"Authorization": f"Bearer {p.token}"},
            timeout=30,
        )
        assert trajectory.status_code == 200, trajectory.text
        assert "wrote cluster.txt" in trajectory.text


def test_the_cluster_shares_blobs_runs_tasks_on_either_worker_and_survives_a_lost_host(
    platform: Platform,
) -> None:
    p = platform
    # Each skewed host's processes read their own wall clock, not the database's.
    for host, off in CLOCKS.items():
        before, there, after = p.clock_of(host)
        assert before + off - 1 <= there <= after + off + 1, (host, off, before, there, after)
    api1, api2 = p.url("api-1", 8000), p.url("api-2", 8000)
    auth = {"Authorization": f"Bearer {p.token}"}
    content = b"one blob, two replicas\n"
    digest = hash_bytes(content)
    put = httpx.put(f"{api1}/api/blobs/{digest}", content=content, headers=auth)
    assert (put.status_code, put.json()) == (201, {"hash": digest, "size": 23, "created": True})
    got = httpx.get(f"{api2}/api/blobs/{digest}", headers=auth)
    assert (got.status_code, got.content) == (200, content)
    again = httpx.put(f"{api2}/api/blobs/{digest}", content=content, headers=auth)
    assert (again.status_code, again.json()["created"]) == (200, False)
    # Content under another hash is refused by either replica, and stored by neither.
    other = hash_bytes(b"something else")
    wrong = httpx.put(f"{api2}/api/blobs/{other}", content=content, headers=auth)
    assert wrong.status_code == 422, wrong.text
    assert httpx.get(f"{api1}/api/blobs/{other}", headers=auth).status_code == 404

    # Tasks from the git host and from a synced workspace, each on both workers.
    laptop = Autan(
        base_env(
            AUTAN_URL=api2, AUTAN_TOKEN=p.token, AUTAN_SYNC_STATE_DIR=str(p.tmp / "sync-state")
        )
    )
    ran = laptop("run", "write cluster.txt", "--repo", p.git_url, "--attempts", "2")
    assert ran.returncode == 0, ran.stderr
    from_git = ended(api1, p.token, task_id_in(ran.stdout))
    kept_the_work(p, api1, from_git, runs=1)
    assert sorted(host_of(a) for a in from_git["attempts"]) == list(WORKERS), p.logs()

    checkout = git_checkout(p.tmp / "laptop", {"a.txt": "committed\n"}, {"wip.txt": "mine\n"})
    laptop.env["AUTAN_URL"] = api1
    ran = laptop("run", "write cluster.txt", "--workspace", str(checkout), "--attempts", "2")
    assert ran.returncode == 0, ran.stderr
    from_workspace = ended(api2, p.token, task_id_in(ran.stdout))
    assert from_workspace["repo"].startswith("workspace:")
    kept_the_work(p, api2, from_workspace, runs=1)
    assert sorted(host_of(a) for a in from_workspace["attempts"]) == list(WORKERS), p.logs()

    # A worker host dies mid-attempt: the attempt runs again on the other and ends there.
    ran = laptop("run", "write cluster.txt", "--repo", p.git_url)
    assert ran.returncode == 0, ran.stderr
    task_id = task_id_in(ran.stdout)

    def running_on() -> str | None:
        shown = httpx.get(f"{api1}/api/tasks/{task_id}", headers=auth).json()
        attempt = shown["attempts"][0]
        return host_of(attempt) if attempt["state"] == "running" and attempt["worker"] else None

    victim = wait_until(running_on, timeout=60, interval=0.05, what="the attempt to start")
    sandboxes = p.tmp / victim / "sandboxes"
    # Killed once its sandbox is there, while it waits on the model.
    wait_until(
        lambda: any(sandboxes.glob("*/meta.json")),
        timeout=60,
        interval=0.05,
        what="the attempt's sandbox",
    )
    p.net.kill(victim)
    survivor = next(w for w in WORKERS if w != victim)
    after = ended(api2, p.token, task_id)
    kept_the_work(p, api2, after, runs=2)
    assert host_of(after["attempts"][0]) == survivor, p.logs()

    # The host comes back: its new worker removes the sandbox the killed one left (its
    # mounts included) before it takes work.
    left = list(sandboxes.iterdir())
    assert len(left) == 1, p.logs()
    p.start_worker(victim)
    wait_until(
        lambda: (
            f"removed 1 sandbox(es) left by a crashed worker: ['{left[0].name}']" in p.log(victim)
        ),
        timeout=90,
        what="the sandbox of the killed worker to be removed",
    )
    assert not left[0].exists() and p.mounts() == []
