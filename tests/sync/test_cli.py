"""`autan sync` and `autan run --workspace` for real: a child process killed mid-upload or just
after a commit, status."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from orchestrator.config import OrchestratorSettings
from sync.blobs import BlobStore
from sync.hashing import hash_bytes, hash_file
from sync.remote import HttpRemote
from sync.snapshots import materialise
from sync.state import load, state_file
from tests.cli.conftest import Autan, task_id_in
from tests.live import LiveApi
from tests.waiting import wait_until
from tests.workers import ROOT, settings_env

BIG = 192 << 20  # random: its chunks take long enough to send that it is killed sending them


def cli_env(settings: OrchestratorSettings, live_api: LiveApi, tmp_path: Path) -> dict[str, str]:
    env = settings_env(settings)
    env.update(
        AUTAN_URL=live_api.url, AUTAN_TOKEN=live_api.token, COLUMNS="200",
        AUTAN_SYNC_STATE_DIR=str(tmp_path / "sync-state"),
    )  # fmt: skip
    return env


def test_sync_once_status_and_a_task_from_the_workspace(
    settings: OrchestratorSettings, live_api: LiveApi, checkout: Path, tmp_path: Path
) -> None:
    autan = Autan(cli_env(settings, live_api, tmp_path))
    (checkout / "main.py").write_text("print('hi')\n")
    (checkout / ".gitignore").write_text("*.pyc\n")
    (checkout / "cache.pyc").write_bytes(b"\0")

    synced = autan("sync", str(checkout), "--once")
    assert synced.returncode == 0, synced.stderr
    assert "at version 1: 2 changed, 0 deleted, 2 blob(s) uploaded" in synced.stdout

    shown = autan("sync", "status")
    assert shown.returncode == 0
    assert str(checkout) in shown.stdout and "stopped" in shown.stdout
    assert "0 path(s)" in shown.stdout

    (checkout / "main.py").write_text("print('changed, not yet synced')\n")
    ran = autan("run", "make it better", "--workspace", str(checkout))
    assert ran.returncode == 0, ran.stderr
    task = live_api_task(live_api, task_id_in(ran.stdout))
    state = load(state_file(tmp_path / "sync-state", checkout))
    assert state is not None and state.version == 2  # the run synced the edit first
    assert task["repo"] == f"workspace:{state.workspace_id}@2"
    tree = materialise(
        BlobStore(settings.data_dir / "blobs"), task["ref"], settings.data_dir / "snapshots"
    )
    assert (tree / "main.py").read_text() == "print('changed, not yet synced')\n"
    assert sorted(p.name for p in tree.iterdir()) == [".gitignore", "main.py"]

    both = autan("run", "x", "--workspace", str(checkout), "--repo", str(checkout))
    assert both.returncode == 2 and "one of them" in both.stderr


def live_api_task(live_api: LiveApi, task_id: str) -> dict[str, str]:
    import httpx

    response = httpx.get(
        f"{live_api.url}/api/tasks/{task_id}",
        headers={"Authorization": f"Bearer {live_api.token}"},
    )
    response.raise_for_status()
    data: dict[str, str] = response.json()
    return data


def test_killed_mid_upload_leaves_no_partial_file_and_resumes(
    settings: OrchestratorSettings, live_api: LiveApi, checkout: Path, tmp_path: Path
) -> None:
    env = cli_env(settings, live_api, tmp_path)
    (checkout / "small.txt").write_text("small\n")
    big = checkout / "big.bin"
    with open(big, "wb") as file:
        for _ in range(BIG >> 20):
            file.write(os.urandom(1 << 20))
    big_hash, _ = hash_file(big)
    blobs = BlobStore(settings.data_dir / "blobs")

    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "sync", str(checkout)],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_until(
            lambda: blobs.partials() or any(blobs.objects.rglob("*/*")),
            timeout=60, what="the big file's chunks to be under way",
        )  # fmt: skip
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    assert not blobs.has(big_hash)
    wait_until(lambda: blobs.partials() == [], what="the server to drop the cut-off upload")
    for blob in blobs.objects.rglob("*"):
        if blob.is_file():
            assert hash_bytes(blob.read_bytes()) == blob.parent.name + blob.name
    state_path = state_file(tmp_path / "sync-state", checkout)
    before = load(state_path)  # if written at all, it is whole
    assert before is None or before.version == 0
    assert not [p for p in state_path.parent.iterdir() if p.name.endswith(".tmp")]

    again = Autan(env)("sync", str(checkout), "--once")
    assert again.returncode == 0, again.stderr
    assert "at version 1: 2 changed" in again.stdout
    remote = HttpRemote(live_api.url, live_api.token)
    try:
        workspace_id = (load(state_path) or before).workspace_id  # type: ignore[union-attr]
        tree = remote.manifest(workspace_id or "")[1]
    finally:
        remote.close()
    assert tree["big.bin"].hash == big_hash and tree["big.bin"].size == BIG
    assert blobs.has(big_hash) and blobs.path(big_hash).stat().st_size == BIG


def test_killed_just_after_a_commit_then_undone_the_server_converges(
    settings: OrchestratorSettings, live_api: LiveApi, checkout: Path, tmp_path: Path
) -> None:
    env = cli_env(settings, live_api, tmp_path)
    (checkout / "a.txt").write_text("version one\n")
    state_path = state_file(tmp_path / "sync-state", checkout)
    remote = HttpRemote(live_api.url, live_api.token)
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "sync", str(checkout)],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        state = wait_until(
            lambda: (found := load(state_path)) and found.version == 1 and found,
            timeout=60, what="the first sync",
        )  # fmt: skip
        workspace_id = state.workspace_id or ""
        (checkout / "a.txt").write_text("version two\n")
        wait_until(lambda: remote.manifest(workspace_id)[0] == 2, what="version 2 committed")
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # its state is written a second after a save
        process.wait(timeout=10)
    (checkout / "a.txt").write_text("version one\n")  # the developer undoes the change

    again = Autan(env)("sync", str(checkout), "--once")

    try:
        assert again.returncode == 0, again.stderr
        assert "at version 3: 1 changed" in again.stdout, again.stdout
        head, tree = remote.manifest(workspace_id)
        assert head == 3 and tree["a.txt"].hash == hash_bytes(b"version one\n")
        assert (load(state_path) or state).version == 3
    finally:
        remote.close()
