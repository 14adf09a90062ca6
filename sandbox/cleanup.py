"""Finding and removing sandboxes whose worker died without closing them."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from pathlib import Path

from sandbox import cgroups, idmap


def reap_orphans(root: Path) -> list[str]:
    """Remove every sandbox under `root` that no live process holds; return their ids.

    A live sandbox keeps an exclusive lock on its `lock` file; the kernel drops it when its
    worker dies, however it dies. The namespace (and so every mount) died with the holder,
    whose stdin closed with the worker; what may be left is processes, cgroups, directories.
    """
    reaped: list[str] = []
    if not root.is_dir():
        return reaped
    for entry in sorted(root.iterdir()):
        lock = entry / "lock"
        if entry.name.startswith(".") or not lock.exists():
            continue
        try:
            fd = os.open(lock, os.O_RDWR)
        except PermissionError:
            continue  # another user's sandbox (a root worker's, under a shared root)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # alive
        try:
            with contextlib.suppress(OSError):
                cgroups.remove_cgroup(cgroups.orphan_dirs(entry.name))
            for mount in [entry / "lower", *entry.glob("ro[0-9]*")]:
                idmap.detach(mount)  # a root worker that died while starting a holder
            shutil.rmtree(entry, ignore_errors=True)
            reaped.append(entry.name)
        finally:
            os.close(fd)
    return reaped
