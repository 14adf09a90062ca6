"""The daemon against the live API: only missing blobs, restarts, watching, an absent server."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from orchestrator.services import Services
from sync.blobs import BlobStore
from sync.errors import AccessDenied, AlreadySyncing, ServerRefused, ServerUnreachable
from sync.hashing import hash_bytes
from sync.manifests import Entry
from sync.remote import HttpRemote
from sync.scan import Scanner
from sync.state import SyncState, load, state_file
from tests.live import free_port
from tests.sync.conftest import CountingTransport, Daemons, Server
from tests.waiting import wait_until

A, B = b"alpha\n" * 100, b"beta\n" * 100

# watchdog 7 warns from its inotify thread when `mkdir -p` races its recursive watch set-up
# (the watch is re-added, nothing is lost); as an error it would end that thread.
pytestmark = pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")


def server_tree(url: str, token: str, workspace_id: str) -> dict[str, Entry]:
    remote = HttpRemote(url, token)
    try:
        return remote.manifest(workspace_id)[1]
    finally:
        remote.close()


def test_a_watcher_that_dies_is_replaced_and_nothing_is_missed(
    daemons: Daemons, checkout: Path
) -> None:
    (checkout / "first.txt").write_text("first")
    daemon = daemons.make(checkout, settle_s=0.01)
    daemons.start(daemon)
    wait_until(lambda: daemon.state.version >= 1 and daemon.observer, what="the first sync")
    dead = daemon.observer
    assert dead is not None
    dead.stop()  # as if its thread had crashed
    dead.join(timeout=10)
    (checkout / "while-blind.txt").write_text("written while no one watched")
    workspace_id = daemon.state.workspace_id or ""
    wait_until(
        lambda: "while-blind.txt" in server_tree(daemons.url, daemons.token, workspace_id),
        what="the change made while the watcher was dead",
    )
    assert daemon.observer is not dead and daemon.observer.is_alive()


class RefusesACommit(CountingTransport):
    """The real transport, but the server's answer to the next commit is a 422."""

    refuse = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.refuse and request.url.path.endswith("/versions"):
            self.refuse = False
            return httpx.Response(422, json={"detail": "refused (a fault the test injects)"})
        return super().handle_request(request)


def test_a_refused_commit_does_not_stop_the_daemon(daemons: Daemons, checkout: Path) -> None:
    (checkout / "first.txt").write_text("first")
    daemon = daemons.make(checkout, settle_s=0.01, retry_s=0.05, retry_max_s=0.2)
    transport = RefusesACommit()
    daemon.remote = HttpRemote(daemons.url, daemons.token, transport=transport)
    daemons.remotes.append(daemon.remote)  # type: ignore[arg-type]
    daemons.start(daemon)
    wait_until(lambda: daemon.state.version >= 1, what="the first sync")
    transport.refuse = True
    (checkout / "second.txt").write_text("second")
    workspace_id = daemon.state.workspace_id or ""
    wait_until(
        lambda: "second.txt" in server_tree(daemons.url, daemons.token, workspace_id),
        what="the change sent again after the refusal",
    )
    assert not transport.refuse  # it was refused once, and sent again
    # The server stores the version before the daemon reads its answer and clears the error.
    wait_until(lambda: daemon.state.pending.error is None, what="the refusal cleared")


def test_first_sync_sends_only_missing_blobs_and_a_restart_sends_nothing(
    daemons: Daemons, checkout: Path, services: Services
) -> None:
    BlobStore(services.settings.data_dir / "blobs").put_bytes(A)  # the server has A already
    (checkout / "a.txt").write_bytes(A)
    (checkout / "b.txt").write_bytes(B)
    (checkout / "same-as-b.txt").write_bytes(B)
    (checkout / "run.sh").write_bytes(b"#!/bin/sh\n")
    (checkout / "run.sh").chmod(0o755)
    (checkout / "empty").mkdir()
    (checkout / "link").symlink_to("a.txt")

    daemon = daemons.make(checkout)
    report = daemon.sync()

    sent = daemons.transports[0]
    assert sent.sent.count(("POST", "/api/blobs")) == 1  # one batch: B once, run.sh; never A
    assert sent.count("PUT", "/api/blobs/") == 0
    assert sent.count("POST", "/api/blobs/missing") == 1
    assert sent.count("POST", "/api/workspaces") == 2  # register, one commit
    assert (report.version, report.uploaded) == (1, 2)
    workspace_id = daemon.state.workspace_id or ""
    tree = server_tree(daemons.url, daemons.token, workspace_id)
    assert sorted(tree) == ["a.txt", "b.txt", "empty", "link", "run.sh", "same-as-b.txt"]
    assert tree["b.txt"].hash == hash_bytes(B) and tree["run.sh"].mode == 0o755
    assert tree["link"].target == "a.txt" and tree["empty"].kind == "dir"

    restarted = daemons.make(checkout)
    assert restarted.sync().version == 1
    # Nothing unchanged is sent, or even asked about: the server's head is read, once.
    assert daemons.transports[1].sent == [("GET", f"/api/workspaces/{workspace_id}/manifest")]

    (checkout / "b.txt").write_bytes(b"changed")
    restarted.sync()
    assert daemons.transports[1].sent.count(("POST", "/api/blobs")) == 1
    assert server_tree(daemons.url, daemons.token, workspace_id)["b.txt"].size == 7


def test_the_watcher_sends_each_change(daemons: Daemons, checkout: Path) -> None:
    (checkout / "keep.txt").write_text("keep")
    daemon = daemons.make(checkout, settle_s=0.01)
    daemons.start(daemon)
    wait_until(lambda: daemon.state.version >= 1, what="the first sync")
    workspace_id = daemon.state.workspace_id or ""

    def tree() -> dict[str, Entry]:
        return server_tree(daemons.url, daemons.token, workspace_id)

    (checkout / "new.txt").write_text("new")
    wait_until(lambda: "new.txt" in tree(), what="a new file on the server")
    (checkout / "new.txt").rename(checkout / "renamed.txt")
    wait_until(lambda: "renamed.txt" in tree() and "new.txt" not in tree(), what="a rename")
    (checkout / "renamed.txt").chmod(0o755)
    wait_until(lambda: tree()["renamed.txt"].mode == 0o755, what="the executable bit")
    (checkout / "dir" / "sub").mkdir(parents=True)
    wait_until(lambda: "dir/sub" in tree(), what="an empty folder")
    (checkout / "outside").symlink_to("/etc/passwd")
    (checkout / "inside").symlink_to("keep.txt")
    wait_until(lambda: "inside" in tree(), what="a symlink inside the tree")
    assert "outside" not in tree() and daemon.state.refused == ["outside"]
    (checkout / "renamed.txt").unlink()
    wait_until(lambda: "renamed.txt" not in tree(), what="a deletion")
    (checkout / "dir" / "sub").rmdir()
    (checkout / "dir").rmdir()
    wait_until(lambda: "dir" not in tree() and "dir/sub" not in tree(), what="folders removed")
    for n in range(20):  # a burst: coalesced, and the last content wins
        (checkout / "keep.txt").write_text(f"keep {n}")
    wait_until(lambda: tree()["keep.txt"].hash == hash_bytes(b"keep 19"), what="the burst")
    assert sorted(tree()) == ["inside", "keep.txt"]


def test_changes_queue_while_the_server_is_away_and_flow_when_it_returns(
    services: Services, admin_token: str, checkout: Path, tmp_path: Path
) -> None:
    server = Server(services, free_port())
    server.up()
    url = f"http://127.0.0.1:{server.port}"
    daemons = Daemons(url, admin_token, tmp_path / "state")
    (checkout / "a.txt").write_text("one")
    daemon = daemons.make(checkout, settle_s=0.01, retry_s=0.05, retry_max_s=0.2)
    try:
        daemons.start(daemon)
        wait_until(lambda: daemon.state.version == 1, what="the first sync")
        server.down()

        (checkout / "a.txt").write_text("two")
        (checkout / "b.txt").write_text("three")
        path = state_file(tmp_path / "state", checkout)

        def queued() -> SyncState | None:
            stored = load(path)
            return stored if stored and stored.pending.paths == ["a.txt", "b.txt"] else None

        stored = wait_until(queued, what="both changes to queue")
        assert "cannot reach the Autan API" in (stored.pending.error or "")
        assert stored.version == 1

        server.up()
        wait_until(lambda: daemon.state.version == 2, what="the queued change to flow")
        tree = server_tree(url, admin_token, daemon.state.workspace_id or "")
        assert tree["a.txt"].hash == hash_bytes(b"two") and tree["b.txt"].size == 5
        after = load(path)
        assert after is not None and after.pending.paths == [] and after.pending.error is None
    finally:
        daemons.stop_all()
        server.down()


def test_a_second_daemon_on_the_same_checkout_is_refused(daemons: Daemons, checkout: Path) -> None:
    first = daemons.make(checkout)
    first.acquire()
    try:
        with pytest.raises(AlreadySyncing, match="already being synced"):
            daemons.make(checkout).acquire()
    finally:
        first.release()
    second = daemons.make(checkout)
    second.acquire()  # free again once the first let go
    second.release()


def test_a_starting_daemon_waits_for_a_one_shot_sync_to_finish(
    daemons: Daemons, checkout: Path
) -> None:
    """`autan run --workspace` syncs once under the lock; a daemon started beside it waits
    instead of quitting with "already being synced" (it used to, when the one-shot won)."""
    one_shot = daemons.make(checkout)
    one_shot.acquire()
    releaser = threading.Timer(0.2, one_shot.release)  # the one-shot's sync ends
    releaser.start()
    waiting = daemons.make(checkout)
    try:
        waiting.acquire(wait_s=30)
    finally:
        releaser.join()
    waiting.release()


def test_a_workspace_moved_on_by_someone_else_gets_the_local_tree(
    daemons: Daemons, checkout: Path
) -> None:
    (checkout / "a.txt").write_bytes(A)
    daemon = daemons.make(checkout)
    daemon.sync()
    other = HttpRemote(daemons.url, daemons.token)
    try:
        other.upload(hash_bytes(B), _write(checkout.parent / "b.txt", B))
        entry = Entry(path="theirs.txt", kind="file", hash=hash_bytes(B), size=len(B))
        assert (
            other.commit(daemon.state.workspace_id or "", parent=1, changes=[entry], deleted=[])
            == 2
        )
    finally:
        other.close()

    (checkout / "a.txt").write_bytes(B)
    report = daemon.sync()

    assert report.version == 3
    tree = server_tree(daemons.url, daemons.token, daemon.state.workspace_id or "")
    assert sorted(tree) == ["a.txt"] and tree["a.txt"].hash == hash_bytes(B)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_a_file_and_a_folder_renamed_back_and_forth_end_as_on_disk(
    daemons: Daemons, checkout: Path
) -> None:
    (checkout / "a.txt").write_bytes(A)
    (checkout / "one" / "sub").mkdir(parents=True)
    (checkout / "one" / "sub" / "deep.txt").write_bytes(B)
    (checkout / "one" / "top.txt").write_text("top")
    daemon = daemons.make(checkout, settle_s=0.005, max_settle_s=0.05)
    daemons.start(daemon)
    wait_until(lambda: daemon.state.version >= 1, what="the first sync")
    workspace_id = daemon.state.workspace_id or ""

    def flip(n: int) -> None:  # a.txt <-> b.txt and one/ <-> two/, as fast as the disk goes
        old, new = ("a.txt", "one"), ("b.txt", "two")
        src, dst = (old, new) if n % 2 == 0 else (new, old)
        for here, there in zip(src, dst, strict=True):
            (checkout / here).rename(checkout / there)

    # At least 50 round trips; then on, while the daemon has read the tree fewer than five
    # times since, so that its reads race the renames. Bounded: the watcher works through
    # every event, and a flood it cannot keep up with would only make the test slow.
    rounds: set[object] = set()
    flips = 0
    while flips < 100 or (len(rounds) < 6 and flips < 2_000):
        flip(flips)
        flips += 1
        rounds.add(daemon.state.last_sync)
    if flips % 2 == 0:
        flip(flips)  # end on b.txt and two/
    (checkout / "two" / "sub" / "later.txt").write_text("written in the moved folder")
    (checkout / "done.txt").write_text("last")  # its round takes everything seen before it

    wait_until(
        lambda: "done.txt" in server_tree(daemons.url, daemons.token, workspace_id),
        timeout=60, what="the last change on the server",
    )  # fmt: skip
    tree = server_tree(daemons.url, daemons.token, workspace_id)
    local = {p: found.entry for p, found in Scanner(checkout).scan({}).entries.items()}
    assert tree == local
    assert sorted(tree) == [
        "b.txt", "done.txt", "two", "two/sub", "two/sub/deep.txt", "two/sub/later.txt",
        "two/top.txt",
    ]  # fmt: skip
    assert tree["b.txt"].hash == hash_bytes(A) and tree["two/sub/deep.txt"].hash == hash_bytes(B)
    assert daemon.state.pending.paths == [] and daemon.state.refused == []


def test_killed_after_a_commit_before_its_state_was_written_then_undone_converges(
    daemons: Daemons, checkout: Path
) -> None:
    (checkout / "a.txt").write_bytes(A)
    (checkout / "b.txt").write_bytes(B)
    daemon = daemons.make(checkout)
    daemon.sync()
    (checkout / "a.txt").write_bytes(B)
    assert daemon.sync({"a.txt"}).version == 2  # a save: its state is written a second later
    assert load(daemon.path) is not None and load(daemon.path).version == 1  # type: ignore[union-attr]
    del daemon  # killed here (kill -9: nothing more of it runs)
    (checkout / "a.txt").write_bytes(A)  # the developer undoes the change

    restarted = daemons.make(checkout)
    report = restarted.sync()

    workspace_id = restarted.state.workspace_id or ""
    assert (report.version, report.changed, report.deleted) == (3, ["a.txt"], [])
    tree = server_tree(daemons.url, daemons.token, workspace_id)
    assert tree["a.txt"].hash == hash_bytes(A) and tree["b.txt"].hash == hash_bytes(B)
    (checkout / "a.txt").rename(checkout / "c.txt")  # and renamed, while no daemon runs
    again = daemons.make(checkout).sync()
    assert (again.version, again.changed, again.deleted) == (4, ["c.txt"], ["a.txt"])
    assert sorted(server_tree(daemons.url, daemons.token, workspace_id)) == ["b.txt", "c.txt"]


class ChangesWhileSent(CountingTransport):
    """The real transport; while `churn`, each streamed upload finds its file changed (or,
    for `vanish`, deleted) as it starts to be sent."""

    def __init__(self, root: Path, vanish: str) -> None:
        super().__init__()
        self.root, self.vanish = root, vanish
        self.churn = True

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.churn and request.method == "PUT" and request.url.path.startswith("/api/blobs/"):
            (self.root / self.vanish).unlink(missing_ok=True)
            with (self.root / "big.log").open("ab") as log:
                log.write(b"one more line\n")
        return super().handle_request(request)


def test_a_file_changing_while_sent_waits_and_one_deleted_is_skipped(
    daemons: Daemons, checkout: Path
) -> None:
    big = b"x" * (2 << 20)  # over MAX_RECORD: streamed from disk as it is sent
    (checkout / "big.log").write_bytes(big)
    (checkout / "gone.bin").write_bytes(big + b"gone")
    (checkout / "small.txt").write_bytes(A)
    daemon = daemons.make(checkout)
    transport = ChangesWhileSent(checkout, "gone.bin")
    daemon.remote = HttpRemote(daemons.url, daemons.token, transport=transport)
    daemons.remotes.append(daemon.remote)  # type: ignore[arg-type]

    report = daemon.sync()

    workspace_id = daemon.state.workspace_id or ""
    assert report.changed == ["small.txt"]  # the rest went; the restless file waits
    assert daemon.state.pending.paths == ["big.log"] and daemon.state.pending.error is None
    assert sorted(server_tree(daemons.url, daemons.token, workspace_id)) == ["small.txt"]
    transport.churn = False  # it holds still now: the next round sends it
    assert daemon.sync().changed == ["big.log"]
    tree = server_tree(daemons.url, daemons.token, workspace_id)
    assert sorted(tree) == ["big.log", "small.txt"]
    assert tree["big.log"].hash == hash_bytes((checkout / "big.log").read_bytes())
    assert daemon.state.pending.paths == []


@pytest.mark.timeout(120)
def test_a_log_appended_every_20ms_and_files_deleted_mid_scan_do_not_stop_the_daemon(
    daemons: Daemons, checkout: Path
) -> None:
    (checkout / "keep.txt").write_bytes(A)
    daemon = daemons.make(checkout, settle_s=0.01, retry_s=0.05)
    stop = daemons.start(daemon)
    thread = daemons.running[-1][0]
    wait_until(lambda: daemon.state.version >= 1, what="the first sync")
    workspace_id = daemon.state.workspace_id or ""
    writes = threading.Event()

    def churn() -> None:  # 150 rounds of 20 ms: about 3 s of churn
        for n in range(150):
            with (checkout / "app.log").open("ab") as log:
                log.write(f"line {n}\n".encode().ljust(32 << 10, b"."))  # soon streamed
            (checkout / f"tmp-{n}.bin").write_bytes(B * (n % 7 + 1))
            (checkout / f"tmp-{n - 1}.bin").unlink(missing_ok=True)
            writes.wait(0.02)

    writer = threading.Thread(target=churn, name="churn")
    writer.start()
    writer.join(timeout=60)
    assert thread.is_alive() and not stop.is_set()

    def converged() -> bool:
        local = {p: found.entry for p, found in Scanner(checkout).scan({}).entries.items()}
        return server_tree(daemons.url, daemons.token, workspace_id) == local

    wait_until(converged, timeout=30, what="the server to hold the tree as on disk")
    assert thread.is_alive()
    assert sorted(server_tree(daemons.url, daemons.token, workspace_id)) == [
        "app.log", "keep.txt", "tmp-149.bin"
    ]  # fmt: skip


def test_a_refused_token_stops_the_daemon_saying_what_to_do(
    daemons: Daemons, checkout: Path
) -> None:
    (checkout / "a.txt").write_bytes(A)
    daemon = daemons.make(checkout, retry_s=0.05)
    daemon.sync()
    (checkout / "a.txt").write_bytes(B)
    daemon.remote = HttpRemote(daemons.url, "not-a-token")
    daemons.remotes.append(daemon.remote)  # type: ignore[arg-type]
    with pytest.raises(AccessDenied, match=r"refused the token \(401.*set AUTAN_TOKEN"):
        daemon.run(threading.Event())  # at once, not after retries
    saved = load(daemon.path)
    assert saved is not None and saved.pending.paths == ["a.txt"]
    assert "refused the token" in (saved.pending.error or "")


def test_a_daemon_started_while_the_api_is_down_registers_once_it_is_back(
    daemons: Daemons, checkout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = daemons.make(checkout, retry_s=0.01, retry_max_s=0.02)
    register = daemon.remote.register
    answers: list[Exception] = [ServerUnreachable("down"), ServerRefused("503 restarting")]

    def restarting(**asked: str) -> str:
        if answers:
            raise answers.pop(0)
        return register(**asked)

    monkeypatch.setattr(daemon.remote, "register", restarting)
    assert daemon.register_when_reachable(threading.Event()) == daemon.state.workspace_id
    assert daemon.state.workspace_id is not None and answers == []

    stopped = threading.Event()
    stopped.set()
    answers.append(ServerUnreachable("down"))
    (checkout.parent / "other").mkdir()
    other = daemons.make(checkout.parent / "other", retry_s=0.01)
    monkeypatch.setattr(other.remote, "register", restarting)
    assert other.register_when_reachable(stopped) is None  # Ctrl-C while waiting: no error
