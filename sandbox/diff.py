"""Changes of an overlay's upper layer against its base, and a git-style unified diff of them."""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sandbox.base import Change
from sandbox.paths import RESOLVE_BENEATH, RESOLVE_NO_SYMLINKS, opened, read_beneath

_STRICT = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS


@dataclass(frozen=True)
class Entry:
    """A file's content as git sees it: a regular file (maybe executable) or a symlink."""

    data: bytes
    mode: str  # 100644, 100755 or 120000


def lstat_beneath(root_fd: int, rel: str) -> os.stat_result | None:
    """lstat of `rel` under `root_fd`, never through a symlinked parent; None when absent."""
    parent, _, name = rel.rpartition("/")
    try:
        with opened(root_fd, parent or ".", os.O_PATH | os.O_DIRECTORY, resolve=_STRICT) as fd:
            return os.stat(name, dir_fd=fd, follow_symlinks=False)
    except OSError:
        return None


def read_entry(root_fd: int, rel: str) -> Entry | None:
    st = lstat_beneath(root_fd, rel)
    if st is None:
        return None
    if stat.S_ISLNK(st.st_mode):
        parent, _, name = rel.rpartition("/")
        with opened(root_fd, parent or ".", os.O_PATH | os.O_DIRECTORY, resolve=_STRICT) as fd:
            return Entry(os.fsencode(os.readlink(name, dir_fd=fd)), "120000")
    if not stat.S_ISREG(st.st_mode):
        return None
    mode = "100755" if st.st_mode & 0o111 else "100644"
    return Entry(read_beneath(root_fd, rel, resolve=_STRICT), mode)


def _files_under(root_fd: int, rel: str) -> Iterator[str]:
    try:
        fd = os.open(rel, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=root_fd)
    except OSError:
        return
    try:
        for dirpath, _, files, dfd in os.fwalk(".", dir_fd=fd):
            for name in files:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
                    yield os.path.normpath(f"{rel}/{dirpath}/{name}")
    finally:
        os.close(fd)


def _opaque(dir_fd: int) -> bool:
    with contextlib.suppress(OSError):
        return os.getxattr(f"/proc/self/fd/{dir_fd}", "user.overlay.opaque") == b"y"
    return False


def overlay_changes(upper: str, lower: str, exclude: set[str]) -> list[Change]:
    """Walk only the upper layer: whiteouts are deletions, files are additions or modifications."""
    found: dict[str, str] = {}
    lower_fd = os.open(lower, os.O_PATH | os.O_DIRECTORY)
    upper_fd = os.open(upper, os.O_PATH | os.O_DIRECTORY)
    try:
        for dirpath, dirnames, files, dfd in os.fwalk(upper):
            rel_dir = os.path.relpath(dirpath, upper)
            prefix = "" if rel_dir == "." else rel_dir + "/"
            if not prefix:
                dirnames[:] = [d for d in dirnames if d not in exclude]
                files = [f for f in files if f not in exclude]
            elif _opaque(dfd):
                for gone in _files_under(lower_fd, rel_dir):
                    if lstat_beneath(upper_fd, gone) is None:
                        found[gone] = "deleted"
            for name in dirnames:
                low = lstat_beneath(lower_fd, prefix + name)
                if low is not None and not stat.S_ISDIR(low.st_mode):
                    found[prefix + name] = "deleted"
            for name in files:
                _classify(
                    prefix + name,
                    os.stat(name, dir_fd=dfd, follow_symlinks=False),
                    upper_fd,
                    lower_fd,
                    found,
                )
    finally:
        os.close(lower_fd)
        os.close(upper_fd)
    return [Change(path, status) for path, status in sorted(found.items())]  # type: ignore[arg-type]


def _classify(
    rel: str, st: os.stat_result, upper_fd: int, lower_fd: int, found: dict[str, str]
) -> None:
    low = lstat_beneath(lower_fd, rel)
    if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:  # a whiteout: deleted from the base
        if low is not None and stat.S_ISDIR(low.st_mode):
            found.update((f, "deleted") for f in _files_under(lower_fd, rel))
        elif low is not None:
            found[rel] = "deleted"
        return
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
        return
    if low is None:
        found[rel] = "added"
    elif stat.S_ISDIR(low.st_mode):
        found.update((f, "deleted") for f in _files_under(lower_fd, rel))
        found[rel] = "added"
    elif read_entry(upper_fd, rel) != read_entry(lower_fd, rel):
        found[rel] = "modified"


Reader = Callable[[str], Entry | None]


def _key(entry: Entry) -> str:
    return entry.mode + hashlib.sha1(entry.data).hexdigest()


def unified_diff(changes: list[Change], old: Reader, new: Reader) -> str:
    """A git-style patch: renames found by identical content, binary files named, not shown."""
    olds = {c.path: old(c.path) for c in changes if c.status != "added"}
    news = {c.path: new(c.path) for c in changes if c.status != "deleted"}
    gone = {_key(e): p for p, e in olds.items() if e is not None and p not in news}
    renames: dict[str, str] = {}
    for path, entry in news.items():
        if path not in olds and entry is not None and _key(entry) in gone:
            renames[path] = gone.pop(_key(entry))
    moved = set(renames.values())
    out: list[str] = []
    for change in changes:
        path = change.path
        if path in moved:
            continue
        if path in renames:
            source = renames[path]
            out.append(f"diff --git a/{source} b/{path}\nsimilarity index 100%\n")
            out.append(f"rename from {source}\nrename to {path}\n")
            continue
        out.append(_one(path, olds.get(path), news.get(path)))
    return "".join(out)


def _blob_id(entry: Entry | None) -> str:
    if entry is None:
        return "0" * 40
    return hashlib.sha1(b"blob %d\0" % len(entry.data) + entry.data).hexdigest()


def _binary(data: bytes) -> bool:
    if b"\0" in data[:8000]:
        return True
    try:
        data.decode()
    except UnicodeDecodeError:
        return True
    return False


def _one(path: str, before: Entry | None, after: Entry | None) -> str:
    head = [f"diff --git a/{path} b/{path}\n"]
    if before is None and after is not None:
        head.append(f"new file mode {after.mode}\n")
    elif after is None and before is not None:
        head.append(f"deleted file mode {before.mode}\n")
    elif before is not None and after is not None and before.mode != after.mode:
        head.append(f"old mode {before.mode}\nnew mode {after.mode}\n")
    a = before.data if before else b""
    b = after.data if after else b""
    if a == b:
        return "".join(head)
    same_mode = f" {after.mode}" if before and after and before.mode == after.mode else ""
    head.append(f"index {_blob_id(before)}..{_blob_id(after)}{same_mode}\n")
    src = f"a/{path}" if before else "/dev/null"
    dst = f"b/{path}" if after else "/dev/null"
    if _binary(a) or _binary(b):
        return "".join([*head, f"Binary files {src} and {dst} differ\n"])
    lines = difflib.unified_diff(
        a.decode().splitlines(keepends=True), b.decode().splitlines(keepends=True), src, dst
    )
    body = []
    for line in lines:
        if not line.endswith("\n"):
            line += "\n\\ No newline at end of file\n"
        body.append(line)
    return "".join(head + body)
