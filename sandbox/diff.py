"""Changes of an overlay's upper layer against its base, and a git-style unified diff of them.

Every read here is of content a sandboxed command controls, so each is bounded: only regular
files and symlinks are read, never opened in a way that blocks, at most `per_file` bytes each
by apparent size, and `total` bytes in one walk (`Budget`). A file over the bound is named in
the diff by a `file too large` line that `git apply` passes over, like git's own
`Binary files ... differ`; paths that name `.git` are left out and named at the end.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from sandbox.base import Change
from sandbox.errors import FileTooLarge, NotRegularFile
from sandbox.gitnames import is_git_name
from sandbox.paths import RESOLVE_BENEATH, RESOLVE_NO_SYMLINKS, open_regular, opened, read_fd

_STRICT = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS
_CHUNK = 1 << 20
TOO_LARGE = "file too large"
GIT_NAME = "git's own name"
_NOTE = re.compile(rf"^({TOO_LARGE}|{GIT_NAME}): (.*?)(?: \(\d+ bytes\))?, not in this diff$", re.M)


class Budget:
    """What one walk may still read of sandbox files: `per_file` bytes of any one, `total` in
    all. Sizes are apparent sizes, so a sparse file is taken at its full length."""

    def __init__(self, per_file: int, total: int) -> None:
        self.per_file = per_file
        self.left = total

    def take(self, size: int, files: int = 1) -> bool:
        """Spend `files` times `size` bytes if files of that size may still be read; False
        spends nothing."""
        if size > self.per_file or size * files > self.left:
            return False
        self.left -= size * files
        return True


@dataclass(frozen=True)
class Entry:
    """A file's content as git sees it: a regular file (maybe executable) or a symlink."""

    data: bytes
    mode: str  # 100644, 100755 or 120000


@dataclass(frozen=True)
class TooLarge:
    """A regular file left unread: over the per-file bound, or past the walk's budget."""

    size: int
    mode: str


@dataclass
class Changes:
    """What differs from the base, and the paths left out because they name `.git`."""

    changes: list[Change] = field(default_factory=list)
    git_names: list[str] = field(default_factory=list)


def _mode(st: os.stat_result) -> str:
    return "100755" if st.st_mode & 0o111 else "100644"


def lstat_beneath(root_fd: int, rel: str) -> os.stat_result | None:
    """lstat of `rel` under `root_fd`, never through a symlinked parent; None when absent."""
    parent, _, name = rel.rpartition("/")
    try:
        with opened(root_fd, parent or ".", os.O_PATH | os.O_DIRECTORY, resolve=_STRICT) as fd:
            return os.stat(name, dir_fd=fd, follow_symlinks=False)
    except OSError:
        return None


def _readlink(root_fd: int, rel: str) -> bytes:
    parent, _, name = rel.rpartition("/")
    with opened(root_fd, parent or ".", os.O_PATH | os.O_DIRECTORY, resolve=_STRICT) as fd:
        return os.fsencode(os.readlink(name, dir_fd=fd))


def read_entry(root_fd: int, rel: str, budget: Budget) -> Entry | TooLarge | None:
    """`rel` as git sees it; None when absent or neither a regular file nor a symlink."""
    st = lstat_beneath(root_fd, rel)
    if st is None:
        return None
    if stat.S_ISLNK(st.st_mode):
        return Entry(_readlink(root_fd, rel), "120000")
    if not stat.S_ISREG(st.st_mode):
        return None
    try:
        fd, st = open_regular(root_fd, rel, _STRICT, nofollow=True)
    except (OSError, NotRegularFile):  # changed kind (or went) since the lstat
        return None
    try:
        if not budget.take(st.st_size):
            return TooLarge(st.st_size, _mode(st))
        try:
            return Entry(read_fd(fd, rel, st.st_size), _mode(st))
        except FileTooLarge:  # it grew while read
            return TooLarge(st.st_size, _mode(st))
    finally:
        os.close(fd)


def _same_content(a_fd: int, b_fd: int, rel: str, budget: Budget) -> bool:
    """Whether two regular files hold the same bytes; compared a chunk at a time, and only
    when the budget allows (else they count as different, which a diff then marks)."""
    try:
        a, a_st = open_regular(a_fd, rel, _STRICT, nofollow=True)
    except (OSError, NotRegularFile):
        return False
    try:
        b, b_st = open_regular(b_fd, rel, _STRICT, nofollow=True)
    except (OSError, NotRegularFile):
        os.close(a)
        return False
    try:
        if a_st.st_size != b_st.st_size or _mode(a_st) != _mode(b_st):
            return False
        if not budget.take(a_st.st_size, files=2):
            return False
        while True:
            chunk = os.read(a, _CHUNK)
            if chunk != os.read(b, _CHUNK):
                return False
            if not chunk:
                return True
    finally:
        os.close(a)
        os.close(b)


def same_entry(a_fd: int, b_fd: int, rel: str, budget: Budget) -> bool:
    """Whether `rel` is the same file or symlink under both roots (sizes compared first)."""
    a, b = lstat_beneath(a_fd, rel), lstat_beneath(b_fd, rel)
    if a is None or b is None or stat.S_IFMT(a.st_mode) != stat.S_IFMT(b.st_mode):
        return a is None and b is None
    if stat.S_ISLNK(a.st_mode):
        return _readlink(a_fd, rel) == _readlink(b_fd, rel)
    return stat.S_ISREG(a.st_mode) and _same_content(a_fd, b_fd, rel, budget)


def prune(
    prefix: str, dirnames: list[str], files: list[str], exclude: set[str], git_names: list[str]
) -> list[str]:
    """One step of a walk without git's names (at any depth, noted in `git_names`) and without
    `exclude` (top-level names, left out silently): `dirnames` in place, the files returned."""
    top = exclude if not prefix else set()

    def keep(names: list[str]) -> list[str]:
        git_names.extend(prefix + n for n in names if is_git_name(n) and n not in top)
        return [n for n in names if not is_git_name(n) and n not in top]

    dirnames[:] = keep(dirnames)
    return keep(files)


def _files_under(root_fd: int, rel: str) -> Iterator[str]:
    try:
        fd = os.open(rel, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=root_fd)
    except OSError:
        return
    try:
        for dirpath, dirnames, files, dfd in os.fwalk(".", dir_fd=fd):
            files = prune(f"{rel}/", dirnames, files, set(), [])
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


def overlay_changes(upper: str, lower: str, exclude: set[str], budget: Budget) -> Changes:
    """Walk only the upper layer: whiteouts are deletions, files are additions or modifications."""
    found: dict[str, str] = {}
    git_names: list[str] = []
    lower_fd = os.open(lower, os.O_PATH | os.O_DIRECTORY)
    upper_fd = os.open(upper, os.O_PATH | os.O_DIRECTORY)
    try:
        for dirpath, dirnames, files, dfd in os.fwalk(upper):
            rel_dir = os.path.relpath(dirpath, upper)
            prefix = "" if rel_dir == "." else rel_dir + "/"
            files = prune(prefix, dirnames, files, exclude, git_names)
            if prefix and _opaque(dfd):
                for gone in _files_under(lower_fd, rel_dir):
                    if lstat_beneath(upper_fd, gone) is None:
                        found[gone] = "deleted"
            for name in dirnames:
                low = lstat_beneath(lower_fd, prefix + name)
                if low is not None and not stat.S_ISDIR(low.st_mode):
                    found[prefix + name] = "deleted"
            for name in files:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                _classify(prefix + name, st, upper_fd, lower_fd, found, budget)
    finally:
        os.close(lower_fd)
        os.close(upper_fd)
    changes = [Change(path, status) for path, status in sorted(found.items())]  # type: ignore[arg-type]
    return Changes(changes, sorted(git_names))


def _classify(
    rel: str,
    st: os.stat_result,
    upper_fd: int,
    lower_fd: int,
    found: dict[str, str],
    budget: Budget,
) -> None:
    low = lstat_beneath(lower_fd, rel)
    whiteout = stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    if not (whiteout or stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
        # A FIFO, socket or device is nothing git holds: the base's file there is gone.
        if low is not None and not stat.S_ISDIR(low.st_mode):
            found[rel] = "deleted"
        return
    if whiteout:  # deleted from the base
        if low is not None and stat.S_ISDIR(low.st_mode):
            found.update((f, "deleted") for f in _files_under(lower_fd, rel))
        elif low is not None:
            found[rel] = "deleted"
        return
    if low is None:
        found[rel] = "added"
    elif stat.S_ISDIR(low.st_mode):
        found.update((f, "deleted") for f in _files_under(lower_fd, rel))
        found[rel] = "added"
    elif not same_entry(upper_fd, lower_fd, rel, budget):
        found[rel] = "modified"


Reader = Callable[[str], Entry | TooLarge | None]


def _key(entry: Entry) -> str:
    return entry.mode + hashlib.sha1(entry.data).hexdigest()


def unified_diff(changes: Changes, old: Reader, new: Reader) -> str:
    """A git-style patch: renames found by identical content, binary files named, not shown;
    files too large to read, and git's names left out, each named on a line of its own."""
    olds = {c.path: old(c.path) for c in changes.changes if c.status != "added"}
    news = {c.path: new(c.path) for c in changes.changes if c.status != "deleted"}
    gone = {_key(e): p for p, e in olds.items() if isinstance(e, Entry) and p not in news}
    renames: dict[str, str] = {}
    for path, entry in news.items():
        if path not in olds and isinstance(entry, Entry) and _key(entry) in gone:
            renames[path] = gone.pop(_key(entry))
    moved = set(renames.values())
    out: list[str] = []
    for change in changes.changes:
        path = change.path
        if path in moved:
            continue
        if path in renames:
            source = renames[path]
            out.append(f"diff --git a/{source} b/{path}\nsimilarity index 100%\n")
            out.append(f"rename from {source}\nrename to {path}\n")
            continue
        before, after = olds.get(path), news.get(path)
        if isinstance(before, TooLarge) or isinstance(after, TooLarge):
            size = max(e.size for e in (before, after) if isinstance(e, TooLarge))
            out.append(f"{TOO_LARGE}: {path} ({size} bytes), not in this diff\n")
            continue
        out.append(_one(path, before, after))
    out += [f"{GIT_NAME}: {path}, not in this diff\n" for path in changes.git_names]
    return "".join(out)


def left_out(diff: str) -> dict[str, list[str]]:
    """The paths a diff names as left out, by why: `file too large` and `git's own name`."""
    found: dict[str, list[str]] = {}
    for match in _NOTE.finditer(diff):
        found.setdefault(match.group(1), []).append(match.group(2))
    return found


def left_out_note(diff: str) -> str:
    """A paragraph for an attempt's summary naming what its diff left out; "" when nothing."""
    found = left_out(diff)
    if not found:
        return ""
    parts = "; ".join(f"{why}: {', '.join(paths)}" for why, paths in found.items())
    return f"\n\nLeft out of the diff ({parts})."


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
