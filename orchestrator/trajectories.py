"""Trajectories in the shared store: each attempt's whole conversation, uploaded when it ends."""

from __future__ import annotations

import logging
import time
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


LEFT_AFTER_S = 300.0
"""Age of a spooled trajectory after which it counts as left behind by a failed upload: an
attempt uploads its own as soon as it is saved, so a younger one may be another's, in flight."""


def upload_left(storage: Storage, spool: Path, *, older_than_s: float = LEFT_AFTER_S) -> int:
    """Send the trajectories earlier uploads left in `spool` (the store was away), removing
    each once sent, so a worker's disk does not keep them; returns how many went."""
    oldest = time.time() - older_than_s
    left = [p for p in sorted(spool.glob("*.json")) if p.stat().st_mtime < oldest]
    sent = sum(upload(storage, path.stem, path, keep=False) for path in left)
    if sent:
        log.info("sent %d trajectory(ies) left on this worker by failed uploads", sent)
    return sent
