"""The bubblewrap backend: an overlay over a shared read-only base, in namespaces of its own."""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import shutil
import subprocess
import threading
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from sandbox import cgroups, netproxy, process
from sandbox.base import Change, ExecResult, OnOutput
from sandbox.config import SandboxConfig
from sandbox.diff import Budget, Changes, overlay_changes, read_entry, unified_diff
from sandbox.errors import (
    BackendUnavailable,
    LimitsUnavailable,
    SandboxClosed,
    SandboxStartFailed,
)
from sandbox.network import NetworkConfig, OnConnection
from sandbox.paths import clean, list_beneath, read_beneath, write_beneath

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
# The holder owns the sandbox's mount namespace: a size-limited tmpfs (the disk quota) holding
# the overlay's upper and work dirs, /tmp, and the merged view. It lives until its stdin closes.
_HOLDER = """set -e
mount -t tmpfs -o "size=$3,mode=0755" tmpfs "$1"
mkdir "$1/upper" "$1/work" "$1/merged" "$1/tmp"
chmod 1777 "$1/tmp"
mount -t overlay overlay -o "lowerdir=$2,upperdir=$1/upper,workdir=$1/work,userxattr" "$1/merged"
echo ready
read -r _ || true
"""


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
        root = self.config.root.resolve()
        self.dir = root / self.id
        self.mnt = self.dir / "mnt"
        self.mnt.mkdir(parents=True)
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
        try:
            self._etc = _shared_etc(root)
            self._start_cgroup()
            self._start_holder()
        except BaseException:
            self.close()
            raise
        self._prefix = self._exec_prefix()

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
        argv = [_tool("unshare"), "--user", "--map-root-user", "--mount", "sh", "-c", _HOLDER]
        argv += ["holder", str(self.mnt), str(self.base), str(self.config.limits.disk)]
        self._holder = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={}
        )
        assert self._holder.stdout is not None and self._holder.stderr is not None
        if self._holder.stdout.readline() != b"ready\n":
            self._holder.wait()
            err = self._holder.stderr.read().decode(errors="replace").strip()
            raise SandboxStartFailed(f"could not set up the sandbox's mounts: {err}")
        self._view = f"/proc/{self._holder.pid}/root{self.mnt}"

    def _exec_prefix(self) -> list[str]:
        assert self._holder is not None
        join: list[str] = []
        if self.cgroup is not None:
            script = "".join(f"echo $$ > {shlex.quote(str(f))}; " for f in self.cgroup.procs_files)
            join = [_tool("sh"), "-c", script + 'exec "$@"', "join"]
        enter = [_tool("nsenter"), f"--target={self._holder.pid}", "--user", "--mount"]
        # setpriv after nsenter: changing credentials clears the parent-death signal.
        return [*join, *enter, _tool("setpriv"), "--pdeathsig", "KILL", _tool("bwrap")]

    def _bwrap_args(self, cwd: str) -> list[str]:
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
        for name in _ETC:
            args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        args += ["--ro-bind", str(self._etc / "passwd"), "/etc/passwd"]
        args += ["--ro-bind", str(self._etc / "group"), "/etc/group"]
        for extra in self.config.ro_binds:
            args += ["--ro-bind", str(extra), str(extra)]
        args += ["--proc", "/proc", "--dev", "/dev"]
        args += ["--bind", f"{self.mnt}/tmp", "/tmp", "--bind", f"{self.mnt}/merged", WORKSPACE]
        # bwrap's own root tmpfs (/, /etc), and its /dev: read-only too
        args += ["--remount-ro", "/", "--remount-ro", "/dev"]
        inside = cwd if cwd.startswith("/") else f"{WORKSPACE}/{clean(cwd)}"
        args += ["--chdir", os.path.normpath(inside)]
        return args

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
            directory=self.dir, on_connection=self.on_connection,
        )  # fmt: skip
        limits = self.config.limits
        with self._idle:
            if self._closing.is_set():
                raise SandboxClosed(f"sandbox {self.id} is closed")
            self._running += 1
        try:
            before = self.cgroup.counters() if self.cgroup else (0, 0)
            with net as plumb:
                # the proxy's mount goes first: the view is read-only once `_bwrap_args` ends
                args = [*plumb.args, *self._bwrap_args(cwd), "--", *plumb.prefix, *argv]
                outcome = process.run(
                    [*self._prefix, *args],
                    env={**BASE_ENV, **(env or {}), **plumb.env},
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
            write_beneath(fd, clean(path), data, mode)
        finally:
            os.close(fd)

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
        return Budget(self.config.max_file_bytes, self.config.max_diff_bytes)

    def _changes(self) -> Changes:
        os.close(self._fd("upper"))
        upper, exclude = f"{self._view}/upper", set(self.config.exclude)
        return overlay_changes(upper, str(self.base), exclude, self._budget())

    def diff(self) -> str:
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
        if self._holder is not None:
            self._holder.kill()
            self._holder.wait()
            for pipe in (self._holder.stdin, self._holder.stdout, self._holder.stderr):
                if pipe is not None:
                    pipe.close()
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


def _shared_etc(root: Path) -> Path:
    etc = root / ".etc"
    if not (etc / "group").exists():
        tmp = root / f".etc-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        (tmp / "passwd").write_text(_PASSWD)
        (tmp / "group").write_text(_GROUP)
        try:
            tmp.rename(etc)
        except OSError:  # another sandbox made it first
            shutil.rmtree(tmp)
    return etc
