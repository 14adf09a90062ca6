"""The scan on real files: ignore rules, .git, symlinks, modes, empty folders, the stamp cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sync import scan as sync_scan
from sync.errors import UnsafePath
from sync.hashing import hash_bytes
from sync.manifests import check_path
from sync.scan import Local, Scan, Scanner


def write(root: Path, path: str, data: str = "x", mode: int = 0o644) -> Path:
    full = root / path
    full.parent.mkdir(parents=True, exist_ok=True)
    full.write_text(data)
    full.chmod(mode)
    return full


def test_nested_gitignore_with_negations_and_autanignore(checkout: Path) -> None:
    write(checkout, ".gitignore", "*.log\nbuild/\n!keep.log\n/top-only.txt\n")
    write(checkout, "a.log")
    write(checkout, "keep.log")
    write(checkout, "top-only.txt")
    write(checkout, "build/out.o")
    write(checkout, "src/build/also.o")  # `build/` matches at any depth
    write(checkout, "src/top-only.txt")  # anchored to the root: kept here
    write(checkout, "src/.gitignore", "!b.log\nsecret.*\n")
    write(checkout, "src/b.log")  # re-included by the deeper file
    write(checkout, "src/c.log")
    write(checkout, "src/secret.key")
    write(checkout, "src/deep/secret.txt")
    write(checkout, ".autanignore", "data/\n!src/c.log\n")
    write(checkout, "data/big.bin")
    write(checkout, "src/deep/.autanignore", "!secret.txt\n")  # .autanignore overrides too
    write(checkout, "main.py", "print(1)\n")

    found = Scanner(checkout).scan({})

    assert sorted(p for p, e in found.entries.items() if e.entry.kind == "file") == [
        ".autanignore",
        ".gitignore",
        "keep.log",
        "main.py",
        "src/.gitignore",
        "src/b.log",
        "src/c.log",
        "src/deep/.autanignore",
        "src/deep/secret.txt",
        "src/top-only.txt",
    ]
    assert found.entries["main.py"].entry.hash == hash_bytes(b"print(1)\n")
    assert found.entries["main.py"].entry.size == 9
    assert "build" not in found.entries and "data" not in found.entries


def test_git_is_always_left_out(checkout: Path) -> None:
    write(checkout, ".git/config", "[core]\n")
    write(checkout, ".git/objects/ab/cd", "blob")
    write(checkout, "sub/.git", "gitdir: ../.git/modules/sub\n")  # a submodule's pointer
    write(checkout, "sub/file.txt")
    write(checkout, ".gitignore", "!.git\n")  # even when a rule asks for it

    found = Scanner(checkout).scan({})

    assert sorted(found.entries) == [".gitignore", "sub", "sub/file.txt"]


def test_git_names_in_any_case_are_left_out_and_said_once(
    checkout: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(checkout, ".GIT/hooks/post-checkout", "#!/bin/sh\nevil\n", 0o755)  # .git on macOS
    write(checkout, "sub/.git/config", "[core]\n")
    write(checkout, "a/.Git", "gitdir: x\n")
    write(checkout, "a/file.txt")
    scanner = Scanner(checkout)

    with caplog.at_level("WARNING", logger="sync.scan"):
        first = scanner.scan({})
        again = scanner.rescan(first.entries, {".GIT/hooks/post-checkout", "a/.Git"}, [])
        scanner.scan(first.entries)

    assert sorted(first.entries) == ["a", "a/file.txt", "sub"]
    assert first.git_names == [".GIT", "a/.Git", "sub/.git"]
    assert sorted(again.entries) == sorted(first.entries)
    assert [r.getMessage() for r in caplog.records] == [
        "not synced, git's own names: .GIT, a/.Git, sub/.git"
    ]
    for path in (".GIT/config", "sub/.Git/hooks/x", ".gIt"):
        with pytest.raises(UnsafePath, match="never synced"):
            check_path(path)


def test_modes_empty_folders_and_symlinks(checkout: Path, tmp_path: Path) -> None:
    write(checkout, "run.sh", "#!/bin/sh\n", mode=0o755)
    write(checkout, "lib/util.py", "", mode=0o600)
    (checkout / "empty" / "nested").mkdir(parents=True)
    (checkout / "link-in").symlink_to("lib/util.py")
    (checkout / "lib" / "up").symlink_to("../run.sh")
    outside = write(tmp_path, "outside.txt", "secret")
    (checkout / "abs-link").symlink_to(outside)
    (checkout / "rel-out").symlink_to("../outside.txt")
    (checkout / "here").symlink_to(".")  # inside: the root itself
    (checkout / "lib" / "sneaky").symlink_to("../here/../outside.txt")  # looks inside; is not
    os.mkfifo(checkout / "fifo")

    found = Scanner(checkout).scan({})
    entries = {p: local.entry for p, local in found.entries.items()}

    assert entries["run.sh"].mode == 0o755 and entries["lib/util.py"].mode == 0o644
    assert entries["empty"].kind == "dir" and entries["empty/nested"].kind == "dir"
    assert entries["link-in"].kind == "symlink" and entries["link-in"].target == "lib/util.py"
    assert entries["lib/up"].target == "../run.sh"
    assert entries["here"].target == "."
    assert sorted(found.refused) == ["abs-link", "lib/sneaky", "rel-out"]
    assert not {"abs-link", "rel-out", "lib/sneaky", "fifo"} & set(entries)


def test_unchanged_files_are_not_read_again(checkout: Path) -> None:
    write(checkout, "a.txt", "one")
    write(checkout, "b.txt", "two")
    scanner = Scanner(checkout)
    first = scanner.scan({})

    (checkout / "b.txt").write_text("three")
    second = scanner.scan(first.entries)

    assert second.entries["a.txt"] is first.entries["a.txt"]  # reused, not re-hashed
    assert second.entries["b.txt"].entry.hash == hash_bytes(b"three")


def test_rescan_reads_only_the_paths_named(checkout: Path) -> None:
    write(checkout, "keep/a.txt", "a")
    write(checkout, "gone/b.txt", "b")
    scanner = Scanner(checkout)
    first = scanner.scan({})

    (checkout / "gone" / "b.txt").unlink()
    (checkout / "gone").rmdir()
    write(checkout, "new/dir/c.txt", "c")
    (checkout / "keep" / "a.txt").chmod(0o755)
    again = scanner.rescan(first.entries, {"gone", "gone/b.txt", "new/dir/c.txt", "keep/a.txt"}, [])

    assert sorted(again.entries) == ["keep", "keep/a.txt", "new", "new/dir", "new/dir/c.txt"]
    assert again.entries["keep/a.txt"].entry.mode == 0o755


@pytest.mark.parametrize("ignore_file", [".gitignore", ".autanignore"])
def test_a_changed_ignore_file_rescans_everything(checkout: Path, ignore_file: str) -> None:
    write(checkout, "a.tmp")
    write(checkout, "b.txt")
    scanner = Scanner(checkout)
    first = scanner.scan({})
    write(checkout, ignore_file, "*.tmp\n")

    again = scanner.rescan(first.entries, {ignore_file}, [])

    assert sorted(again.entries) == [ignore_file, "b.txt"]


class RenamingScanner(Scanner):
    """Renames `one/` to `two/` just as the rescan turns to `one` (as an editor or `git
    checkout` running beside the daemon can), after it has already seen `one/sub`."""

    def _one(self, path: str, known: dict[str, Local], found: Scan) -> None:
        if path == "one" and (self.root / "one").exists():
            (self.root / "one").rename(self.root / "two")
        super()._one(path, known, found)


def test_a_folder_renamed_away_mid_rescan_leaves_no_orphans(checkout: Path) -> None:
    write(checkout, "one/sub/deep.txt")
    write(checkout, "keep.txt")
    known = Scanner(checkout).scan({}).entries
    del known["one"], known["one/sub"], known["one/sub/deep.txt"]  # as if `one/` was new

    found = RenamingScanner(checkout).rescan(known, {"one/sub/deep.txt", "one/sub"}, [])

    assert sorted(found.entries) == ["keep.txt"]  # its renaming's own event brings `two/`
    for path in found.entries:  # every entry's folder is in the tree (the server insists)
        folder = os.path.dirname(path)
        assert not folder or found.entries[folder].entry.kind == "dir"


def test_editor_lock_and_swap_files_are_left_out_unless_re_included(checkout: Path) -> None:
    for path in (".#notes.txt", "src/.main.py.swp", "src/main.py~", "src/4913", "src/main.py"):
        write(checkout, path)
    write(checkout, "keep/.backup~")
    write(checkout, "keep/.autanignore", "!*~\n")  # a `!` line brings them back where wanted

    found = Scanner(checkout).scan({})

    assert sorted(found.entries) == [
        "keep", "keep/.autanignore", "keep/.backup~", "src", "src/main.py",
    ]  # fmt: skip


def test_a_refused_symlink_is_warned_once_and_again_when_it_changes(
    checkout: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (checkout / "out").symlink_to(tmp_path)
    write(checkout, "a.txt")
    scanner = Scanner(checkout)

    with caplog.at_level("WARNING", logger="sync.scan"):
        first = scanner.scan({})
        for _ in range(3):
            again = scanner.scan(first.entries)
            scanner.rescan(again.entries, {"out", "a.txt"}, again.refused)
        (checkout / "out").unlink()
        (checkout / "out").symlink_to("/etc")
        last = scanner.scan(first.entries)

    assert first.refused == again.refused == last.refused == ["out"]
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2, warned
    assert str(tmp_path) in warned[0] and "-> /etc" in warned[1]


def test_files_of_a_renamed_folder_are_not_read_again(
    checkout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(5):
        write(checkout, f"src/sub/f{n}.txt", f"file {n}\n")
    write(checkout, "top.txt", "top\n")
    scanner = Scanner(checkout)
    first = scanner.scan({})
    (checkout / "lib").mkdir()
    os.rename(checkout / "src", checkout / "lib" / "src")
    write(checkout, "lib/src/sub/f0.txt", "edited after the move\n")
    (checkout / "top.txt").unlink()
    write(checkout, "lib/new.txt", "top\n")  # the same content under a new inode: read
    read: list[str] = []
    real = sync_scan.hash_file

    def counting(path: Path, tries: int = 3) -> tuple[str, os.stat_result]:
        read.append(str(path.relative_to(checkout)))
        return real(path, tries)

    monkeypatch.setattr(sync_scan, "hash_file", counting)
    after = scanner.scan(first.entries)

    assert sorted(read) == ["lib/new.txt", "lib/src/sub/f0.txt"]
    for n in range(1, 5):
        moved = after.entries[f"lib/src/sub/f{n}.txt"].entry
        assert (moved.path, moved.hash) == (
            f"lib/src/sub/f{n}.txt",
            hash_bytes(f"file {n}\n".encode()),
        )
    assert after.entries["lib/src/sub/f0.txt"].entry.hash == hash_bytes(b"edited after the move\n")
