"""Launchers: started ahead in the sandbox's cgroups, replaced when gone, refusing bad input."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pytest

from sandbox import launcher
from sandbox.bwrap import BwrapSandbox
from sandbox.launcher import Launcher
from tests.waiting import wait_until


def waiting(sbx: BwrapSandbox) -> Launcher:
    assert sbx._launcher is not None
    return sbx._launcher.result(timeout=30)


def test_each_command_comes_from_a_launcher_already_in_the_cgroups(sbx: BwrapSandbox) -> None:
    assert sbx.cgroup is not None
    first = waiting(sbx)
    wait_until(lambda: first.proc.pid in sbx.cgroup.pids(), what="the launcher joined")

    ran = sbx.exec("echo ok")
    second = waiting(sbx)
    wait_until(lambda: second.proc.pid in sbx.cgroup.pids(), what="the next one joined")
    sbx.close()

    assert (ran.exit_code, ran.stdout, ran.stderr) == (0, "ok\n", "")
    assert first.proc.returncode == 0  # it became the command, which ended
    assert second.proc.pid != first.proc.pid
    assert second.proc.returncode is not None  # the unused one was ended and reaped by close


def namespaces(pid: int) -> tuple[str, str]:
    return os.readlink(f"/proc/{pid}/ns/user"), os.readlink(f"/proc/{pid}/ns/mnt")


def test_a_launcher_waits_inside_the_holders_namespaces(sbx: BwrapSandbox) -> None:
    assert sbx._holder is not None
    holder = namespaces(sbx._holder.pid)
    assert holder != namespaces(os.getpid())
    first = waiting(sbx)
    wait_until(lambda: namespaces(first.proc.pid) == holder, what="the first one entered")

    ran = sbx.exec("cat /etc/passwd")
    second = waiting(sbx)
    wait_until(lambda: namespaces(second.proc.pid) == holder, what="the next one entered")

    assert (ran.exit_code, ran.stderr) == (0, "")
    assert "sandbox:x:1000:1000" in ran.stdout  # opened by the launcher, in the holder's /tmp


def test_a_launcher_whose_holder_is_gone_runs_nothing(sbx: BwrapSandbox) -> None:
    assert sbx._holder is not None
    waiting(sbx).discard()
    sbx._launcher = None
    sbx._holder.kill()
    sbx._holder.wait(timeout=30)

    ran = sbx.exec("echo escaped")

    assert ran.exit_code != 0 and "escaped" not in ran.stdout
    assert "nsenter" in ran.stderr


def test_a_launcher_killed_while_it_waits_is_replaced(sbx: BwrapSandbox) -> None:
    killed = waiting(sbx)
    os.kill(killed.proc.pid, signal.SIGKILL)
    wait_until(lambda: not killed.alive(), what="the launcher died")

    ran = sbx.exec(["cat"], stdin=b"still here\n")

    assert (ran.exit_code, ran.stdout, ran.stderr) == (0, "still here\n", "")
    assert killed.proc.returncode == -signal.SIGKILL


def test_a_command_that_cannot_join_its_cgroups_never_runs(sbx: BwrapSandbox) -> None:
    assert sbx.cgroup is not None
    killed = waiting(sbx)
    os.kill(killed.proc.pid, signal.SIGKILL)
    killed.proc.wait(timeout=30)  # reaped: a zombie still holds its cgroups
    for directory in sbx.cgroup.dirs:
        directory.rmdir()

    ran = sbx.exec("echo escaped > ran; echo escaped")

    assert ran.exit_code != 0 and "escaped" not in ran.stdout
    assert "cgroup.procs" in ran.stderr
    with pytest.raises(FileNotFoundError):
        sbx.read_file("ran")


@pytest.mark.parametrize(
    ("last", "env"),
    [("a\0b", None), ("x", {"A=B": "1"}), ("x", {"": "1"}), ("x", {"X": "nul\0"})],
)
def test_bad_argv_or_environment_is_refused_and_runs_nothing(
    sbx: BwrapSandbox, last: str, env: dict[str, str] | None
) -> None:
    with pytest.raises(ValueError, match=r"null byte|environment variable name"):
        sbx.exec(["sh", "-c", "touch ran", last], env=env)

    assert sbx.exec("echo ok").stdout == "ok\n"
    with pytest.raises(FileNotFoundError):
        sbx.read_file("ran")


def test_no_file_descriptor_of_the_worker_reaches_a_command(sbx: BwrapSandbox) -> None:
    extra = os.open("/etc/hostname", os.O_RDONLY)  # inheritable it would be, if anything leaked
    os.set_inheritable(extra, True)
    try:
        ran = sbx.exec(["ls", "/proc/self/fd"])
        piped = sbx.exec(["ls", "-l", "/proc/self/fd/0"], stdin=b"")
    finally:
        os.close(extra)

    assert ran.stdout.split() == ["0", "1", "2", "3"]  # 3: ls's own look at the folder
    assert "pipe:" in piped.stdout


def test_a_forked_worker_starts_launchers_of_its_own(sbx: BwrapSandbox) -> None:
    """A Celery pool process is forked from a parent that may have made sandboxes already."""
    assert sbx.exec("true").exit_code == 0  # this process's launcher thread is running
    child = os.fork()
    if child == 0:  # the child reports by its exit status only
        code = 1
        try:
            with BwrapSandbox(sbx.base, sbx.config) as other:
                code = 0 if other.exec("echo child").stdout == "child\n" else 2
        finally:
            os._exit(code)

    def ended() -> tuple[int] | None:
        pid, status = os.waitpid(child, os.WNOHANG)
        return (os.waitstatus_to_exitcode(status),) if pid == child else None

    try:
        assert wait_until(ended, what="the forked worker's sandbox") == (0,)
    finally:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(child, os.WNOHANG)[0] == 0:
                os.kill(child, signal.SIGKILL)
                os.waitpid(child, 0)


def test_files_are_opened_as_the_command_starts_and_a_missing_one_reads_empty() -> None:
    started = launcher.start([]).result(timeout=30)
    first, second = started.file_fds(2)
    files = {first: "/etc/hostname", second: "/nonexistent/file"}
    script = f"cat <&{first}; cat <&{second}; echo end"
    proc = started.launch(["/bin/sh", "-c", script], stdin=False, files=files)
    out, err = proc.communicate(timeout=30)
    started.discard()

    assert (proc.returncode, err) == (0, b"")
    assert out.decode() == Path("/etc/hostname").read_text() + "end\n"
    assert started.filter_fd not in (first, second)
