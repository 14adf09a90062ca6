"""Three-way merge against the last synced state, and applying it to a tree without losing a byte.

A side that did not change takes the other side's change; identical edits are no
conflict; a true conflict keeps ours where it is and theirs beside it as
`PATH.autan-<label>`. Every write is atomic (a temporary file, fsync, rename), and a
file is replaced or removed only if it still holds what the plan was made from.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sync.errors import FileUnstable, UnsafePath
from sync.hashing import hash_file
from sync.manifests import Entry, check_path

Tree = Mapping[str, Entry]


@dataclass(frozen=True)
class Conflict:
    """Both sides changed `path` differently: ours stays, theirs (if any) goes to `copy`."""

    path: str
    ours: Entry | None
    theirs: Entry | None


@dataclass
class Plan:
    take: list[Entry] = field(default_factory=list)
    delete: list[Entry] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)


def merge(base: Tree, ours: Tree, theirs: Tree) -> Plan:
    """What to do to `ours` so it holds both sides' changes since `base`."""
    plan = Plan()
    for path in sorted(set(base) | set(ours) | set(theirs)):
        b, o, t = base.get(path), ours.get(path), theirs.get(path)
        if o == t or t == b:
            continue  # the same on both sides, or only we changed it
        if o == b and t is not None:
            plan.take.append(t)
        elif o == b and o is not None:
            plan.delete.append(o)  # they deleted what we left alone
        else:
            plan.conflicts.append(Conflict(path, o, t))
    return plan


def copy_path(path: str, label: str) -> str:
    return f"{path}.autan-{label}"


class Applier:
    """Applies a plan under `root`; `source(hash)` is where theirs' content is read from."""

    def __init__(self, root: Path, source: Callable[[str], Path], label: str) -> None:
        self.root = root.resolve()
        self.source = source
        self.label = label
        self.conflicts: list[Conflict] = []
        self.copies: dict[str, str] = {}
        """Each conflicting path and where theirs was kept beside it."""

    def apply(self, plan: Plan, ours: Tree) -> list[Conflict]:
        """Apply `plan`; returns the conflicts, including changes that met a newer local edit."""
        for entry in plan.take:  # parents sort before children
            if self._unchanged(entry.path, ours.get(entry.path)):
                self._write(entry.path, entry)
            else:  # we changed it after the plan was made: theirs goes beside it
                self._conflict(Conflict(entry.path, ours.get(entry.path), entry))
        for entry in sorted(plan.delete, key=lambda e: e.path, reverse=True):
            if entry.kind == "dir":
                self._rmdir(entry.path)
            elif self._unchanged(entry.path, entry):
                self._target(entry.path).unlink(missing_ok=True)
            else:
                self.conflicts.append(Conflict(entry.path, entry, None))  # ours stays
        for conflict in plan.conflicts:
            self._conflict(conflict)
        return self.conflicts

    def _conflict(self, conflict: Conflict) -> None:
        self.conflicts.append(conflict)
        theirs = conflict.theirs
        if theirs is not None and theirs.kind != "dir":
            copy = self._free_copy(conflict.path, theirs)
            if not self._unchanged(copy, theirs.model_copy(update={"path": copy})):
                self._write(copy, theirs.model_copy(update={"path": copy}))
            self.copies[conflict.path] = copy

    def _free_copy(self, path: str, theirs: Entry) -> str:
        """`PATH.autan-<label>`; if that holds an earlier, different conflict copy, the next
        free `PATH.autan-<label>-N` (a newer conflict never overwrites an older copy)."""
        first = copy_path(path, self.label)
        candidate, n = first, 1
        while os.path.lexists(self._target(candidate)):
            if self._unchanged(candidate, theirs.model_copy(update={"path": candidate})):
                return candidate
            n += 1
            candidate = f"{first}-{n}"
        return candidate

    def _target(self, path: str) -> Path:
        """`root/path`, refused when it or a folder on the way leaves the tree."""
        check_path(path)
        target = self.root / path
        parent = os.path.realpath(target.parent)
        if parent != str(self.root) and not parent.startswith(f"{self.root}/"):
            raise UnsafePath(f"{path!r} would be written outside {self.root}")
        return target

    def _unchanged(self, path: str, expected: Entry | None) -> bool:
        """Whether the local `path` still is `expected` (None: absent)."""
        target = self._target(path)
        if not os.path.lexists(target):
            return expected is None
        if expected is None or expected.kind == "dir":
            return expected is not None and target.is_dir() and not target.is_symlink()
        if expected.kind == "symlink":
            return target.is_symlink() and os.readlink(target) == expected.target
        try:
            digest, _ = hash_file(target)
        except (OSError, FileUnstable):
            return False
        return digest == expected.hash

    def _write(self, path: str, entry: Entry) -> None:
        target = self._target(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if entry.kind == "dir":
            target.mkdir(exist_ok=True)
            return
        tmp = target.with_name(f".{target.name}.autan-{uuid.uuid4().hex[:8]}.tmp")
        try:
            if entry.kind == "symlink":
                os.symlink(entry.target or "", tmp)
            else:
                with open(self.source(entry.hash or ""), "rb") as src, open(tmp, "xb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                    dst.flush()
                    os.fsync(dst.fileno())
                os.chmod(tmp, entry.mode)
            os.replace(tmp, target)
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)

    def _rmdir(self, path: str) -> None:
        with contextlib.suppress(OSError):  # gone already, or it holds something new of ours
            self._target(path).rmdir()
