"""Launchers: processes started ahead of a command, already in its sandbox's cgroups.

Joining a cgroup (a write to `cgroup.procs`) waits for an RCU grace period, about 10 ms on a
busy host, and a process started from the worker must join before it may fork. A launcher
pays that while nothing waits on it (beside the holder's start when a sandbox is made, and
after each command for the next), enters the namespaces its command runs in (`nsenter`, so
the command's start pays for no such exec), and then waits for the argv to become: the worker writes
it, NUL-separated, to a pipe, and the launcher (bash, whose `mapfile` reads NUL-separated
words and which may close any fd) execs it with nothing of its own left open.

Every launcher is started by one long-lived thread: the parent-death signal (bwrap's
--die-with-parent) watches the thread that started a process, and a thread of the worker that
ends must not take a command with it.
A forked child (a Celery pool process) makes its own such thread: threads do not survive fork.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from sandbox import process, seccomp

# FD: the pipe of the words: where the command's stdin comes from, a count of files, each
# file as the fd to open it on and its path (opened now, so each command reads them fresh, for
# bwrap --file), then the argv.
_SCRIPT = r"""set -e
JOINmapfile -d '' -u FD argv
exec FD<&-
[ "${argv[0]}" = pipe ] || exec <>/dev/null
for ((i = 2; i < 2 + 2 * argv[1]; i += 2)); do
    [[ ${argv[i]} =~ ^[0-9]+$ ]]
    eval "exec ${argv[i]}<\"\${argv[i + 1]}\"" 2>/dev/null || eval "exec ${argv[i]}</dev/null"
done
exec "${argv[@]:2 + 2 * argv[1]}"
"""
# With `enter`: the first line on FD is the pid of the process whose namespaces the command
# runs in; the launcher (dash, lighter to start than bash, and reading a pipe a byte at a time)
# enters them after joining the cgroups as the worker, and waits there as bash. (dash names
# no fd past 9 in a redirection: it opens the pipe again through /proc.)
_ENTER = r"""set -e
JOINread -r target </proc/self/fd/FD
case $target in ''|*[!0-9]*) exit 1 ;; esac
exec ENTER --target="$target" BASH --norc --noprofile -c SCRIPT launcher
"""


class Launcher:
    """One started launcher: `launch` makes it a command, `discard` ends it unused."""

    def __init__(self, proc: subprocess.Popen[bytes], argv_fd: int, filter_fd: int) -> None:
        self.proc = proc
        self._argv_fd = argv_fd
        self.filter_fd = filter_fd
        """The seccomp program's fd as the launcher holds it, for `bwrap --seccomp`."""

    def enter(self, pid: int) -> None:
        """Name the process whose namespaces a launcher started with `enter` goes into."""
        with contextlib.suppress(BrokenPipeError):  # it died: its command's outcome says why
            os.write(self._argv_fd, b"%d\n" % pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def file_fds(self, count: int) -> list[int]:
        """`count` fds that `launch` may open files on: none of them the filter's."""
        return [fd for fd in range(3, count + 4) if fd != self.filter_fd][:count]

    def launch(
        self, argv: Sequence[str], *, stdin: bool, files: Mapping[int, str]
    ) -> subprocess.Popen[bytes]:
        """Become `argv`, with each of `files` open read-only on its fd (one that vanished
        reads empty): with `stdin`, the command reads `proc.stdin`; else /dev/null."""
        opened = [word for fd, path in files.items() for word in (str(fd), path)]
        words = ["pipe" if stdin else "null", str(len(files)), *opened, *argv]
        if any("\0" in word for word in words):
            raise ValueError("embedded null byte in the command or its environment")
        data = b"".join(os.fsencode(word) + b"\0" for word in words)
        try:
            view = memoryview(data)
            while view:  # a launcher that died reads nothing: its outcome says why
                view = view[os.write(self._argv_fd, view) :]
        except BrokenPipeError:
            pass
        finally:
            os.close(self._argv_fd)
            self._argv_fd = -1
        return self.proc

    def kill(self) -> None:
        """SIGKILL it and its process group, unless it was waited for already (its pid may be
        another process's by now)."""
        if self.proc.returncode is None:
            process.kill_group(self.proc.pid)

    def discard(self) -> None:
        """Kill it, wait for it, and release what it held."""
        self.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        if self._argv_fd >= 0:
            os.close(self._argv_fd)
            self._argv_fd = -1


class _Spawner:
    """The thread that starts every launcher of this process, made when first needed."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._lock = threading.Lock()
        self._thread: ThreadPoolExecutor | None = None

    def submit(
        self, procs_files: list[Path], enter: list[str], target: int | None
    ) -> Future[Launcher]:
        with self._lock:
            if self._thread is None:
                self._thread = ThreadPoolExecutor(1, thread_name_prefix="sandbox-launcher")
            return self._thread.submit(_spawn, procs_files, enter, target)


_SPAWNER = _Spawner()
os.register_at_fork(after_in_child=_SPAWNER.reset)


def start(
    procs_files: Sequence[Path], enter: Sequence[str] = (), target: int | None = None
) -> Future[Launcher]:
    """A launcher that joins the cgroups whose `cgroup.procs` files are given, then waits.

    With `enter` (`nsenter` and the namespaces to enter, without `--target`), it then enters
    the namespaces of `target`, or of the pid that `Launcher.enter` names later, and waits
    there: the command's start pays for no `nsenter`."""
    return _SPAWNER.submit(list(procs_files), list(enter), target)


def _spawn(procs_files: list[Path], enter: list[str], target: int | None) -> Launcher:
    bash, sh = (shutil.which(name, path="/usr/bin:/bin") for name in ("bash", "sh"))
    if bash is None or sh is None:
        raise FileNotFoundError("bash or sh not found: the sandbox's launcher needs both")
    join = "".join(f"echo $$ > {shlex.quote(str(f))}\n" for f in procs_files)
    read, write = os.pipe()
    filter_fd = seccomp.program_fd()
    script = _SCRIPT.replace("FD", str(read))
    if enter:
        inner = shlex.quote(script.replace("JOIN", ""))
        script = _ENTER.replace("FD", str(read)).replace("SCRIPT", inner)
        script = script.replace("ENTER", shlex.join(enter)).replace("BASH", shlex.quote(bash))
    script = script.replace("JOIN", join)
    try:
        proc = subprocess.Popen(
            [sh, "-c", script, "launcher"]
            if enter
            else [bash, "--norc", "--noprofile", "-c", script, "launcher"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={},
            cwd="/",
            start_new_session=True,
            pass_fds=(read, filter_fd),
        )
    except BaseException:
        os.close(write)
        raise
    finally:
        os.close(read)
        with contextlib.suppress(OSError):
            os.close(filter_fd)
    started = Launcher(proc, write, filter_fd)
    if target is not None:
        started.enter(target)
    return started
