"""Errors of the sync package.

SyncError
 +-- UnsafePath
 +-- BlobHashMismatch
 +-- BlobsMissing
 +-- ChunkListInvalid
 +-- StaleVersion
 +-- WorkspaceNotFound
 +-- FileUnstable
 +-- ServerUnreachable
 |    +-- ServerSlow
 +-- ServerRefused
 +-- AccessDenied
 +-- AlreadySyncing
 +-- StorageError
      +-- StorageUnavailable
      +-- ObjectMissing
"""

from __future__ import annotations


class SyncError(Exception):
    """Base of every error the sync package raises."""


class UnsafePath(SyncError, ValueError):
    """Raised when a path or a symlink target would leave the tree, or names .git."""


class BlobHashMismatch(SyncError):
    """Raised when uploaded content does not hash to the name it was sent under (the file
    changed, or went, since it was hashed); `paths` names the files, where they are known."""

    def __init__(self, message: str, paths: list[str] | None = None) -> None:
        super().__init__(message)
        self.paths = paths or []


class BlobsMissing(SyncError):
    """Raised when a manifest names blobs the server does not hold."""

    def __init__(self, missing: list[str]) -> None:
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        super().__init__(f"{len(missing)} blob(s) named by the manifest are missing: {shown}")
        self.missing = missing


class ChunkListInvalid(SyncError, ValueError):
    """Raised when a big file's chunk list cannot describe it (a malformed or oversized chunk,
    sizes that do not add up, the file named as its own chunk): nothing is stored."""


class StaleVersion(SyncError):
    """Raised when a change is made against a version that is no longer the workspace's head."""

    def __init__(self, parent: int, head: int) -> None:
        super().__init__(
            f"the change was made against version {parent} but the workspace is at {head}: "
            "fetch the current manifest and send the change again"
        )
        self.parent = parent
        self.head = head


class WorkspaceNotFound(SyncError):
    """Raised when a workspace id (or a local checkout) names no known workspace."""


class FileUnstable(SyncError):
    """Raised when a file kept changing while it was read, every time it was read."""


class ServerUnreachable(SyncError):
    """Raised when the Autan API cannot be reached; the daemon queues changes and retries."""


class ServerSlow(ServerUnreachable):
    """Raised when the Autan API took the request but did not answer in time: it may still
    apply it, so the daemon retries against the server's head (a stale retry is refused)."""


class ServerRefused(SyncError):
    """Raised when the API answers a sync request with an error the daemon cannot resolve."""


class AccessDenied(SyncError):
    """Raised when the API refuses the token itself (401, 403): retrying cannot help."""


class AlreadySyncing(SyncError):
    """Raised when another daemon already syncs the same checkout."""


class StorageError(SyncError):
    """Raised when the object store refuses a request in a way retrying cannot mend (access
    denied, no such bucket)."""


class StorageUnavailable(StorageError):
    """Raised when the object store cannot be reached, or answers busy, after bounded retries:
    the request may pass later."""


class ObjectMissing(StorageError):
    """Raised when a blob or a stored file is not in the object store."""
