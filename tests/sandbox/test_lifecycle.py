"""Trees, the pool, the local backend, the factory and reaping orphans of a crashed worker."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from sandbox import cgroups, create_sandbox, reap_orphans
from sandbox.bwrap import BwrapSandbox
from sandbox.config import SandboxConfig
from sandbox.errors import TreeNotFound
from sandbox.local import LocalSandbox
from sandbox.pool import PoolConfig, SandboxPool
from sandbox.trees import TreesConfig, TreeStore
from tests.sandbox.conftest import mounts_under
from tests.sandbox.test_bwrap import host_processes_with, unique_sleep
from tests.waiting import wait_until


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    repo = tmp_path / "remote"
    repo.mkdir()
    git("init", "-q", "-b", "main", cwd=repo)
    (repo / "app.py").write_text("print('v1')\n")
    git("add", ".", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "v1", cwd=repo)
    return repo


def test_checkout_is_made_once_even_when_asked_at_once(remote: Path, tmp_path: Path) -> None:
    store = TreeStore(TreesConfig(root=tmp_path / "trees"))
    sha = git("rev-parse", "HEAD", cwd=remote)
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(store.checkout(str(remote), sha)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(set(results)) == 1 and (results[0] / "app.py").read_text() == "print('v1')\n"
    assert list((tmp_path / "trees" / "tmp").iterdir()) == []
    (remote / "app.py").write_text("print('v2')\n")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "v2", cwd=remote)
    newer = store.checkout(str(remote), git("rev-parse", "HEAD", cwd=remote))  # fetched
    assert (newer / "app.py").read_text() == "print('v2')\n" and newer != results[0]
    with pytest.raises(TreeNotFound):
        store.checkout(str(remote), "0" * 40)


def test_snapshot_and_prune_within_a_budget(base: Path, tmp_path: Path) -> None:
    store = TreeStore(TreesConfig(root=tmp_path / "trees", budget=0))
    first = store.snapshot(base)
    assert store.snapshot(base) == first and (first / "README.md").exists()
    (base / "README.md").write_text("changed\n")
    second = store.snapshot(base)

    assert second != first
    assert store.prune(in_use={second}) == [first]
    assert not first.exists() and second.exists()


def test_pool_hands_out_warm_sandboxes(base: Path, config: SandboxConfig) -> None:
    pool = SandboxPool(config, PoolConfig(size=2))
    try:
        pool.warm(base)
        wait_until(lambda: pool.ready(base) == 2, what="two ready sandboxes")
        sbx = pool.acquire(base)
        assert sbx.exec("cat README.md").stdout == "# demo\nline two\n"
        sbx.close()
        wait_until(lambda: pool.ready(base) == 2, what="refilled")
    finally:
        pool.close()
    assert list(config.root.iterdir()) == []


def test_local_backend_warns_and_works(
    base: Path, config: SandboxConfig, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        sbx = create_sandbox(base, replace(config, backend="local"))
    assert isinstance(sbx, LocalSandbox)
    assert "UNISOLATED SANDBOX" in caplog.text
    result = sbx.exec("echo x >> README.md; rm docs/old.md; sleep 30", timeout=0.3)
    assert result.timed_out and not result.limits_enforced
    assert [(c.path, c.status) for c in sbx.changed_paths()] == [
        ("README.md", "modified"), ("docs/old.md", "deleted")
    ]  # fmt: skip
    assert "+x\n" in sbx.diff()
    sbx.close()
    assert not sbx.dir.exists()


def test_factory_names_the_valid_backends(base: Path, config: SandboxConfig) -> None:
    with pytest.raises(ValueError, match="valid: bwrap, local"):
        create_sandbox(base, replace(config, backend="docker"))
    sbx = create_sandbox(base, config)
    assert isinstance(sbx, BwrapSandbox)
    sbx.close()


def crashing_worker(base: Path, config: SandboxConfig, command: str, *, then: str = "") -> str:
    """A worker's program: a sandbox running `command` on a thread, `then` (Python), and an
    exit without any clean-up once a line arrives on its stdin."""
    return (
        "import os, sys, threading\n"
        "from pathlib import Path\n"
        "from sandbox.bwrap import BwrapSandbox\n"
        "from sandbox.config import LimitsConfig, SandboxConfig\n"
        f"limits = LimitsConfig(**{asdict(config.limits)!r})\n"
        f"s = BwrapSandbox(Path({str(base)!r}), SandboxConfig(root=Path({str(config.root)!r}), limits=limits))\n"
        f"threading.Thread(target=s.exec, args=({command!r},), daemon=True).start()\n"
        f"{then}"
        "sys.stdin.readline()\n"
        "os._exit(9)\n"
    )


def test_orphans_of_a_crashed_worker_are_reaped(base: Path, config: SandboxConfig) -> None:
    # A duration of its own: another run's orphan on this host must not pass for this one's.
    marker = unique_sleep(921)
    crash = crashing_worker(
        base, config, f"sleep {marker}", then="print(s.id, s._holder.pid, flush=True)\n"
    )
    alive = BwrapSandbox(base, config)
    worker = subprocess.Popen(
        [sys.executable, "-c", crash], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert worker.stdout is not None and worker.stdin is not None
    orphan_id, holder = worker.stdout.readline().split()
    wait_until(lambda: host_processes_with(marker), what="the orphan's command running")
    worker.stdin.write("\n")
    worker.stdin.close()
    worker.wait()
    worker.stdout.close()
    wait_until(lambda: not Path(f"/proc/{holder}").exists(), what="holder gone with its worker")
    inside: list[subprocess.Popen[bytes]] = []
    for directory in cgroups.orphan_dirs(orphan_id):  # made by a command, before the crash
        (directory / "inner").mkdir()
        inside.append(subprocess.Popen(["sleep", "300"]))
        (directory / "inner" / "cgroup.procs").write_text(str(inside[-1].pid))

    assert reap_orphans(config.root) == [orphan_id]
    assert [p.wait(timeout=30) for p in inside] == [-9] * len(inside)
    assert cgroups.orphan_dirs(orphan_id) == []
    assert not host_processes_with(marker)
    assert not (config.root / orphan_id).exists() and mounts_under(config.root) == []
    assert alive.exec("echo still").stdout == "still\n"
    alive.close()


def test_a_running_command_dies_with_its_worker(base: Path, config: SandboxConfig) -> None:
    """bwrap --die-with-parent, with the launchers' thread as the parent that dies."""
    marker = unique_sleep(922)  # in the command's argv only, never in the worker's:
    fraction = marker.split(".")[1]  # the worker's holds $((900 + 22)), which the shell sums
    crash = crashing_worker(base, config, f"sleep $((900 + 22)).{fraction}")
    worker = subprocess.Popen([sys.executable, "-c", crash], stdin=subprocess.PIPE, text=True)
    assert worker.stdin is not None
    wait_until(lambda: host_processes_with(marker), what="the command running")
    worker.stdin.write("\n")
    worker.stdin.close()
    worker.wait()

    wait_until(lambda: not host_processes_with(marker), what="the command gone with it")
    assert reap_orphans(config.root) != []  # its state is left for the reaper, as before
