"""Which paths the daemon leaves out: nested .gitignore and .autanignore files, editors' lock
and swap files, and always .git (in any letter case, at any depth)."""

from __future__ import annotations

from pathlib import Path

from pathspec import GitIgnoreSpec

from sandbox.gitnames import has_git_name

IGNORE_FILES = (".gitignore", ".autanignore")
"""Read in this order in each directory, so .autanignore can override .gitignore."""

EDITOR_FILES = (".#*", "*.swp", "*~", "4913")
"""Editors' lock, swap and backup files (emacs, vim, and vim's probe of a writable folder):
left out by default, as if the top `.gitignore` began with them (a `!` line re-includes)."""

CONFLICT_MARK = ".autan-"
"""In the name of conflict copies (`PATH.autan-<task>`) and of temporaries being written:
they stay on the developer's disk and are never synced."""


class IgnoreRules:
    """Git's rules: a deeper file overrides a shallower one, and the last match in a file wins."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._specs: dict[str, GitIgnoreSpec | None] = {}

    def spec(self, directory: str) -> GitIgnoreSpec | None:
        """The patterns of `directory` (relative, "" for the root), read once."""
        if directory not in self._specs:
            lines: list[str] = [] if directory else list(EDITOR_FILES)
            for name in IGNORE_FILES:
                lines += self.read_lines(directory, name)
            self._specs[directory] = GitIgnoreSpec.from_lines(lines) if lines else None
        return self._specs[directory]

    def read_lines(self, directory: str, name: str) -> list[str]:
        try:
            return (self.root / directory / name).read_text(errors="replace").splitlines()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return []

    def ignored(self, path: str, is_dir: bool) -> bool:
        """Whether `path` is left out by its own name; its parents are the walk's business."""
        parts = path.split("/")
        if has_git_name(path) or CONFLICT_MARK in parts[-1]:
            return True
        result = False
        for depth in range(len(parts)):
            spec = self.spec("/".join(parts[:depth]))
            if spec is None:
                continue
            below = "/".join(parts[depth:]) + ("/" if is_dir else "")
            include = spec.check_file(below).include
            if include is not None:
                result = include
        return result

    def ignored_with_parents(self, path: str, is_dir: bool) -> bool:
        """Whether `path` or any directory above it is left out."""
        parts = path.split("/")
        for depth in range(1, len(parts)):
            if self.ignored("/".join(parts[:depth]), True):
                return True
        return self.ignored(path, is_dir)
