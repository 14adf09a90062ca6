"""Trajectories in the shared store: each attempt's whole conversation, uploaded when it ends."""

from __future__ import annotations

import logging
from pathlib import Path

from sync.base import Storage
from sync.errors import StorageError

log = logging.getLogger(__name__)


def key(attempt_id: str) -> str:
    """Where the trajectory of attempt `attempt_id` is stored (a run again replaces it)."""
    return f"trajectories/{attempt_id}.json"


def upload(storage: Storage, attempt_id: str, path: Path, *, keep: bool) -> bool:
    """Send the trajectory saved at `path`; the local file goes unless `keep` (or the upload
    failed: it stays for the operator, and the attempt's result does not wait on it)."""
    if not path.is_file():
        return False
    try:
        storage.put_file(key(attempt_id), path)
    except (StorageError, OSError) as exc:
        log.warning("the trajectory of attempt %s stays at %s: %s", attempt_id, path, exc)
        return False
    if not keep:
        path.unlink(missing_ok=True)
    return True
