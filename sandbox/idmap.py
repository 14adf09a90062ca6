"""Host ids for sandboxes of a root worker: a mapped user namespace, idmapped bases, fs creds.

A worker running as root must never hand a sandbox host uid 0. Its sandboxes live in a user
namespace whose ids map to an unprivileged host range (`SandboxConfig.host_ids`), the base
tree is shown through an idmapped mount so that its root-owned files belong to that range,
and host-side writes into a sandbox are made with that range's ids as file-system creds.
"""

from __future__ import annotations

import ctypes
import functools
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sandbox.errors import SandboxStartFailed

# The generic syscall table: the same numbers on x86_64 and aarch64.
_OPEN_TREE, _MOVE_MOUNT, _MOUNT_SETATTR = 428, 429, 442
_OPEN_TREE_CLONE = 1
_AT_RECURSIVE = 0x8000
_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_MOUNT_ATTR_RDONLY = 0x1
_MOUNT_ATTR_IDMAP = 0x00100000
_MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)
_lock = threading.Lock()


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def _syscall(number: int, *args: object) -> int:
    result = int(_libc.syscall(number, *args))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def privileged() -> bool:
    """Whether this process is host root: then sandboxes need the mapped range."""
    return os.geteuid() == 0


@functools.cache
def mapped_userns(first: int, count: int) -> int:
    """An fd of a user namespace whose ids 0..count-1 are host ids first..first+count-1.

    Made once per process and kept open: every sandbox of this worker enters it. Host uid 0
    has no id in it, so nothing in it can act as host root."""
    with _lock:
        maker = subprocess.Popen(
            ["unshare", "--user", "sh", "-c", "echo ready; read -r _ || true"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin"},
        )
        assert maker.stdin is not None and maker.stdout is not None
        try:
            if maker.stdout.readline() != b"ready\n":
                raise SandboxStartFailed("could not make the sandboxes' user namespace")
            for name in ("uid_map", "gid_map"):
                Path(f"/proc/{maker.pid}/{name}").write_text(f"0 {first} {count}\n")
            return os.open(f"/proc/{maker.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise SandboxStartFailed(
                f"could not map the sandboxes' ids to host ids {first}..{first + count - 1}: "
                f"{exc}; choose another range with sandbox host_ids"
            ) from exc
        finally:
            maker.stdin.close()
            maker.wait()
            maker.stdout.close()


def attach_clone(source: Path, target: Path, userns_fd: int | None) -> None:
    """Mount a read-only clone of `source` on `target`: with `userns_fd`, its owners shifted by
    that namespace's map (host uid 0 shows as the range's first id). Needs host root.

    The mapped ids may not be able to walk to `source` (a root worker's 0700 home); the holder
    starts beside `target` and takes the clone from there."""
    flags = _OPEN_TREE_CLONE | os.O_CLOEXEC | (0 if userns_fd is not None else _AT_RECURSIVE)
    what = "an idmapped mount" if userns_fd is not None else "a bind mount"
    try:
        tree = _syscall(_OPEN_TREE, _AT_FDCWD, os.fsencode(source), flags)
    except OSError as exc:
        raise SandboxStartFailed(f"could not open {source} for {what}: {exc}") from exc
    try:
        set_ = _MOUNT_ATTR_RDONLY | (_MOUNT_ATTR_IDMAP if userns_fd is not None else 0)
        attr = _MountAttr(set_, 0, 0, userns_fd or 0)
        at = _AT_EMPTY_PATH | (0 if userns_fd is not None else _AT_RECURSIVE)
        _syscall(_MOUNT_SETATTR, tree, b"", at, ctypes.byref(attr), ctypes.sizeof(attr))
        _syscall(_MOVE_MOUNT, tree, b"", _AT_FDCWD, os.fsencode(target), _MOVE_MOUNT_F_EMPTY_PATH)
    except OSError as exc:
        raise SandboxStartFailed(
            f"could not show {source} to the sandbox ({what}): {exc}; an idmapped base must be "
            "on a file system that supports them (ext4, xfs, btrfs, tmpfs)"
        ) from exc
    finally:
        os.close(tree)


def detach(target: Path) -> None:
    """Lazily unmount `target` from this mount namespace; absent or not a mount is fine."""
    _libc.umount2(os.fsencode(target), _MNT_DETACH)


@contextmanager
def fs_ids(uid: int | None, gid: int | None) -> Iterator[None]:
    """File-system creds of this thread set to (uid, gid) for the block, then restored.

    setfsuid and setfsgid act on the calling thread only, so other threads keep root."""
    if uid is None or gid is None:
        yield
        return
    old_gid = _libc.setfsgid(gid)
    old_uid = _libc.setfsuid(uid)
    try:
        yield
    finally:
        _libc.setfsuid(old_uid)
        _libc.setfsgid(old_gid)
