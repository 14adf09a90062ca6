"""The local sync daemon and the server side of workspaces: blobs, manifests, snapshots."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sync.base import Remote
    from sync.blobs import BlobStore
    from sync.config import DaemonConfig, SyncSettings
    from sync.daemon import SyncDaemon
    from sync.errors import SyncError
    from sync.manifests import Entry
    from sync.remote import HttpRemote
    from sync.snapshots import materialise

# Imported on first use: the worker needs snapshots, not watchdog; the daemon needs no database.
_HOMES = {
    "Remote": "base",
    "BlobStore": "blobs",
    "DaemonConfig": "config",
    "SyncSettings": "config",
    "SyncDaemon": "daemon",
    "SyncError": "errors",
    "Entry": "manifests",
    "HttpRemote": "remote",
    "materialise": "snapshots",
}

__all__ = [
    "BlobStore",
    "DaemonConfig",
    "Entry",
    "HttpRemote",
    "Remote",
    "SyncDaemon",
    "SyncError",
    "SyncSettings",
    "materialise",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'sync' has no attribute {name!r}")
    return getattr(importlib.import_module(f"sync.{_HOMES[name]}"), name)
