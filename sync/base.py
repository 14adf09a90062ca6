"""The sync seam: what the daemon needs of the server it mirrors to."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from sync.manifests import Entry


class Remote(Protocol):
    def register(self, *, key: str, name: str, root: str) -> str:
        """Register the checkout (again); returns the workspace id."""
        ...

    def missing(self, hashes: list[str]) -> list[str]:
        """Which of `hashes` the server lacks."""
        ...

    def upload(self, digest: str, path: Path) -> None:
        """Send the file at `path` as blob `digest`, streamed."""
        ...

    def upload_many(self, blobs: list[tuple[str, Path]]) -> None:
        """Send small files (each at most `sync.batches.MAX_RECORD`) in one request."""
        ...

    def commit(
        self,
        workspace_id: str,
        *,
        parent: int,
        changes: list[Entry],
        deleted: list[str],
        inline: dict[str, bytes] | None = None,
    ) -> int:
        """Make the next version from `parent` (with small new content `inline`, by hash);
        returns the new head."""
        ...

    def manifest(self, workspace_id: str) -> tuple[int, dict[str, Entry]]:
        """The head version and its tree."""
        ...
