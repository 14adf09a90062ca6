"""A live sandbox and its workspace: local changes in by the three-way rule against what both
sides last held, the agent's out; a save made on content the agent has since changed is a
conflict, in both apply modes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import SandboxConfig, SandboxError, create_sandbox
from sandbox.base import Sandbox
from sandbox.diff import Budget
from sync import snapshots
from sync.blobs import BlobStore
from sync.errors import UnsafePath
from sync.live import ChangeSet, SandboxLink
from sync.manifests import Entry, canonical
from tests.sync.conftest import git_checkout
from tests.sync.test_follow import StoreRemote, changes, entry, follower

BASE = {"a.txt": b"base a\n", "src/b.py": b"print('b')\n", ".gitignore": b"build/\n"}


def file(blobs: BlobStore, path: str, data: bytes, mode: int = 0o644) -> Entry:
    digest = blobs.put_bytes(data)
    return Entry(path=path, kind="file", hash=digest, mode=mode, size=len(data))


@pytest.fixture(params=["local", "bwrap"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    name: str = request.param
    if name == "bwrap":
        try:
            create_sandbox(tmp_path, SandboxConfig(backend="bwrap", root=tmp_path / "p")).close()
        except SandboxError as exc:
            pytest.skip(f"bwrap sandboxes cannot run here: {exc}")
    return name


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


@pytest.fixture
def base(blobs: BlobStore) -> dict[str, Entry]:
    entries = {p: file(blobs, p, data) for p, data in BASE.items()}
    entries["src"] = Entry(path="src", kind="dir")
    return entries


@pytest.fixture
def sandbox(
    tmp_path: Path, blobs: BlobStore, base: dict[str, Entry], backend: str
) -> Iterator[Sandbox]:
    digest = blobs.put_bytes(canonical(base.values()))
    tree = snapshots.materialise(blobs, digest, tmp_path / "snapshots")
    config = SandboxConfig(backend=backend, root=tmp_path / "sandboxes")
    config.limits.require_cgroups = False
    made = create_sandbox(tree, config)
    yield made
    made.close()


@pytest.fixture
def link(sandbox: Sandbox, blobs: BlobStore, base: dict[str, Entry]) -> SandboxLink:
    return SandboxLink(sandbox, blobs, base, version=1)


def test_a_local_change_goes_in_and_does_not_come_back(
    link: SandboxLink, sandbox: Sandbox, blobs: BlobStore
) -> None:
    new = file(blobs, "new/c.txt", b"from the laptop\n")
    changed = file(blobs, "a.txt", b"edited locally\n", mode=0o755)
    conflicts = link.push(2, ChangeSet([changed, new], ["src/b.py"]))
    assert conflicts == []
    assert sandbox.read_file("new/c.txt") == b"from the laptop\n"
    assert sandbox.read_file("a.txt") == b"edited locally\n"
    assert sandbox.exec("test -x a.txt && test ! -e src/b.py").exit_code == 0
    assert link.version == 2
    assert not link.pull()  # nothing of the agent's: the pushed change does not echo back


def test_the_agents_edits_come_out_with_their_content_and_what_they_were_made_on(
    link: SandboxLink, sandbox: Sandbox, blobs: BlobStore
) -> None:
    result = sandbox.exec(
        "printf 'agent\\n' > a.txt && mkdir -p build && echo x > build/out && rm src/b.py "
        "&& ln -s a.txt alias && ln -s /etc/passwd escape && echo n > notes.md"
    )
    assert result.exit_code == 0, result.stderr
    out = link.pull()
    by_path = {e.path: e for e in out.changes}
    assert sorted(by_path) == ["a.txt", "alias", "notes.md"]  # build/ is ignored
    assert blobs.read(by_path["a.txt"].hash or "") == b"agent\n"
    assert by_path["alias"].target == "a.txt"
    assert out.deleted == ["src/b.py"] and out.refused == ["escape"]
    assert out.bases["a.txt"] is not None and out.bases["notes.md"] is None
    assert not link.pull()  # sent once
    sandbox.exec("echo again >> a.txt")
    again = link.pull()
    assert [e.path for e in again.changes] == ["a.txt"]
    assert again.bases["a.txt"] == by_path["a.txt"]


def test_a_true_conflict_keeps_the_agents_version_and_is_reported(
    link: SandboxLink, sandbox: Sandbox, blobs: BlobStore
) -> None:
    sandbox.write_file("a.txt", b"the agent's\n")
    sandbox.write_file("same.txt", b"both wrote this\n")
    conflicts = link.push(
        2,
        ChangeSet(
            [
                file(blobs, "a.txt", b"the developer's\n"),
                file(blobs, "same.txt", b"both wrote this\n"),
            ]
        ),
    )
    assert [c.path for c in conflicts] == ["a.txt"]
    assert conflicts[0].local is not None and conflicts[0].agent is not None
    assert sandbox.read_file("a.txt") == b"the agent's\n"
    out = link.pull()  # the agent's version still differs from what both agreed: it goes out
    assert [e.path for e in out.changes] == ["a.txt"]
    assert (
        out.bases["a.txt"] is not None
        and blobs.read(out.bases["a.txt"].hash or "") == BASE["a.txt"]
    )


def test_a_forged_path_cannot_leave_the_sandbox(
    link: SandboxLink, sandbox: Sandbox, blobs: BlobStore, tmp_path: Path
) -> None:
    digest = blobs.put_bytes(b"evil\n")
    forged = Entry.model_construct(  # past validation, as a hostile caller could send it
        path="../../escaped", kind="file", hash=digest, mode=0o644, target=None, size=5
    )
    sandbox.exec("ln -s /tmp out")
    through_link = file(blobs, "out/escaped", b"evil\n")
    with pytest.raises(UnsafePath):
        link.push(2, ChangeSet([file(blobs, "fine.txt", b"fine\n"), forged]))
    assert sandbox.exec("test ! -e fine.txt").exit_code == 0  # nothing of it was written
    link.push(3, ChangeSet([through_link]))  # the symlink resolves inside the sandbox
    assert not (tmp_path / "escaped").exists()
    assert not Path("/tmp/escaped").exists()


@pytest.mark.timeout(60)
def test_git_names_fifos_and_files_too_large_stay_in_the_sandbox(
    sandbox: Sandbox, blobs: BlobStore, base: dict[str, Entry], caplog: pytest.LogCaptureFixture
) -> None:
    link = SandboxLink(sandbox, blobs, base, version=1, max_file_bytes=1 << 20)
    made = sandbox.exec(
        "mkdir -p .GIT sub/.git && echo x > .GIT/config && echo y > sub/.git/config && "
        "mkfifo pipe && rm src/b.py && mkfifo src/b.py && truncate -s 50G huge && "
        "truncate -s 3G a.txt && echo ok > fine.txt"
    )
    assert made.exit_code == 0, made.stderr

    with caplog.at_level("WARNING", logger="sync.live"):
        out = link.pull()
        again = link.pull()

    assert [e.path for e in out.changes] == ["fine.txt"]
    assert out.deleted == ["src/b.py"]  # a FIFO is no file: what was there is gone
    assert out.refused == ["a.txt", "huge"]
    assert not again and again.refused == []
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["a.txt", "huge"]
    assert link.known["a.txt"] == base["a.txt"]  # over the bound is not a deletion
    assert next(out.batches()).refused == ["a.txt", "huge"]
    link.push(2, ChangeSet([file(blobs, "a.txt", b"edited locally\n")]))
    assert sandbox.exec("stat -c %s a.txt").stdout == "3221225472\n"  # the agent's stays
    hook = Entry.model_construct(  # past validation, as a hostile caller could send it
        path="sub/.GIT/config", kind="file", hash=blobs.put_bytes(b"[core]\n"), mode=0o644,
        target=None, size=7,
    )  # fmt: skip
    with pytest.raises(UnsafePath):
        link.push(2, ChangeSet([hook]))
    assert sandbox.exec("test ! -e sub/.GIT").exit_code == 0  # nothing of it was written


OLD, AGENT, LOCAL = b"line1\nline2\n", b"line1\nline2 AGENT\n", b"line1\nline2 LOCAL\n"


def local_version(blobs: BlobStore, root: Path, *paths: str) -> ChangeSet:
    """What the daemon would commit of `paths` as the checkout holds them now."""
    return ChangeSet([entry(blobs, p, (root / p).read_bytes()) for p in paths])


@pytest.mark.parametrize("mode", ["branch", "inplace"])
def test_a_save_from_the_old_content_does_not_overwrite_the_agents_edit(
    mode: str, sandbox: Sandbox, blobs: BlobStore, base: dict[str, Entry], tmp_path: Path
) -> None:
    root = git_checkout(tmp_path / "project", {"a.txt": BASE["a.txt"].decode()}, {})
    (root / "src").mkdir()
    (root / "src/b.py").write_bytes(BASE["src/b.py"])
    (root / ".gitignore").write_bytes(BASE[".gitignore"])
    (root / "shared.txt").write_bytes(OLD)
    shared = file(blobs, "shared.txt", OLD)
    base = {**base, "shared.txt": shared}
    sandbox.write_file("shared.txt", OLD)
    link = SandboxLink(sandbox, blobs, base, version=1)
    home = follower(root, StoreRemote(blobs, base), tmp_path, mode)

    sandbox.write_file("shared.txt", AGENT)  # the agent's edit_file
    out = link.pull()
    assert [e.path for e in out.changes] == ["shared.txt"] and out.bases["shared.txt"] == shared
    (root / "shared.txt").write_bytes(LOCAL)  # saved from the editor's old buffer, meanwhile
    home.take(changes(1, 1, *out.changes, bases=out.bases))
    found = link.push(2, local_version(blobs, root, "shared.txt"))

    assert sandbox.read_file("shared.txt") == AGENT  # the agent's edit survives
    assert sandbox.read_file("shared.txt.autan-local") == LOCAL  # the developer's beside it
    assert [(c.path, c.copy) for c in found] == [("shared.txt", "shared.txt.autan-local")]
    assert found[0].agent is not None and blobs.read(found[0].agent.hash or "") == AGENT
    assert (root / "shared.txt").read_bytes() == LOCAL  # the checkout keeps its own
    if mode == "inplace":  # and holds the agent's beside it, reported to the server
        assert (root / f"shared.txt.autan-{home.line.task_id}").read_bytes() == AGENT
        assert [c.path for c in home.remote.reported[-1]] == ["shared.txt"]  # type: ignore[attr-defined]
    else:
        assert not (root / f"shared.txt.autan-{home.line.task_id}").exists()
    assert not link.pull()  # the developer's copy is not sent back as the agent's work

    # Saving again on the old content is still a conflict; the copy holds the newest save.
    (root / "shared.txt").write_bytes(LOCAL + b"more\n")
    again = link.push(3, local_version(blobs, root, "shared.txt"))
    assert [c.path for c in again] == ["shared.txt"]
    assert sandbox.read_file("shared.txt") == AGENT
    assert sandbox.read_file("shared.txt.autan-local") == LOCAL + b"more\n"

    # Once the checkout takes the agent's version, an edit on top of it goes in as usual.
    (root / "shared.txt").write_bytes(AGENT)
    assert link.push(4, local_version(blobs, root, "shared.txt")) == []
    (root / "shared.txt").write_bytes(AGENT + b"line3\n")
    assert link.push(5, local_version(blobs, root, "shared.txt")) == []
    assert sandbox.read_file("shared.txt") == AGENT + b"line3\n"
    assert not link.pull()


def test_the_agents_own_edit_coming_back_is_no_conflict_when_it_has_moved_on(
    sandbox: Sandbox, blobs: BlobStore, base: dict[str, Entry]
) -> None:
    link = SandboxLink(sandbox, blobs, base, version=1)
    sandbox.write_file("a.txt", b"first\n")
    first = link.pull().changes
    sandbox.write_file("a.txt", b"second\n")  # before the checkout's version holds `first`
    assert link.push(2, ChangeSet(first)) == []
    assert sandbox.read_file("a.txt") == b"second\n"
    assert [e.path for e in link.pull().changes] == ["a.txt"]
    assert sandbox.exec("test -e a.txt.autan-local").exit_code != 0


def test_a_local_deletion_of_a_file_the_agent_changed_leaves_the_agents(
    sandbox: Sandbox, blobs: BlobStore, base: dict[str, Entry]
) -> None:
    link = SandboxLink(sandbox, blobs, base, version=1)
    sandbox.write_file("a.txt", b"the agent's\n")
    link.pull()
    found = link.push(2, ChangeSet([], ["a.txt"]))
    assert [(c.path, c.local, c.copy) for c in found] == [("a.txt", None, None)]
    assert sandbox.read_file("a.txt") == b"the agent's\n"


def test_a_copy_name_the_agent_uses_is_not_overwritten(
    sandbox: Sandbox, blobs: BlobStore, base: dict[str, Entry]
) -> None:
    link = SandboxLink(sandbox, blobs, base, version=1)
    sandbox.write_file("a.txt", b"the agent's\n")
    sandbox.write_file("a.txt.autan-local", b"the agent's own file of that name\n")
    link.pull()
    found = link.push(2, ChangeSet([file(blobs, "a.txt", b"the developer's\n")]))
    assert [c.copy for c in found] == ["a.txt.autan-local-2"]
    assert sandbox.read_file("a.txt.autan-local") == b"the agent's own file of that name\n"
    assert sandbox.read_file("a.txt.autan-local-2") == b"the developer's\n"


BUDGET = Budget(1 << 20, 10 << 20)
AGENT_A = b"base a\nby the agent\n"


def blob_id(data: bytes) -> str:
    """git's id of a blob of `data`, as a diff's index line names it."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def test_the_developers_saves_are_shown_apart_from_the_agents_work(
    link: SandboxLink, sandbox: Sandbox, blobs: BlobStore
) -> None:
    moved = file(blobs, "src/c.py", BASE["src/b.py"])  # a rename, as the daemon sends one
    added = file(blobs, "notes/dev.md", b"the developer's notes\n")
    assert link.push(2, ChangeSet([moved, added], ["src/b.py"])) == []
    sandbox.write_file("a.txt", AGENT_A)
    out = link.pull()
    assert [e.path for e in out.changes] == ["a.txt"] and out.deleted == []
    split = link.split(BUDGET)
    assert split.paths == ["notes/dev.md", "src/b.py", "src/c.py"]
    assert split.agent == (
        "diff --git a/a.txt b/a.txt\n"
        f"index {blob_id(BASE['a.txt'])}..{blob_id(AGENT_A)} 100644\n"
        "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1,2 @@\n base a\n+by the agent\n"
    )
    assert "diff --git a/src/b.py b/src/c.py\nsimilarity index 100%\n" in split.checkout
    assert "new file mode 100644\n" in split.checkout
    assert "+the developer's notes\n" in split.checkout
    assert "a.txt" not in split.checkout
    whole = sandbox.diff()  # the sandbox's own diff still holds both
    assert "notes/dev.md" in whole and "by the agent" in whole


def test_the_agents_edit_of_a_developers_save_is_shown_against_that_save(
    link: SandboxLink, sandbox: Sandbox, blobs: BlobStore
) -> None:
    saved = [file(blobs, "a.txt", b"the developer's\n"), file(blobs, "new.txt", b"one\n")]
    assert link.push(2, ChangeSet(saved)) == []
    assert sandbox.exec("echo agent >> a.txt && echo two >> new.txt").exit_code == 0
    link.pull()
    split = link.split(BUDGET)
    assert split.paths == ["a.txt", "new.txt"]
    agent = split.agent
    assert "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1,2 @@\n the developer's\n+agent\n" in agent
    assert "--- a/new.txt\n+++ b/new.txt\n@@ -1 +1,2 @@\n one\n+two\n" in agent
    assert "new file mode" not in agent and "-base a" not in agent
    assert "-base a\n+the developer's\n" in split.checkout
    assert "new file mode 100644\n" in split.checkout and "+one\n" in split.checkout
    assert "+agent" not in split.checkout and "+two" not in split.checkout


def test_a_conflict_leaves_the_diff_as_it_was(
    link: SandboxLink, sandbox: Sandbox, blobs: BlobStore
) -> None:
    sandbox.write_file("a.txt", b"the agent's\n")
    link.pull()
    conflicts = link.push(2, ChangeSet([file(blobs, "a.txt", b"the developer's\n")]))
    assert [c.path for c in conflicts] == ["a.txt"]
    assert link.from_checkout == {}  # nothing of the checkout's went in where the agent's is
    split = link.split(BUDGET)
    assert split.checkout == "" and split.paths == []
    assert split.agent == sandbox.diff()
    assert "+the agent's\n" in split.agent and "a.txt.autan-local" in split.agent
