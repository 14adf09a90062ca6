"""The blob store, manifest checks and snapshots, on real files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.agent_runner import AgentRunner, AgentRunnerSettings
from sync.blobs import BlobStore
from sync.errors import BlobHashMismatch, UnsafePath
from sync.hashing import hash_bytes
from sync.manifests import Entry, canonical, check_path, check_tree
from sync.snapshots import materialise, repo_of


def blob_files(store: BlobStore) -> list[Path]:
    return sorted(p for p in store.objects.rglob("*") if p.is_file())


def test_a_blob_is_stored_under_its_hash_atomically(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    digest = hash_bytes(b"hello")
    writer = store.writer(digest)
    writer.write(b"hel")
    assert store.missing([digest, digest]) == [digest]  # not there until committed
    assert len(store.partials()) == 1
    writer.write(b"lo")

    assert writer.commit() is True
    assert store.path(digest).read_bytes() == b"hello"
    assert store.missing([digest]) == [] and store.partials() == []
    assert store.put_bytes(b"hello") == digest  # again: the same, nothing new
    assert blob_files(store) == [store.path(digest)]


def test_a_wrong_hash_stores_nothing(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    writer = store.writer(hash_bytes(b"expected"))
    writer.write(b"something else")

    with pytest.raises(BlobHashMismatch, match="nothing was stored"):
        writer.commit()
    assert blob_files(store) == [] and store.partials() == []
    with pytest.raises(ValueError, match="not a blob hash"):
        store.writer("../../etc/passwd")


@pytest.mark.parametrize(
    "path", ["", "/etc/passwd", "../up", "a/../../b", "a//b", "./a", ".git/hooks/pre-commit",
             "sub/.git/config", "a\0b", "x" * 1025],
)  # fmt: skip
def test_paths_that_leave_the_tree_are_refused(path: str) -> None:
    with pytest.raises(UnsafePath):
        check_path(path)


def test_symlinks_that_leave_the_tree_are_refused() -> None:
    def tree(*links: tuple[str, str]) -> dict[str, Entry]:
        return {p: Entry(path=p, kind="symlink", target=t, mode=0o777) for p, t in links}

    check_tree(tree(("a", "b/c"), ("d/e", "../a"), ("here", "."), ("f", "here/a")))
    for bad in [
        tree(("a", "/etc/passwd")),
        tree(("a", "../outside")),
        tree(("d/e", "../../outside")),
        tree(("here", "."), ("sneaky", "here/../outside")),  # lexically inside, really not
        tree(("loop", "loop2"), ("loop2", "loop")),
    ]:
        with pytest.raises(UnsafePath, match="outside the tree"):
            check_tree(bad)
    under_link = {
        **tree(("lib", "real")),
        "lib/x": Entry(path="lib/x", kind="file", hash=hash_bytes(b""), size=0),
    }
    with pytest.raises(UnsafePath, match="not a directory"):
        check_tree(under_link)


def snapshot_of(store: BlobStore) -> tuple[str, dict[str, Entry]]:
    code, tool = b"print('hi')\n", b"#!/bin/sh\necho hi\n"
    entries = {
        "src": Entry(path="src", kind="dir"),
        "src/main.py": Entry(
            path="src/main.py", kind="file", hash=store.put_bytes(code), size=len(code)
        ),
        "src/copy.py": Entry(
            path="src/copy.py", kind="file", hash=store.put_bytes(code), size=len(code)
        ),
        "run.sh": Entry(
            path="run.sh", kind="file", hash=store.put_bytes(tool), mode=0o755, size=len(tool)
        ),
        "empty": Entry(path="empty", kind="dir"),
        "main": Entry(path="main", kind="symlink", target="src/main.py", mode=0o777),
    }
    return store.put_bytes(canonical(entries.values())), entries


def test_a_snapshot_is_made_of_hard_links_to_the_blobs(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    manifest, entries = snapshot_of(store)

    tree = materialise(store, manifest, tmp_path / "snapshots")

    main = entries["src/main.py"].hash or ""
    assert os.stat(tree / "src/main.py").st_ino == os.stat(store.path(main)).st_ino
    assert os.stat(tree / "src/copy.py").st_ino == os.stat(store.path(main)).st_ino
    assert (tree / "src/main.py").read_bytes() == b"print('hi')\n"
    assert os.stat(tree / "run.sh").st_mode & 0o777 == 0o755
    assert os.stat(tree / "src/main.py").st_mode & 0o777 == 0o644
    assert (tree / "empty").is_dir() and not any((tree / "empty").iterdir())
    assert os.readlink(tree / "main") == "src/main.py"
    assert sorted(p.name for p in (tmp_path / "snapshots").iterdir()) == [
        manifest,
        f"{manifest}.lock",
        "tmp",
    ]
    assert materialise(store, manifest, tmp_path / "snapshots") == tree  # made once


def test_the_agent_runner_takes_a_workspace_snapshot_as_its_base_tree(tmp_path: Path) -> None:
    data = tmp_path / "data"
    manifest, _ = snapshot_of(BlobStore(data / "blobs"))
    runner = AgentRunner(AgentRunnerSettings(data_dir=data))

    tree = runner.base_tree(repo_of("ab" * 16, 3), manifest)

    assert tree == data / "snapshots" / manifest
    assert (tree / "src/main.py").read_text() == "print('hi')\n"
