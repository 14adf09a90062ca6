"""Reading the local tree into entries: walk, honour ignores, hash only what changed."""

from __future__ import annotations

import logging
import os
import stat as stat_mode
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.gitnames import has_git_name, is_git_name
from sync.errors import FileUnstable
from sync.hashing import hash_file, stamp
from sync.ignore import IGNORE_FILES, IgnoreRules
from sync.manifests import MAX_PATH_BYTES, Entry
from sync.text import is_line

log = logging.getLogger(__name__)

Stamp = tuple[int, int, int, int]


@dataclass(frozen=True)
class Local:
    """An entry as found on disk, with the stamp that lets the next scan skip re-hashing it."""

    entry: Entry
    stamp: Stamp = (0, 0, 0, 0)


@dataclass
class Scan:
    """What one walk found: entries, symlinks refused, files that would not hold still."""

    entries: dict[str, Local] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    unstable: list[str] = field(default_factory=list)
    git_names: list[str] = field(default_factory=list)
    """Paths left out for naming `.git` (in some letter case) below the top."""
    touched: set[str] | None = None
    """The paths a partial rescan read or dropped (None: a whole scan, anything may differ)."""


class Scanner:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.rules = IgnoreRules(self.root)
        self._moved: tuple[dict[str, Local], dict[Stamp, Local]] | None = None
        """Files of the last `known` by stamp, built at the first path it lacks."""
        self.reported: set[str] = set()
        """Git names and refused symlinks already logged: each is said once while the daemon
        runs (a symlink again if its target changes)."""

    def scan(self, known: dict[str, Local]) -> Scan:
        """The whole tree; `known` supplies hashes of files whose stamp has not changed."""
        self.rules = IgnoreRules(self.root)  # ignore files are read afresh on every full scan
        self._moved = None
        found = Scan()
        self._walk("", known, found)
        new = [p for p in found.git_names if p not in self.reported]
        if new:
            log.warning("not synced, git's own names: %s", ", ".join(new))
            self.reported.update(new)
        return found

    def rescan(self, current: dict[str, Local], paths: set[str], refused: list[str]) -> Scan:
        """`current` with `paths` (and everything beneath them) read again from disk."""
        if any(os.path.basename(path) in IGNORE_FILES for path in paths):
            return self.scan(current)  # the rules changed: everything may have
        self._moved = None
        found = Scan(entries=dict(current), refused=[r for r in refused if r not in paths])
        found.touched = set()
        for path in sorted(paths):
            if has_git_name(path):
                continue
            found.touched.add(path)
            old = found.entries.pop(path, None)
            if old is not None and old.entry.kind == "dir":
                prefix = path + "/"
                for gone in [p for p in found.entries if p.startswith(prefix)]:
                    del found.entries[gone]
                    found.touched.add(gone)
            self._one(path, current, found)
        return found

    def _one(self, path: str, known: dict[str, Local], found: Scan) -> None:
        try:
            st = os.lstat(self.root / path)
        except (FileNotFoundError, NotADirectoryError):
            return
        is_dir = stat_mode.S_ISDIR(st.st_mode)
        if self.rules.ignored_with_parents(path, is_dir):
            return
        parent = os.path.dirname(path)
        if parent and parent not in found.entries:
            self._one(parent, known, found)  # a new directory: its walk finds `path` too
            if path in found.entries:
                return
        folder = found.entries.get(parent) if parent else None
        if parent and (folder is None or folder.entry.kind != "dir"):
            # The folder went (or changed kind) between the two looks: renamed away mid-scan.
            # Its own event brings it back; an entry without its folder would be refused.
            return
        self._add(path, st, known, found)

    def _walk(self, directory: str, known: dict[str, Local], found: Scan) -> None:
        try:
            with os.scandir(self.root / directory) as listing:
                names = sorted(entry.name for entry in listing)
        except (FileNotFoundError, NotADirectoryError):
            return
        for name in names:
            path = f"{directory}/{name}" if directory else name
            try:
                st = os.lstat(self.root / path)
            except FileNotFoundError:
                continue
            if is_git_name(name):
                if path != ".git":  # the checkout's own is expected; any other is news
                    found.git_names.append(path)
                continue
            if self.rules.ignored(path, stat_mode.S_ISDIR(st.st_mode)):
                continue
            self._add(path, st, known, found)

    def _add(self, path: str, st: os.stat_result, known: dict[str, Local], found: Scan) -> None:
        if found.touched is not None:
            found.touched.add(path)
        if len(path.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
            log.warning("%s: path longer than %d bytes, not synced", path, MAX_PATH_BYTES)
        elif not is_line(path):
            # The server refuses such a path (422), and one refused entry would stop every sync.
            self._warn_once(
                path, "%r: a control character or a byte not UTF-8 in the path, not synced", path
            )
        elif stat_mode.S_ISDIR(st.st_mode):
            found.entries[path] = Local(Entry(path=path, kind="dir"))
            self._walk(path, known, found)
        elif stat_mode.S_ISLNK(st.st_mode):
            self._link(path, found)
        elif stat_mode.S_ISREG(st.st_mode):
            self._file(path, st, known, found)

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        """A warning about something that stays as it is is said once, not on every rescan."""
        if key not in self.reported:
            self.reported.add(key)
            log.warning(message, *args)

    def _link(self, path: str, found: Scan) -> None:
        full = self.root / path
        try:
            target = os.readlink(full)
        except OSError:  # gone, or no longer a symlink, since it was listed
            return
        real = os.path.realpath(full)
        inside = real == str(self.root) or real.startswith(f"{self.root}/")
        if not is_line(target):
            self._warn_once(
                f"{path}\0{target}",
                "symlink %s: a control character or a byte not UTF-8 in its target, not synced",
                path,
            )
            found.refused.append(path)
            return
        if os.path.isabs(target) or not inside:
            found.refused.append(path)
            self._warn_once(
                f"{path}\0{target}",
                "symlink %s -> %s points outside %s: not synced (make it relative and inside "
                "the tree, or list it in .autanignore)", path, target, self.root,
            )  # fmt: skip
            return
        found.entries[path] = Local(Entry(path=path, kind="symlink", target=target, mode=0o777))

    def _by_stamp(self, known: dict[str, Local], st: os.stat_result) -> Local | None:
        """The file `known` had under another name with this very stamp (the same inode,
        untouched since): what a folder renamed holds, not read again."""
        if self._moved is None or self._moved[0] is not known:
            files = {local.stamp: local for local in known.values() if local.entry.kind == "file"}
            self._moved = (known, files)
        return self._moved[1].get(stamp(st))

    def _file(self, path: str, st: os.stat_result, known: dict[str, Local], found: Scan) -> None:
        mode = 0o755 if st.st_mode & stat_mode.S_IXUSR else 0o644
        before = known.get(path)
        folder = os.path.dirname(path)
        if before is None and folder and folder not in known:  # in a folder new here
            moved = self._by_stamp(known, st)
            if moved is not None:
                before = Local(moved.entry.model_copy(update={"path": path}), moved.stamp)
        if before is not None and before.stamp == stamp(st) and before.entry.kind == "file":
            if before.entry.mode != mode:
                before = Local(before.entry.model_copy(update={"mode": mode}), before.stamp)
            found.entries[path] = before
            return
        try:
            digest, after = hash_file(self.root / path)
        except FileUnstable as exc:
            log.info("%s", exc)
            found.unstable.append(path)
            return
        except OSError as exc:
            log.warning("%s: cannot read (%s), not synced", path, exc)
            return
        entry = Entry(path=path, kind="file", hash=digest, mode=mode, size=after.st_size)
        found.entries[path] = Local(entry, stamp(after))
