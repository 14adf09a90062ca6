"""A folder renamed goes as one rename; a slow server is called slow; timeouts grow with size."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sync.errors import ServerSlow
from sync.manifests import Entry
from sync.remote import HttpRemote
from sync.renames import find_renames, roots
from tests.sync.conftest import CountingTransport, Daemons
from tests.sync.test_daemon import server_tree

FILES = 600


def d(path: str) -> Entry:
    return Entry(path=path, kind="dir")


def f(path: str, text: str = "a") -> Entry:
    return Entry(path=path, kind="file", hash=text * 64, size=1)


def test_roots_keep_only_the_topmost_of_each_folder() -> None:
    assert roots(["a/b", "a", "a-b", "a/b/c", "b/c", "a0"]) == ["a", "a-b", "a0", "b/c"]
    assert roots([]) == []


def test_a_folder_that_reappears_exactly_is_a_rename() -> None:
    gone = {e.path: e for e in [d("src"), d("src/x"), f("src/x/1"), f("src/2", "b")]}
    changes = [d("lib"), d("lib/src"), d("lib/src/x"), f("lib/src/x/1"), f("lib/src/2", "b"),
               f("other")]  # fmt: skip
    sent, deleted, moves = find_renames(gone, changes, known=set(gone))
    assert (moves, deleted) == ([("src", "lib/src")], [])
    assert sorted(e.path for e in sent) == ["lib", "other"]
    known = set(gone) | {"lib"}  # lib was there already: the same rename
    sent, deleted, moves = find_renames(gone, changes[1:], known=known)
    assert (moves, deleted, [e.path for e in sent]) == ([("src", "lib/src")], [], ["other"])


def test_a_folder_changed_on_the_way_or_a_lone_file_is_no_rename() -> None:
    gone = {e.path: e for e in [d("src"), f("src/1"), f("src/2")]}
    edited = [d("dst"), f("dst/1"), f("dst/2", "c")]
    assert find_renames(gone, edited, known=set(gone))[2] == []
    grown = [d("dst"), f("dst/1"), f("dst/2"), f("dst/3")]
    assert find_renames(gone, grown, known=set(gone))[2] == []
    alone = {"a.txt": f("a.txt")}
    assert find_renames(alone, [f("b.txt")], known={"a.txt"})[2] == []
    twins = {e.path: e for e in [d("p"), f("p/1"), d("q"), f("q/1")]}
    sent, deleted, moves = find_renames(twins, [d("r"), f("r/1")], known=set(twins))
    assert len(moves) == 1 and moves[0][1] == "r" and len(deleted) == 2 and sent == []


def make_folder(root: Path) -> None:
    for sub in range(6):
        (root / "src" / f"d{sub}").mkdir(parents=True)
    for n in range(FILES):
        (root / "src" / f"d{n % 6}" / f"f{n}.txt").write_text(f"file {n}\n")
    (root / "keep.txt").write_text("kept\n")


def disk_tree(root: Path) -> dict[str, str]:
    found = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(top) / name
            found[str(path.relative_to(root))] = "dir" if path.is_dir() else path.read_text()
    return found


def test_a_folder_renamed_on_disk_is_sent_as_one_small_rename(
    daemons: Daemons, checkout: Path
) -> None:
    make_folder(checkout)
    daemon = daemons.make(checkout)
    first = daemon.sync()
    assert first.version == 1 and len(first.changed) == FILES + 8
    sent = daemons.transports[0]
    sent.clear()
    (checkout / "lib").mkdir()
    os.rename(checkout / "src", checkout / "lib" / "src")

    report = daemon.sync()

    workspace_id = daemon.state.workspace_id or ""
    assert report.version == 2
    assert sent.sent == [("POST", f"/api/workspaces/{workspace_id}/versions")]  # nothing asked
    assert sent.body_bytes[0] < 1000  # the rename and the new folder, not 600 entries
    tree = server_tree(daemons.url, daemons.token, workspace_id)
    assert {p: ("dir" if e.kind == "dir" else e.hash) for p, e in tree.items()}.keys() == (
        disk_tree(checkout).keys()
    )
    assert not any(p.startswith("src") for p in tree)
    assert daemon.sync().version == 2  # nothing left to send


def test_a_folder_renamed_and_edited_is_still_right(daemons: Daemons, checkout: Path) -> None:
    make_folder(checkout)
    daemon = daemons.make(checkout)
    daemon.sync()
    os.rename(checkout / "src", checkout / "moved")
    (checkout / "moved" / "d0" / "f0.txt").write_text("edited\n")

    report = daemon.sync()

    tree = server_tree(daemons.url, daemons.token, daemon.state.workspace_id or "")
    assert report.version == 2 and tree.keys() == disk_tree(checkout).keys()
    assert tree["moved/d0/f0.txt"].size == len("edited\n")


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A server that takes connections and requests and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, name="silent-server")
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    done.set()
    thread.join(timeout=5)
    for conn in held:
        conn.close()
    listener.close()


def test_a_server_that_does_not_answer_in_time_is_called_slow(silent_server: str) -> None:
    remote = HttpRemote(silent_server, "token", timeout=0.3)
    try:
        with pytest.raises(ServerSlow) as caught:
            remote.commit("w", parent=1, changes=[], deleted=["x"])
    finally:
        remote.close()
    message = str(caught.value)
    assert "did not answer within 0.3 s" in message
    assert "cannot reach" not in message and "POST /api/workspaces/w/versions" in message


class Timeouts(CountingTransport):
    """Answers every commit at once, recording the read timeout it was sent with."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[float] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.reads.append(request.extensions["timeout"]["read"])
        return httpx.Response(201, json={"number": 2})


def test_a_commits_timeout_grows_with_its_size() -> None:
    transport = Timeouts()
    remote = HttpRemote("http://autan.invalid", "token", timeout=30.0, transport=transport)
    small = [f("a")]
    large = [f(f"p{n}") for n in range(50_000)]
    try:
        remote.commit("w", parent=1, changes=small, deleted=[])
        remote.commit("w", parent=1, changes=large, deleted=[f"q{n}" for n in range(50_000)])
    finally:
        remote.close()
    assert transport.reads[0] == pytest.approx(30.001)
    assert transport.reads[1] == pytest.approx(130.0)
