"""Folders renamed whole, told from a change: sent as one rename, not a file-by-file move."""

from __future__ import annotations

from collections.abc import Container, Iterable

from sync.manifests import Entry

Shape = tuple[tuple[str, str, str | None, int, str | None], ...]


def _tops(paths: Iterable[str]) -> dict[str, list[str]]:
    """Each path of `paths` whose folder is not among them, with what it holds among them."""
    named = set(paths)
    groups: dict[str, list[str]] = {}
    for path in sorted(named):
        top, parts = path, path.split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in named:
                top = "/".join(parts[:depth])
                break
        groups.setdefault(top, []).append(path)
    return groups


def roots(paths: Iterable[str]) -> list[str]:
    """`paths` without those beneath another of them: deleting a folder deletes what it holds."""
    return sorted(_tops(paths))


def _folders(paths: Iterable[str]) -> dict[str, list[str]]:
    """Each of `paths` with what it holds among them (a path holds itself)."""
    named = set(paths)
    groups: dict[str, list[str]] = {path: [] for path in named}
    for path in named:
        parts = path.split("/")
        for depth in range(1, len(parts) + 1):
            above = "/".join(parts[:depth])
            if above in named:
                groups[above].append(path)
    return groups


def _shape(top: str, entries: list[Entry]) -> Shape:
    cut = len(top)
    return tuple(sorted((e.path[cut:], e.kind, e.hash, e.mode, e.target) for e in entries))


def find_renames(
    gone: dict[str, Entry], changes: list[Entry], known: Container[str]
) -> tuple[list[Entry], list[str], list[tuple[str, str]]]:
    """`changes`, and the deleted paths (`gone`, with their entries), with each folder that
    reappears elsewhere, exactly as it was (every name, content and mode beneath it), taken
    out and named as (from, to) instead; `known` holds the paths the server has.

    Only whole folders count: one file moved is a deletion and an entry either way. Costs
    one pass over the change."""
    deleted = sorted(gone)
    shapes = {
        top: _shape(top, [gone[p] for p in held])
        for top, held in _tops(deleted).items()
        if gone[top].kind == "dir" and len(held) > 1
    }
    if not shapes:
        return changes, deleted, []
    by_path = {e.path: e for e in changes}
    wanted: dict[Shape, list[str]] = {}
    for top, shape in shapes.items():
        wanted.setdefault(shape, []).append(top)
    sizes = {len(shape) for shape in wanted}
    moves: list[tuple[str, str]] = []
    for top, held in sorted(_folders(p for p in by_path if p not in known).items()):
        if (
            len(held) not in sizes
            or by_path[top].kind != "dir"
            or _inside(top, {m[1] for m in moves})
        ):
            continue
        candidates = wanted.get(_shape(top, [by_path[p] for p in held]))
        if candidates:
            moves.append((candidates.pop(), top))
    if not moves:
        return changes, deleted, []

    sources, targets = {m[0] for m in moves}, {m[1] for m in moves}
    return (
        [e for e in changes if not _inside(e.path, targets)],
        [p for p in deleted if not _inside(p, sources)],
        sorted(moves),
    )


def _inside(path: str, tops: set[str]) -> bool:
    parts = path.split("/")
    return any("/".join(parts[:depth]) in tops for depth in range(1, len(parts) + 1))
