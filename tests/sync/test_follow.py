"""Bringing a task's edits home: in place by the three-way rule, or onto a branch; the kept
attempt wins at the end; a change set applied twice changes nothing; forged paths refused."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sync.blobs import BlobStore
from sync.errors import ServerUnreachable, UnsafePath
from sync.follow import TaskFollower, TaskLine, line_path, load_line
from sync.manifests import Entry
from sync.schemas import AgentChange, ConflictCopy, ConflictView, TaskChanges
from tests.agent.bugs import git
from tests.sync.conftest import git_checkout

TASK = "0123456789abcdef0123456789abcdef"


@dataclass
class StoreRemote:
    """The server's side of a follower over a blob store in this process: what the routes
    answer, without HTTP (the HTTP path is tested end to end in test_two_way.py)."""

    blobs: BlobStore
    base: dict[str, Entry]
    reported: list[list[ConflictCopy]] = field(default_factory=list)
    listed: list[ConflictView] = field(default_factory=list)
    """What GET .../conflicts answers."""

    def task_changes(self, workspace_id: str, task_id: str, after: int, wait: float) -> TaskChanges:
        raise AssertionError("the tests hand changes to take() themselves")

    def manifest_at(self, workspace_id: str, version: int) -> dict[str, Entry]:
        return self.base

    def download(self, workspace_id: str, task_id: str, digest: str, dest: Path) -> None:
        shutil.copyfile(self.blobs.path(digest), dest)

    def report_conflicts(
        self, workspace_id: str, task_id: str, conflicts: list[ConflictCopy]
    ) -> None:
        self.reported.append(list(conflicts))

    def conflicts(self, workspace_id: str) -> list[ConflictView]:
        return list(self.listed)


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


def entry(blobs: BlobStore, path: str, data: bytes) -> Entry:
    return Entry(path=path, kind="file", hash=blobs.put_bytes(data), size=len(data))


def changes(
    seq: int,
    attempt: int,
    *entries: Entry,
    deleted: tuple[str, ...] = (),
    bases: dict[str, Entry | None] | None = None,
    finished: bool = False,
    chosen: int | None = None,
) -> TaskChanges:
    change = AgentChange(
        seq=seq, attempt=attempt, changes=list(entries), deleted=list(deleted), bases=bases or {}
    )
    return TaskChanges(
        task_id=TASK, version=1, finished=finished, chosen=chosen, changes=[change], last=seq
    )


def follower(root: Path, remote: StoreRemote, tmp_path: Path, mode: str) -> TaskFollower:
    line = TaskLine(task_id=TASK, workspace_id="w" * 32, version=1, mode=mode)  # type: ignore[arg-type]
    return TaskFollower(root, remote, line, tmp_path / "lines")


def test_in_place_takes_untouched_files_and_keeps_both_versions_of_a_conflict(
    tmp_path: Path, blobs: BlobStore
) -> None:
    root = tmp_path / "checkout"
    root.mkdir()
    for name in ("a.txt", "b.txt", "c.txt", "gone.txt"):
        (root / name).write_text("base\n")
    base = {p: entry(blobs, p, b"base\n") for p in ("a.txt", "b.txt", "c.txt", "gone.txt")}
    remote = StoreRemote(blobs, base)
    (root / "b.txt").write_text("mine\n")  # the developer's edit, not yet seen by the agent
    (root / "c.txt").write_text("mine too\n")  # ...and one the agent saw and built on
    agreed_c = entry(blobs, "c.txt", b"mine too\n")
    follow = follower(root, remote, tmp_path, "inplace")

    follow.take(changes(
        5, 1, entry(blobs, "a.txt", b"agent\n"), entry(blobs, "b.txt", b"agent\n"),
        entry(blobs, "c.txt", b"mine too, and the agent's\n"), entry(blobs, "new/d.txt", b"d\n"),
        deleted=("gone.txt",), bases={"c.txt": agreed_c},
    ))  # fmt: skip

    assert (root / "a.txt").read_text() == "agent\n"
    assert (root / "b.txt").read_text() == "mine\n"  # never overwritten
    assert (root / f"b.txt.autan-{TASK}").read_text() == "agent\n"  # theirs beside it
    assert (root / "c.txt").read_text() == "mine too, and the agent's\n"  # no conflict
    assert (root / "new" / "d.txt").read_text() == "d\n"
    assert not (root / "gone.txt").exists()
    assert [c.path for c in follow.line.conflicts] == ["b.txt"]
    assert remote.reported[-1][0].copy_path == f"b.txt.autan-{TASK}"
    saved = load_line(line_path(tmp_path / "lines", TASK))
    assert saved is not None and saved.seq == 5 and [c.path for c in saved.conflicts] == ["b.txt"]
    assert not list(root.glob(".*.tmp"))  # every write went through a renamed temporary

    # The follower killed before it saved: the same change set comes again, nothing changes.
    before = {p.name: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    follow.line.seq = 0
    follow.take(changes(5, 1, entry(blobs, "a.txt", b"agent\n"), deleted=("gone.txt",)))
    assert {p.name: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before

    # The developer deletes the conflict copy: the conflict is resolved, and the server told.
    (root / f"b.txt.autan-{TASK}").unlink()
    follow.take(TaskChanges(task_id=TASK, version=1, finished=False, changes=[], last=5))
    assert follow.line.conflicts == [] and remote.reported[-1] == []


def test_a_branch_gets_the_base_then_the_kept_attempt(tmp_path: Path, blobs: BlobStore) -> None:
    root = git_checkout(tmp_path / "repo", {"a.txt": "committed\n"}, {"wip.txt": "uncommitted\n"})
    base = {
        "a.txt": entry(blobs, "a.txt", b"committed\n"),
        "wip.txt": entry(blobs, "wip.txt", b"uncommitted\n"),
    }
    follow = follower(root, StoreRemote(blobs, base), tmp_path, "branch")

    follow.take(changes(3, 1, entry(blobs, "one.txt", b"attempt one\n")))
    odd = entry(blobs, "odd *[name].txt", b"globs are literal\n")
    follow.take(changes(4, 2, entry(blobs, "two.txt", b"attempt two\n"), odd, deleted=("a.txt",)))
    worktree = tmp_path / "repo.autan" / TASK
    assert (worktree / "one.txt").exists() and not (worktree / "two.txt").exists()

    follow.take(TaskChanges(task_id=TASK, version=1, finished=True, chosen=2, changes=[], last=9))

    assert follow.line.done and follow.line.followed == 2
    assert sorted(
        git(worktree, "ls-tree", "-r", "--name-only", "-z", f"autan/{TASK}").split("\0")
    ) == ["", "odd *[name].txt", "two.txt", "wip.txt"]
    assert (root / "a.txt").exists() and not (root / "two.txt").exists()  # checkout untouched
    assert git(root, "status", "--porcelain").split() == ["??", "wip.txt"]


def test_a_branch_needs_a_git_checkout(tmp_path: Path, blobs: BlobStore) -> None:
    root = tmp_path / "plain"
    root.mkdir()
    follow = follower(root, StoreRemote(blobs, {}), tmp_path, "branch")
    with pytest.raises(Exception, match="use --apply inplace"):
        follow.take(changes(1, 1, entry(blobs, "x.txt", b"x\n")))


def test_a_forged_path_from_the_server_writes_nothing(tmp_path: Path, blobs: BlobStore) -> None:
    root = tmp_path / "checkout"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    follow = follower(root, StoreRemote(blobs, {}), tmp_path, "inplace")
    digest = blobs.put_bytes(b"evil\n")
    for path in ("../evil", "link/evil"):
        forged = Entry.model_construct(
            path=path, kind="file", hash=digest, mode=0o644, target=None, size=5
        )
        bad = AgentChange.model_construct(seq=1, attempt=1, changes=[forged], deleted=[], bases={})
        with pytest.raises(UnsafePath):
            follow.take(TaskChanges.model_construct(
                task_id=TASK, version=1, finished=False, chosen=None, changes=[bad], last=1
            ))  # fmt: skip
    assert not (tmp_path / "evil").exists()


def test_a_follower_that_dies_mid_apply_leaves_no_partial_file_and_resumes(
    tmp_path: Path, blobs: BlobStore
) -> None:
    root = tmp_path / "checkout"
    root.mkdir()
    remote = StoreRemote(blobs, {})
    follow = follower(root, remote, tmp_path, "inplace")
    change = changes(7, 1, *(entry(blobs, f"f{i}.txt", f"file {i}\n".encode()) for i in range(5)))

    downloads = 0
    real = remote.download

    def dies_on_the_third(workspace_id: str, task_id: str, digest: str, dest: Path) -> None:
        nonlocal downloads
        downloads += 1
        if downloads == 3:
            raise ServerUnreachable("the process died here")
        real(workspace_id, task_id, digest, dest)

    remote.download = dies_on_the_third  # type: ignore[method-assign]
    with pytest.raises(ServerUnreachable):
        follow.take(change)
    written = sorted(p.name for p in root.iterdir())
    assert written == ["f0.txt", "f1.txt"]  # whole files, and no temporary left behind
    assert load_line(line_path(tmp_path / "lines", TASK)) is None  # nothing recorded as done

    remote.download = real  # type: ignore[method-assign]
    again = TaskFollower(
        root,
        remote,
        TaskLine(task_id=TASK, workspace_id="w" * 32, version=1, mode="inplace"),
        tmp_path / "lines",
    )
    again.take(change)
    assert sorted(p.name for p in root.iterdir()) == [f"f{i}.txt" for i in range(5)]
    assert (root / "f4.txt").read_text() == "file 4\n" and again.line.seq == 7
