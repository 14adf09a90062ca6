"""Manifests: what a tree holds (path, kind, hash, mode, symlink target, size), checked safe."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sandbox.gitnames import is_git_name
from sync.errors import UnsafePath
from sync.hashing import is_digest

MAX_PATH_BYTES = 1024
"""Longest path (UTF-8 bytes) a manifest may hold: it is indexed in the store."""

MAX_HOPS = 40  # symlinks followed while resolving one target, as Linux's MAXSYMLINKS

Kind = Literal["file", "symlink", "dir"]
FILE_MODES = (0o644, 0o755)


def check_path(path: str) -> str:
    """`path` if it is a clean relative path inside the tree; raises UnsafePath otherwise."""
    if not path or "\0" in path or path.startswith("/"):
        raise UnsafePath(f"{path!r}: a path must be relative, non-empty and without NUL")
    if len(path.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
        raise UnsafePath(f"{path[:60]!r}...: longer than {MAX_PATH_BYTES} bytes")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise UnsafePath(f"{path!r}: empty, '.' and '..' components are not allowed")
        if is_git_name(part):
            raise UnsafePath(f"{path!r}: .git (in any letter case) is never synced")
    return path


class Entry(BaseModel):
    """One path of a tree. Files carry a hash and size; symlinks a relative target."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    kind: Kind
    hash: str | None = None
    mode: int = 0o644
    target: str | None = None
    size: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> Entry:
        check_path(self.path)
        if self.kind == "file":
            if self.hash is None or not is_digest(self.hash):
                raise ValueError(f"{self.path}: a file needs a 64-hex-digit hash")
            if self.mode not in FILE_MODES or self.target is not None:
                raise ValueError(f"{self.path}: a file has mode 0o644 or 0o755 and no target")
        elif self.kind == "symlink":
            if not self.target or "\0" in self.target or self.hash is not None:
                raise ValueError(f"{self.path}: a symlink has a target and no hash")
        elif self.hash is not None or self.target is not None or self.size:
            raise ValueError(f"{self.path}: a directory has no hash, target or size")
        return self


def resolves_inside(path: str, links: Mapping[str, str]) -> bool:
    """Whether the symlink at `path`, followed through the tree's other symlinks, stays inside."""
    stack = path.split("/")[:-1]
    todo = links[path].split("/")
    if links[path].startswith("/"):
        return False
    hops = 0
    while todo:
        part = todo.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not stack:
                return False
            stack.pop()
            continue
        stack.append(part)
        target = links.get("/".join(stack))
        if target is not None:
            hops += 1
            if hops > MAX_HOPS or target.startswith("/"):
                return False
            stack.pop()
            todo = target.split("/") + todo
    return True


def check_parents(path: str, entries: Mapping[str, Entry]) -> None:
    """Raise UnsafePath when a directory above `path` is, in `entries`, a file or a symlink."""
    parts = path.split("/")
    for depth in range(1, len(parts)):
        parent = entries.get("/".join(parts[:depth]))
        if parent is not None and parent.kind != "dir":
            raise UnsafePath(f"{path!r} sits under {parent.path!r}, which is not a directory")


def check_links(links: Mapping[str, str]) -> None:
    """Raise UnsafePath when a symlink, followed through the others, leaves the tree."""
    for path, target in links.items():
        if not resolves_inside(path, links):
            raise UnsafePath(f"symlink {path!r} -> {target!r} points outside the tree")


def check_tree(entries: Mapping[str, Entry]) -> None:
    """Raise UnsafePath when an entry sits under a symlink or a symlink points out of the tree."""
    for path in entries:
        check_parents(path, entries)
    check_links({p: e.target for p, e in entries.items() if e.kind == "symlink" and e.target})


def row(entry: Entry) -> dict[str, Any]:
    """An entry as JSON wants it: the fields that differ from their defaults, path and kind."""
    return entry.model_dump(exclude_defaults=True) | {"path": entry.path, "kind": entry.kind}


def canonical(entries: Iterable[Entry]) -> bytes:
    """The manifest as bytes that hash the same for the same tree (sorted, compact JSON)."""
    ordered = sorted(entries, key=lambda e: e.path)
    rows = [row(e) for e in ordered]
    return json.dumps(rows, sort_keys=True, separators=(",", ":")).encode()


def parse(data: bytes) -> dict[str, Entry]:
    """A manifest made by `canonical`, checked again (it is read from disk)."""
    entries = {row["path"]: Entry.model_validate(row) for row in json.loads(data)}
    check_tree(entries)
    return entries
