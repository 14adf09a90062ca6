"""The daemon at size, against the live API: a 1 GiB file streamed, 100,000 files in one tree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from blake3 import blake3

from orchestrator.config import OrchestratorSettings
from sync.blobs import BlobStore
from sync.chunks import pieces
from sync.daemon import BATCH_BLOBS
from sync.hashing import hash_bytes
from sync.remote import HttpRemote
from sync.state import load, state_file
from tests.live import LiveApi
from tests.sync.child import SyncProcess
from tests.sync.conftest import Daemons
from tests.sync.test_cli import cli_env
from tests.waiting import wait_until

GIB = 1 << 30
MIB = 1 << 20
BOUND_MIB = 300  # well under the file's size: the file is streamed, never held whole


def independent_hash(path: Path) -> str:
    """BLAKE3 of a file by another road than the daemon's (16 MiB reads, every core)."""
    hasher = blake3(max_threads=blake3.AUTO)
    with open(path, "rb") as file:
        while chunk := file.read(16 * MIB):
            hasher.update(chunk)
    return str(hasher.hexdigest())


def own_memory_mib(field: str) -> float:
    """VmRSS (now) or VmHWM (the peak since the last reset) of this process, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


def reset_own_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM starts again from VmRSS


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # one row: any store will do
def test_a_1_gib_file_is_streamed_both_ways_and_stored_whole(
    settings: OrchestratorSettings, live_api: LiveApi, checkout: Path, tmp_path: Path
) -> None:
    big = checkout / "big.bin"
    with open(big, "wb") as file:  # sparse, quick to make; every MiB marked, so a chunk lost,
        file.truncate(GIB)  # repeated or out of order changes the hash
        for n in range(GIB // MIB):
            file.seek(n * MIB + n % 4096)
            file.write(b"<MiB %06d>" % n)
    expected = independent_hash(big)
    with open(big, "rb") as file:  # it goes as chunks: the zeros' few, and the marked ones
        unique = {hash_bytes(piece): len(piece) for piece in pieces(file)}
    reset_own_peak()  # the live API serves from this process: its peak is ours
    server_before = own_memory_mib("VmRSS")

    daemon = SyncProcess(
        cli_env(settings, live_api, tmp_path), checkout, "--once", log=tmp_path / "sync.log"
    )
    try:
        ended = daemon.wait(timeout=110)
    finally:
        daemon.kill()

    assert ended.returncode == 0, daemon.output()
    sent = sum(unique.values())
    assert f"1 changed, 0 deleted, 1 blob(s) uploaded ({sent} bytes)" in daemon.output()
    assert ended.peak_rss_mib < BOUND_MIB, f"the daemon peaked at {ended.peak_rss_mib:.0f} MiB"
    assert own_memory_mib("VmHWM") - server_before < BOUND_MIB  # the server streamed it too
    blobs = BlobStore(settings.data_dir / "blobs")
    assert blobs.partials() == []
    stored = blobs.path(expected)
    assert stored.stat().st_size == GIB
    assert independent_hash(stored) == expected
    state = load(state_file(tmp_path / "sync-state", checkout))
    assert state is not None and state.version == 1 and state.pending.paths == []
    remote = HttpRemote(live_api.url, live_api.token)
    try:
        version, tree = remote.manifest(state.workspace_id or "")
    finally:
        remote.close()
    assert version == 1 and list(tree) == ["big.bin"]
    assert (tree["big.bin"].hash, tree["big.bin"].size) == (expected, GIB)


MANY = 100_000
# Distinct contents. Each is one upload request, and 100,000 of them would take minutes
# (the benchmark times that); the scan, the missing-blob question, the commit, the manifest
# and the state file still carry all 100,000 paths.
DISTINCT = 200
CHANGE = b"one change\n"


def content(n: int) -> bytes:
    return b"file %d of the big tree\n" % (n % DISTINCT)


def make_many(root: Path) -> list[str]:
    """MANY files in 100 folders (p0/q0 .. p9/q9), written as quickly as Python can."""
    for n in range(100):
        (root / f"p{n % 10}" / f"q{n // 10}").mkdir(parents=True)
    paths = [f"p{n % 10}/q{n // 10 % 10}/f{n:06d}.txt" for n in range(MANY)]
    for n, path in enumerate(paths):
        fd = os.open(root / path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, content(n))
        finally:
            os.close(fd)
    return paths


# The store's side of a large commit is the same code on both stores (test_api runs it on
# both); once here keeps this lean. A generous timeout: it is the suite's longest test.
@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_100_000_files_sync_then_one_change_is_one_small_commit(
    daemons: Daemons, checkout: Path
) -> None:
    paths = make_many(checkout)
    daemon = daemons.make(checkout, settle_s=0.01)
    daemons.start(daemon)
    wait_until(lambda: daemon.state.version == 1, timeout=240, what="the first sync")

    sent = daemons.transports[0]
    # Each content once, small files many to a request.
    assert sent.sent.count(("POST", "/api/blobs")) == -(-DISTINCT // BATCH_BLOBS)
    assert sent.count("PUT", "/api/blobs/") == 0
    # A round cut short by a slow answer on a loaded machine asks again which blobs are
    # missing: a legitimate retry, so only the outcome counts (each content sent once, above;
    # one commit of everything, version 1 below).
    assert sent.count("POST", "/api/blobs/missing") >= 1
    workspace_id, remote = daemon.state.workspace_id or "", daemons.remotes[0]
    version, tree = remote.manifest(workspace_id)
    files = {p: e for p, e in tree.items() if e.kind == "file"}
    assert version == 1 and len(files) == MANY and len(tree) == MANY + 110  # and 110 folders
    assert all(files[p].hash == hash_bytes(content(n)) for n, p in enumerate(paths))
    first = remote.workspace(workspace_id).version
    assert first is not None and first.files == MANY
    assert first.bytes == sum(len(content(n)) for n in range(MANY))

    sent.clear()
    (checkout / paths[4321]).write_bytes(CHANGE)
    wait_until(lambda: daemon.state.version == 2, what="the change to be committed")

    # An editor's save: one request, the content inside the commit; no question first.
    assert sent.sent == [("POST", f"/api/workspaces/{workspace_id}/versions")]
    assert sent.body_bytes[0] < 1_000  # the one file, not the tree
    second = remote.workspace(workspace_id).version
    assert second is not None and (second.number, second.changed) == (2, 1)
    assert second.files == MANY
    assert second.bytes == first.bytes - len(content(4321)) + len(CHANGE)
