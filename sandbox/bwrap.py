"""The bubblewrap backend: an overlay over a shared read-only base, in namespaces of its own."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox import cgroups, idmap, launcher, netproxy, process
from sandbox.base import Change, ExecResult, OnOutput
from sandbox.config import SandboxConfig
from sandbox.errors import (
    BackendUnavailable,
    LimitsUnavailable,
    SandboxClosed,
    SandboxStartFailed,
)
from sandbox.network import NetworkConfig, OnConnection
from sandbox.paths import clean, list_beneath, read_beneath, write_beneath

if TYPE_CHECKING:
    # Imported where a diff is asked for: `autan sandbox run` starts without it.
    from sandbox.diff import Budget, Changes

WORKSPACE = "/workspace"
SANDBOX_UID = 1000
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/tmp",
    "USER": "sandbox",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
    "TMPDIR": "/tmp",
}
# The only parts of the host's /etc a build needs; never shadow, sudoers, ssh or machine-id.
_ETC = [
    "alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "ssl", "ca-certificates",
    "ca-certificates.conf", "nsswitch.conf", "hosts", "localtime", "mime.types", "gitconfig",
    "profile", "bash.bashrc", "inputrc", "debian_version", "os-release", "python3", "python3.11",
]  # fmt: skip
_PASSWD = f"root:x:0:0::/:/bin/sh\nsandbox:x:{SANDBOX_UID}:{SANDBOX_UID}::/tmp:/bin/sh\n"
_GROUP = f"root:x:0:\nsandbox:x:{SANDBOX_UID}:\n"
# The holder owns the sandbox's mount namespace. Over that namespace's own /tmp (never seen by
# the host or inside) it mounts a size-limited tmpfs, the disk quota, holding the overlay's
# upper and work dirs, the sandbox's /tmp, its passwd and group, proxy sockets, and the merged
# view. Paths under it need no walk through the worker's own (maybe 0700) directories, which
# a root worker's mapped ids could not make. Between its two steps the worker fills the tmpfs
# (`_fill`: a few calls where the holder would start mkdir and chmod). It lives until its stdin
# closes.
HOLD = "/tmp"
_HOLDER = """set -e
mount -t tmpfs -o "size=$2,mode=0755" tmpfs /tmp
echo mounted
read -r _
mount -t overlay overlay -o "lowerdir=$1,upperdir=/tmp/upper,workdir=/tmp/work,userxattr" \
    /tmp/merged
shift 2
for ro in "$@"; do mount --rbind "$ro" "/tmp/$ro"; done
echo ready
read -r _ || true
"""
_FILES = {"etc/passwd": _PASSWD, "etc/group": _GROUP, "etc/empty": ""}
# What a container runtime hides of /proc (the OCI defaults, and the kernel command line):
# files become empty, folders empty and read-only; the writable kernel knobs are read-only.
_MASKED_FILES = [
    "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
    "/proc/sched_debug", "/proc/cmdline", "/proc/kallsyms", "/proc/sysrq-trigger",
]  # fmt: skip
_MASKED_DIRS = ["/proc/acpi", "/proc/asound", "/proc/scsi", "/proc/firmware", "/proc/driver"]
_READ_ONLY = ["/proc/sys", "/proc/irq", "/proc/bus", "/proc/fs"]
_PROC_MASKS = [
    *(a for f in _MASKED_FILES if os.path.exists(f) for a in ("--ro-bind", f"{HOLD}/etc/empty", f)),
    *(a for d in _MASKED_DIRS if os.path.isdir(d) for a in ("--tmpfs", d, "--remount-ro", d)),
    *(a for d in _READ_ONLY if os.path.isdir(d) for a in ("--ro-bind", d, d)),
]
HOST_ID_COUNT = 65536


def _env_args(variables: Mapping[str, str]) -> list[str]:
    """The command's whole environment, for bwrap to set: its launcher starts with none."""
    if any(not name or "=" in name for name in variables):
        raise ValueError("illegal environment variable name")
    return ["--clearenv", *(a for k, v in variables.items() for a in ("--setenv", k, v))]


def _etc_entry(path: str) -> list[str] | None:
    """A link into /usr (`localtime`, `os-release`) is made again inside, and a regular file
    is None: bwrap copies it in (`--file`); neither costs bwrap a mount. Anything else (a
    folder) is bound read-only, if it is there."""
    if os.path.islink(path):
        target = os.readlink(path)
        inside = os.path.normpath(os.path.join(os.path.dirname(path), target))
        if inside.startswith("/usr/") and os.path.realpath(path).startswith("/usr/"):
            return ["--symlink", target, path]
    if os.path.isfile(path):
        return None
    return ["--ro-bind-try", path, path]


def _tool(name: str) -> str:
    found = shutil.which(name, path="/usr/bin:/bin:/usr/sbin:/sbin")
    if found is None:
        raise BackendUnavailable(f"{name} not found: install bubblewrap and util-linux")
    return found


class BwrapSandbox:
    """One sandbox: created in milliseconds, each `exec` a fresh bwrap in the same overlay view."""

    def __init__(
        self,
        base: Path,
        config: SandboxConfig | None = None,
        on_connection: OnConnection | None = None,
    ) -> None:
        self.config = config or SandboxConfig()
        self.on_connection = on_connection
        self.base = base.resolve()
        if not self.base.is_dir():
            raise SandboxStartFailed(f"base tree {self.base} is not a directory")
        if any(c in str(self.base) for c in ",:\\"):
            raise SandboxStartFailed(f"base path {self.base} has ',', ':' or '\\'; move it")
        self.id = uuid.uuid4().hex[:16]
        self.dir = self.config.root.resolve() / self.id
        self.dir.mkdir(parents=True)
        # As root, the sandbox's ids are the mapped range; otherwise this worker's own.
        self._owner = (self.config.host_ids,) * 2 if idmap.privileged() else None
        self._mounts: list[Path] = []  # clones in the host's namespace until the holder is up
        self._detaching: threading.Thread | None = None
        self._lock = os.open(self.dir / "lock", os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        (self.dir / "meta.json").write_text(
            json.dumps({"base": str(self.base), "pid": os.getpid()})
        )
        self._closing = threading.Event()
        self._running = 0
        self._idle = threading.Condition()
        self._holder: subprocess.Popen[bytes] | None = None
        self.cgroup: cgroups.SandboxCgroup | None = None
        self._launcher: Future[launcher.Launcher] | None = None
        enter = [_tool("nsenter"), "--user", "--mount"]
        if self._owner is None:  # this user is the namespace's root already; setgroups is denied
            enter.append("--preserve-credentials")
        self._enter = enter
        self._bwrap = _tool("bwrap")
        try:
            self._start_cgroup()
            # it joins the cgroups while the holder starts, and enters its namespaces once made
            self._launcher = launcher.start(self._procs_files(), self._enter)
            self._start_holder()
        except BaseException:
            self.close()
            raise

    def _start_cgroup(self) -> None:
        support = cgroups.detect()
        if support.version != "none":
            self.cgroup = cgroups.SandboxCgroup(support, self.id, self.config.limits)
        elif self.config.limits.require_cgroups:
            raise LimitsUnavailable(
                f"cannot enforce memory and process limits: {support.reason}. Delegate a cgroup "
                "to this user, or set limits.require_cgroups = false to run without them"
            )

    def _start_holder(self) -> None:
        """As root: enter the mapped user namespace and show the base through an idmapped mount,
        so the sandbox's user owns its files; otherwise map this user to the namespace's root."""
        # The holder starts in the folder that holds the lower layer, and names it relatively:
        # its tmpfs over /tmp would hide a base under /tmp, and a root worker's own folders
        # (0700) may be closed to the mapped ids.
        fds: list[int] = []
        if self._owner is None:
            enter = [_tool("unshare"), "--user", "--map-root-user"]
            lower, cwd = ".", self.base
        else:
            userns = idmap.mapped_userns(self.config.host_ids, HOST_ID_COUNT)
            self._mounts = [self.dir / "lower"]
            self._mounts += [self.dir / f"ro{i}" for i in range(len(self.config.ro_binds))]
            for i, source in enumerate([self.base, *self.config.ro_binds]):
                self._mounts[i].mkdir()
                idmap.attach_clone(source, self._mounts[i], userns if i == 0 else None)
            enter = [_tool("nsenter"), f"--user=/proc/self/fd/{userns}", "--wd=."]
            enter += [_tool("unshare")]
            lower, cwd, fds = "lower", self.dir, [userns]
        argv = [*enter, "--mount", "--propagation", "private", "sh", "-c", _HOLDER, "holder"]
        argv += [lower, str(self.config.limits.disk), *(m.name for m in self._mounts[1:])]
        try:
            self._holder = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={},
                cwd=cwd,
                pass_fds=fds,
            )
            self._step(b"mounted\n")
            if self._mounts:  # an unmount waits for an RCU grace period: off the path
                self._detaching = threading.Thread(target=self._detach, name="sandbox-detach")
                self._detaching.start()
            assert self._launcher is not None
            self._launcher.result().enter(self._holder.pid)
            self._fill(f"/proc/{self._holder.pid}/root{HOLD}")
            self._step(b"ready\n", go=True)
        finally:
            if self._detaching is None:
                self._detach()
        self._view = f"/proc/{self._holder.pid}/root{HOLD}"

    def _detach(self) -> None:
        for mount in self._mounts:
            idmap.detach(mount)  # the holder has its own copy

    def _step(self, said: bytes, *, go: bool = False) -> None:
        """Wait for the holder to say `said` (having told it to go on, with `go`)."""
        holder = self._holder
        assert holder is not None and holder.stdin and holder.stdout and holder.stderr
        with contextlib.suppress(BrokenPipeError):  # it ended: what it said tells why
            if go:
                holder.stdin.write(b"go\n")
                holder.stdin.flush()
        if holder.stdout.readline() != said:
            holder.wait()
            err = holder.stderr.read().decode(errors="replace").strip()
            raise SandboxStartFailed(f"could not set up the sandbox's mounts: {err}")

    def _fill(self, view: str) -> None:
        """The holder's folders and files, made as the sandbox's owner in its fresh tmpfs."""
        top = os.open(view, os.O_PATH | os.O_DIRECTORY)
        try:
            with self.as_owner():
                names = ["upper", "work", "merged", "tmp", "etc", "net"]
                for name in names + [m.name for m in self._mounts[1:]]:
                    os.mkdir(name, 0o755, dir_fd=top)
                os.chmod("tmp", 0o1777, dir_fd=top)
                for name, text in _FILES.items():
                    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=top)
                    try:
                        os.write(fd, text.encode())
                    finally:
                        os.close(fd)
        finally:
            os.close(top)

    def _procs_files(self) -> list[Path]:
        return self.cgroup.procs_files if self.cgroup is not None else []

    def _start_launcher(self) -> Future[launcher.Launcher]:
        """A launcher for a later command: in the cgroups, then in the holder's namespaces."""
        assert self._holder is not None
        return launcher.start(self._procs_files(), self._enter, self._holder.pid)

    def _bwrap_args(self, cwd: str, fds: list[int]) -> tuple[list[str], dict[int, str]]:
        """bwrap's arguments, and the files its launcher opens for it (on `fds`, in order)."""
        copies: dict[int, str] = {}

        def copy(source: str, dest: str) -> list[str]:
            copies[fds[len(copies)]] = source
            return ["--perms", "0644", "--file", str(fds[len(copies) - 1]), dest]

        args = ["--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
        args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        args += ["--unshare-net"]  # always: any network is the proxy's socket (sandbox.netproxy)
        args += ["--hostname", "sandbox", "--die-with-parent", "--new-session"]
        args += ["--ro-bind", "/usr", "/usr"]
        for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
            if os.path.islink(top):
                args += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                args += ["--ro-bind", top, top]
        args += ["--dir", "/etc"]
        for path in (f"/etc/{name}" for name in _ETC):
            entry = _etc_entry(path)
            args += copy(path, path) if entry is None else entry
        for name in ("passwd", "group"):  # the launcher opens them in the holder's namespace
            args += copy(f"{HOLD}/etc/{name}", f"/etc/{name}")
        for i, extra in enumerate(self.config.ro_binds):
            # a root worker's holder took each from its clone; its mapped ids may not walk there
            source = f"{HOLD}/ro{i}" if self._owner is not None else str(extra)
            args += ["--ro-bind", source, str(extra)]
        args += ["--proc", "/proc", "--dev", "/dev", *_PROC_MASKS]
        args += ["--bind", f"{HOLD}/tmp", "/tmp", "--bind", f"{HOLD}/merged", WORKSPACE]
        # bwrap's own root tmpfs (/, /etc), and its /dev: read-only too
        args += ["--remount-ro", "/", "--remount-ro", "/dev"]
        # no user namespace inside (so no mounts, no cgroup of its own), then the filter
        args += ["--disable-userns"]
        inside = cwd if cwd.startswith("/") else f"{WORKSPACE}/{clean(cwd)}"
        args += ["--chdir", os.path.normpath(inside)]
        return args, copies

    def exec(
        self,
        command: str | Sequence[str],
        *,
        cwd: str = ".",
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        timeout: float | None = None,
        output_limit: int | None = None,
        on_output: OnOutput | None = None,
        stop: threading.Event | None = None,
        network: NetworkConfig | None = None,
    ) -> ExecResult:
        argv = ["sh", "-c", command] if isinstance(command, str) else list(command)
        net = netproxy.plumbing(
            network or self.config.network, allow_full=self.config.allow_full_network,
            directory=Path(self._view, "net"), seen_as=Path(HOLD, "net"),
            on_connection=self.on_connection, as_owner=self.as_owner,
        )  # fmt: skip
        limits = self.config.limits
        with self._idle:
            if self._closing.is_set():
                raise SandboxClosed(f"sandbox {self.id} is closed")
            self._running += 1
            ready, self._launcher = self._launcher, None
        try:
            started = time.monotonic()
            taken = ready.result() if ready is not None else None
            if taken is None or not taken.alive():
                if taken is not None:
                    taken.discard()
                taken = self._start_launcher().result()
            before = self.cgroup.counters() if self.cgroup else (0, 0)
            with contextlib.ExitStack() as stack:
                stack.callback(taken.discard)  # reaps it, and kills what is left of its group
                plumb = stack.enter_context(net)
                # the proxy's mount goes first: the view is read-only once `_bwrap_args` ends
                view, files = self._bwrap_args(cwd, taken.file_fds(len(_ETC) + 2))
                args = [*plumb.args, *view, *_env_args({**BASE_ENV, **(env or {}), **plumb.env})]
                args += ["--seccomp", str(taken.filter_fd), "--", *plumb.prefix, *argv]
                outcome = process.collect(
                    # bwrap --die-with-parent sets the parent-death signal of bwrap itself
                    # too, after its last change of credentials (which would clear it).
                    taken.launch([self._bwrap, *args], stdin=stdin is not None, files=files),
                    started=started,
                    stdin=stdin,
                    timeout=limits.timeout_s if timeout is None else timeout,
                    output_limit=limits.output_limit if output_limit is None else output_limit,
                    on_output=on_output,
                    stops=[self._closing, *([stop] if stop else [])],
                )
            after = self.cgroup.counters() if self.cgroup else (0, 0)
        finally:
            with self._idle:
                self._running -= 1
                # The next command's launcher joins the cgroups once this one ended: started
                # beside it, it took CPU from the command's own start.
                if self._launcher is None and not self._closing.is_set():
                    self._launcher = self._start_launcher()
                self._idle.notify_all()
        return ExecResult(
            exit_code=outcome.exit_code,
            stdout=outcome.stdout.decode(errors="replace"),
            stderr=outcome.stderr.decode(errors="replace"),
            duration_s=outcome.duration_s,
            truncated=outcome.truncated,
            timed_out=outcome.timed_out,
            cancelled=outcome.cancelled,
            oom_killed=after[0] > before[0],
            pids_limited=after[1] > before[1],
            limits_enforced=self.cgroup is not None,
        )

    def _fd(self, part: str) -> int:
        if self._closing.is_set():
            raise SandboxClosed(f"sandbox {self.id} is closed")
        return os.open(f"{self._view}/{part}", os.O_PATH | os.O_DIRECTORY)

    def read_file(self, path: str) -> bytes:
        fd = self._fd("merged")
        try:
            return read_beneath(fd, clean(path), limit=self.config.max_file_bytes)
        finally:
            os.close(fd)

    def write_file(self, path: str, data: bytes, mode: int | None = None) -> None:
        fd = self._fd("merged")
        try:
            with self.as_owner():
                write_beneath(fd, clean(path), data, mode)
        finally:
            os.close(fd)

    def as_owner(self) -> contextlib.AbstractContextManager[None]:
        """Host-side writes in this block are made as the sandbox's user: a root worker's own
        ids have no place in the sandbox's namespace (EOVERFLOW). Open fds before entering."""
        uid, gid = self._owner or (None, None)
        return idmap.fs_ids(uid, gid)

    def list_files(self, path: str = ".") -> list[str]:
        fd = self._fd("merged")
        try:
            return list_beneath(fd, clean(path))
        finally:
            os.close(fd)

    def open_tree(self) -> int:
        return self._fd("merged")

    def changed_paths(self) -> list[Change]:
        return self._changes().changes

    def _budget(self) -> Budget:
        from sandbox.diff import Budget

        return Budget(self.config.max_file_bytes, self.config.max_diff_bytes)

    def _changes(self) -> Changes:
        from sandbox.diff import overlay_changes

        os.close(self._fd("upper"))
        upper, exclude = f"{self._view}/upper", set(self.config.exclude)
        return overlay_changes(upper, str(self.base), exclude, self._budget())

    def diff(self) -> str:
        from sandbox.diff import read_entry, unified_diff

        changes, budget = self._changes(), self._budget()
        lower = os.open(self.base, os.O_PATH | os.O_DIRECTORY)
        upper = self._fd("upper")
        try:
            return unified_diff(
                changes,
                lambda p: read_entry(lower, p, budget),
                lambda p: read_entry(upper, p, budget),
            )
        finally:
            os.close(lower)
            os.close(upper)

    def close(self) -> None:
        """Kill every command, drop the namespace (and with it every mount), remove all state."""
        with self._idle:
            self._closing.set()
            self._idle.wait_for(lambda: self._running == 0, timeout=10)
            unused, self._launcher = self._launcher, None
        ended: launcher.Launcher | None = None
        if unused is not None and not unused.cancel():
            with contextlib.suppress(OSError):
                ended = unused.result()
                ended.kill()
        if self._holder is not None:
            self._holder.kill()  # both die at once; then both are reaped
        if ended is not None:
            ended.discard()
        if self._holder is not None:
            self._holder.wait()
            for pipe in (self._holder.stdin, self._holder.stdout, self._holder.stderr):
                if pipe is not None:
                    pipe.close()
        if self._detaching is not None:
            self._detaching.join()  # before the folder goes: the clones are mounted in it
        try:
            if self.cgroup is not None:
                self.cgroup.remove()
        finally:  # a cgroup that would not go is an error, but no reason to keep the rest
            shutil.rmtree(self.dir, ignore_errors=True)
            if self._lock >= 0:
                os.close(self._lock)
                self._lock = -1

    def __enter__(self) -> BwrapSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
