"""A live attempt's diff in two parts: the developer's saves that flowed into its sandbox
(the changes from the checkout), and the agent's own work on top of them."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from sandbox.base import Change
from sandbox.diff import Budget, Changes, Reader, TooLarge, unified_diff
from sandbox.diff import Entry as DiffEntry
from sync.base import LocalBlobs
from sync.manifests import Entry

Tree = Mapping[str, Entry | None]


@dataclass(frozen=True)
class SplitDiff:
    """`agent`: the sandbox against the base with the checkout's saves in it; `checkout`: those
    saves against the base. `paths`: the paths the checkout changed."""

    agent: str
    checkout: str
    paths: list[str]


def split_diff(
    base: Mapping[str, Entry],
    from_checkout: Tree,
    candidates: Iterable[str],
    now: Callable[[str], Entry | None],
    sandbox: Reader,
    blobs: LocalBlobs,
    budget: Budget,
) -> SplitDiff:
    """`from_checkout`: what the link last wrote at each path from the checkout (None: deleted);
    `candidates`: paths the sandbox may have changed from the base; `now(path)`: the sandbox's
    entry there, hashed; `sandbox(path)`: its content, for the diff."""
    theirs = {p: e for p, e in from_checkout.items() if e != base.get(p)}

    def over(path: str) -> Entry | None:
        return theirs[path] if path in theirs else base.get(path)

    def stored(entry: Entry | None) -> DiffEntry | TooLarge | None:
        if entry is None or entry.kind == "dir":
            return None
        if entry.kind == "symlink":
            return DiffEntry(os.fsencode(entry.target or ""), "120000")
        mode = "100755" if entry.mode & 0o111 else "100644"
        if not budget.take(entry.size):
            return TooLarge(entry.size, mode)
        return DiffEntry(blobs.read(entry.hash or ""), mode)

    checkout = unified_diff(
        Changes(sorted((_change(p, base.get(p), e) for p, e in theirs.items()), key=_path)),
        lambda p: stored(base.get(p)),
        lambda p: stored(theirs[p]),
    )
    mine = [
        _change(p, over(p), here)
        for p in sorted(set(candidates) | set(theirs))
        if (here := now(p)) != over(p)
    ]
    agent = unified_diff(Changes(mine), lambda p: stored(over(p)), sandbox)
    return SplitDiff(agent, checkout, sorted(theirs))


def _change(path: str, before: Entry | None, after: Entry | None) -> Change:
    if before is None:
        return Change(path, "added")
    return Change(path, "deleted" if after is None else "modified")


def _path(change: Change) -> str:
    return change.path
