"""A live sandbox and its workspace: local changes in by the three-way rule, the agent's out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import SandboxConfig, SandboxError, create_sandbox
from sandbox.base import Sandbox
from sync import snapshots
from sync.blobs import BlobStore
from sync.errors import UnsafePath
from sync.live import ChangeSet, SandboxLink
from sync.manifests import Entry, canonical

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
