"""Git's own names: a path with a `.git` component, in any letter case, is never content.

A case-insensitive file system (macOS, Windows) takes `.GIT/hooks/x` for `.git/hooks/x`, and
git refuses such paths in a tree anyway; so diffs, sync and pushes all leave them out.
"""

from __future__ import annotations


def is_git_name(name: str) -> bool:
    """Whether one path component is `.git` in some letter case."""
    return name.casefold() == ".git"


def has_git_name(path: str) -> bool:
    """Whether any component of the relative path `path` is `.git` in some letter case."""
    return any(is_git_name(part) for part in path.split("/"))
