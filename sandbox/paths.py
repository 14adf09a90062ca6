"""Opening paths beneath a directory the way the kernel does for a chroot (openat2)."""

from __future__ import annotations

import ctypes
import os
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress

from sandbox.errors import FileTooLarge, NotRegularFile, PathOutsideSandbox

RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVEIN_ROOT = 0x10
_SYS_OPENAT2 = 437  # the same number on every architecture (generic syscall table)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)


def openat2(dir_fd: int, path: str, flags: int, *, mode: int = 0, resolve: int) -> int:
    """Open `path` relative to `dir_fd`; `resolve` keeps the walk inside (RESOLVE_* flags)."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    fd = _libc.syscall(
        _SYS_OPENAT2, dir_fd, os.fsencode(path), ctypes.byref(how), ctypes.sizeof(how)
    )
    if fd < 0:
        err = ctypes.get_errno()
        if err == 18:  # EXDEV: the walk would have left the root
            raise PathOutsideSandbox(f"{path!r} resolves outside the sandbox")
        raise OSError(err, os.strerror(err), path)
    return int(fd)


def clean(path: str) -> str:
    """A sandbox path relative to the workspace root; absolute ones are taken from /workspace."""
    path = path.removeprefix("/workspace").lstrip("/")
    return path or "."


@contextmanager
def opened(dir_fd: int, path: str, flags: int, *, mode: int = 0, resolve: int) -> Iterator[int]:
    fd = openat2(dir_fd, path, flags, mode=mode, resolve=resolve)
    try:
        yield fd
    finally:
        os.close(fd)


def open_regular(
    dir_fd: int, path: str, resolve: int, *, nofollow: bool = False, flags: int = os.O_RDONLY
) -> tuple[int, os.stat_result]:
    """An fd of `path` opened with `flags` (for reading, by default) and its fstat, only when
    it is a regular file.

    The first open is O_PATH, which neither blocks on a FIFO nor wakes a device; the file is
    opened for real only after fstat says what it is, through that same fd (so a rename in
    between cannot swap it). O_NONBLOCK besides, should anything else ever get through."""
    how = os.O_PATH | (os.O_NOFOLLOW if nofollow else 0)
    with opened(dir_fd, path, how, resolve=resolve) as probe:
        st = os.fstat(probe)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(f"{path!r} is {kind(st.st_mode)}, not a regular file")
        fd = os.open(f"/proc/self/fd/{probe}", flags | os.O_NONBLOCK | os.O_CLOEXEC)
    return fd, st


def kind(mode: int) -> str:
    """What a stat mode is, in words, for messages."""
    for test, name in KINDS:
        if test(mode):
            return name
    return "an unknown kind of file"


KINDS = [
    (stat.S_ISDIR, "a directory"), (stat.S_ISLNK, "a symlink"), (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
]  # fmt: skip


def read_fd(fd: int, path: str, limit: int) -> bytes:
    """At most `limit` bytes of the open file `fd`; FileTooLarge when there is more (it may grow
    while it is read, whatever fstat said)."""
    chunks, size = [], 0
    while chunk := os.read(fd, min(1 << 20, limit + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise FileTooLarge(f"{path!r} is larger than {limit} bytes: file too large")
    return b"".join(chunks)


def read_beneath(dir_fd: int, path: str, *, limit: int, resolve: int = RESOLVEIN_ROOT) -> bytes:
    """The regular file `path` beneath `dir_fd`, of at most `limit` bytes (by its apparent
    size, so a sparse file counts in full, and that is checked before anything is read)."""
    fd, st = open_regular(dir_fd, path, resolve | RESOLVE_NO_MAGICLINKS)
    try:
        if st.st_size > limit:
            raise FileTooLarge(
                f"{path!r} has {st.st_size} bytes, over the {limit}-byte limit: file too large"
            )
        return read_fd(fd, path, limit)
    finally:
        os.close(fd)


def write_beneath(root_fd: int, path: str, data: bytes, mode: int | None = None) -> None:
    """Create parent directories and write `path`, never leaving the root through a symlink.

    With no `mode`, an existing file keeps its own (an executable stays executable) and a
    new one is made 0644."""
    resolve = RESOLVEIN_ROOT | RESOLVE_NO_MAGICLINKS
    write_parents(root_fd, path.rpartition("/")[0])
    try:  # an existing FIFO or device is refused, never opened for writing (which could block)
        fd, _ = open_regular(root_fd, path, resolve, flags=os.O_WRONLY | os.O_TRUNC)
    except FileNotFoundError:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NONBLOCK
        fd = openat2(root_fd, path, flags, mode=0o644, resolve=resolve)
        mode = 0o644 if mode is None else mode  # the umask must not decide a new file's mode
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if mode is not None:
            os.fchmod(fd, mode)
    finally:
        os.close(fd)


def list_beneath(root_fd: int, path: str) -> list[str]:
    """Entries of a directory, sorted; directories end in `/`."""
    flags = os.O_RDONLY | os.O_DIRECTORY
    with opened(root_fd, path, flags, resolve=RESOLVEIN_ROOT | RESOLVE_NO_MAGICLINKS) as fd:
        names = []
        for entry in os.scandir(fd):
            names.append(entry.name + ("/" if entry.is_dir(follow_symlinks=False) else ""))
        return sorted(names)


IN_ROOT = RESOLVEIN_ROOT | RESOLVE_NO_MAGICLINKS


def _parent(root_fd: int, path: str, *, make: bool) -> tuple[int, str]:
    """An O_PATH fd of `path`'s folder beneath the root (made when `make`), and the last name."""
    parent, _, name = path.rpartition("/")
    if make and parent:
        write_parents(root_fd, parent)
    return openat2(root_fd, parent or ".", os.O_PATH | os.O_DIRECTORY, resolve=IN_ROOT), name


def write_parents(root_fd: int, parent: str) -> None:
    walked = ""
    for part in [p for p in parent.split("/") if p]:
        with (
            opened(root_fd, walked or ".", os.O_PATH | os.O_DIRECTORY, resolve=IN_ROOT) as fd,
            suppress(FileExistsError),
        ):
            os.mkdir(part, 0o755, dir_fd=fd)
        walked = f"{walked}/{part}" if walked else part


def replace_beneath(
    root_fd: int,
    path: str,
    *,
    chunks: Iterable[bytes] = (),
    mode: int = 0o644,
    symlink: str | None = None,
) -> None:
    """Atomically make `path` a file of `chunks` (or a symlink): a temporary name, then a rename
    in the same folder, so a reader sees the old content or the new, never half of it."""
    fd, name = _parent(root_fd, path, make=True)
    tmp = f".{name[:200]}.autan-{os.urandom(4).hex()}.tmp"
    try:
        if symlink is not None:
            os.symlink(symlink, tmp, dir_fd=fd)
        else:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            out = os.open(tmp, flags, mode, dir_fd=fd)
            try:
                for chunk in chunks:
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(out, view) :]
                os.fchmod(out, mode)
            finally:
                os.close(out)
        os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
    finally:
        with suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=fd)
        os.close(fd)


def remove_beneath(root_fd: int, path: str, *, folder: bool = False) -> None:
    """Remove the file or symlink `path`, or with `folder` the empty folder (absent already,
    or a folder that is not empty, is fine); never follows a symlink."""
    try:
        fd, name = _parent(root_fd, path, make=False)
    except (FileNotFoundError, NotADirectoryError, PathOutsideSandbox):
        return
    try:
        if folder:
            with suppress(OSError):  # gone, or it holds something
                os.rmdir(name, dir_fd=fd)
        else:
            with suppress(FileNotFoundError):
                os.unlink(name, dir_fd=fd)
    finally:
        os.close(fd)


def readlink_beneath(root_fd: int, path: str) -> str:
    fd, name = _parent(root_fd, path, make=False)
    try:
        return os.readlink(name, dir_fd=fd)
    finally:
        os.close(fd)


def open_file_beneath(root_fd: int, path: str) -> tuple[int, os.stat_result]:
    """A read fd of the regular file `path` and its fstat; a symlink at `path` itself, a FIFO,
    a socket or a device is refused (NotRegularFile), never opened for reading."""
    return open_regular(root_fd, path, IN_ROOT, nofollow=True)
