"""Each attack fails inside the sandbox, through the API and through `autan sandbox run`."""

from __future__ import annotations

import os
import resource
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from sandbox import create_sandbox
from sandbox.bwrap import BwrapSandbox
from sandbox.config import LimitsConfig, SandboxConfig
from sandbox.diff import left_out, left_out_note
from sandbox.errors import FileTooLarge, NotRegularFile
from tests.sandbox import attacks
from tests.sandbox.attacks import cli


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    yield sock
    sock.close()


def nobody_connected(sock: socket.socket) -> bool:
    try:
        sock.accept()[0].close()
    except BlockingIOError:
        return True
    return False


def test_host_loopback_is_unreachable(
    sbx: BwrapSandbox, listener: socket.socket, base: Path, config: SandboxConfig
) -> None:
    code = attacks.CONNECT.format(port=listener.getsockname()[1])

    assert sbx.exec(["python3", "-c", code]).stdout == "ECONNREFUSED\n"
    assert cli(config.root, base, "--", "python3", "-c", code).stdout == "ECONNREFUSED\n"
    assert nobody_connected(listener)


def test_the_old_network_switch_is_full_network_and_still_not_the_host_loopback(
    make_sandbox: Callable[..., BwrapSandbox], listener: socket.socket, config: SandboxConfig
) -> None:
    switched = replace(config, network=True, allow_full_network=True)
    open_sbx = make_sandbox(switched)
    code = attacks.CONNECT.format(port=listener.getsockname()[1])

    assert switched.network.mode == "full"
    assert open_sbx.exec(["python3", "-c", code]).stdout == "ECONNREFUSED\n"
    assert nobody_connected(listener)


def test_outside_addresses_neither_resolve_nor_connect(
    sbx: BwrapSandbox, base: Path, config: SandboxConfig
) -> None:
    expected = "gaierror\nENETUNREACH\n"

    assert sbx.exec(["python3", "-c", attacks.OUTSIDE]).stdout == expected
    assert cli(config.root, base, "--", "python3", "-c", attacks.OUTSIDE).stdout == expected


def test_secrets_other_sandboxes_and_platform_data_are_invisible(
    make_sandbox: Callable[..., BwrapSandbox],
    base: Path,
    config: SandboxConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTAN_TOKEN", "secret-token")
    data = tmp_path / "data"
    data.mkdir()
    (data / "autan.db").write_text("secret")
    victim, attacker = make_sandbox(), make_sandbox()
    victim.write_file("secret.txt", b"victim")
    assert victim._holder is not None
    paths = [
        "/etc/shadow", "/root", "/home", "/run", "/var", str(data / "autan.db"),
        str(victim.dir), f"/proc/{victim._holder.pid}/root/tmp/merged/secret.txt",
        str(tmp_path), "/tmp/" + tmp_path.name,
    ]  # fmt: skip
    code = attacks.READ.format(paths=paths)
    expected = "ENOENT\n" * len(paths) + "clean\n"

    assert attacker.exec(["python3", "-c", code]).stdout == expected
    assert cli(config.root, base, "--", "python3", "-c", code).stdout == expected


def test_writes_outside_the_workspace_and_tmp_fail(
    sbx: BwrapSandbox, base: Path, config: SandboxConfig
) -> None:
    expected = "EROFS\nEROFS\nEROFS\nENOENT\nEROFS\nEROFS\n"

    assert sbx.exec(["python3", "-c", attacks.WRITE]).stdout == expected
    assert cli(config.root, base, "--", "python3", "-c", attacks.WRITE).stdout == expected
    assert not Path("/usr/evil").exists() and not Path("/etc/evil").exists()
    assert not Path("/evil").exists() and socket.gethostname() != "sandbox"


def test_a_symlink_to_root_in_the_repository_leads_nowhere(
    sbx: BwrapSandbox, base: Path, config: SandboxConfig
) -> None:
    expected = "ENOENT\nENOENT\nTrue\n"

    assert sbx.exec(["python3", "-c", attacks.SYMLINK]).stdout == expected
    assert cli(config.root, base, "--", "python3", "-c", attacks.SYMLINK).stdout == expected
    sbx.write_file("escape/tmp/from-host-side", b"x")  # the host side resolves the same way
    assert not Path("/tmp/planted").exists() and not Path("/tmp/from-host-side").exists()
    assert sbx.read_file("tmp/from-host-side") == b"x"


def test_a_fork_bomb_meets_the_process_limit(
    sbx: BwrapSandbox, base: Path, config: SandboxConfig
) -> None:
    result = sbx.exec(["python3", "-c", attacks.FORKS], timeout=30)

    word, count = result.stdout.split()
    assert word == "EAGAIN" and int(count) < 64 and result.pids_limited
    bomb = cli(config.root, base, "--pids", "32", "--timeout", "2", "--", "sh", "-c",
               "b(){ b|b& }; b; sleep 10")  # fmt: skip
    assert bomb.returncode in (121, 124), bomb.stderr
    assert sbx.exec("echo alive").stdout == "alive\n"


def test_memory_over_the_limit_kills_the_sandboxed_process_only(
    make_sandbox: Callable[..., BwrapSandbox], base: Path, config: SandboxConfig
) -> None:
    small = replace(config, limits=LimitsConfig(memory="128M", pids=64, disk="64M"))
    sbx = make_sandbox(small)
    result = sbx.exec(["python3", "-c", attacks.MEMORY])

    assert result.oom_killed and result.exit_code != 0 and "ESCAPED" not in result.stdout
    assert sbx.exec("echo alive").stdout == "alive\n"
    via_cli = cli(config.root, base, "--memory", "128M", "--", "python3", "-c", attacks.MEMORY)
    assert via_cli.returncode == 122
    assert "out of memory" in via_cli.stderr


def test_filling_the_disk_stops_at_the_quota(
    sbx: BwrapSandbox, base: Path, config: SandboxConfig
) -> None:
    fill = "dd if=/dev/zero of=big bs=1M count=200; dd if=/dev/zero of=/tmp/big bs=1M count=200"
    result = sbx.exec(fill)

    assert result.exit_code != 0 and result.stderr.count("No space left on device") == 2
    assert sum(f.stat().st_size for f in sbx.dir.rglob("*") if f.is_file()) < 4096
    via_cli = cli(config.root, base, "--disk", "16M", "--", "sh", "-c", fill)
    assert via_cli.returncode == 1 and "No space left" in via_cli.stderr


def test_ignoring_sigterm_does_not_outlive_the_timeout(base: Path, config: SandboxConfig) -> None:
    result = cli(config.root, base, "--timeout", "0.5", "--", "sh", "-c", "trap '' TERM; sleep 30")

    assert result.returncode == 124
    assert result.stderr.strip() == "autan sandbox: killed: timed out after 0.5s"


def test_ptrace_of_a_process_outside_fails(
    sbx: BwrapSandbox, base: Path, config: SandboxConfig
) -> None:
    code = attacks.PTRACE.format(pid=os.getpid())

    assert sbx.exec(["python3", "-c", code]).stdout == "ESRCH\nESRCH\n"
    assert cli(config.root, base, "--", "python3", "-c", code).stdout == "ESRCH\nESRCH\n"


def test_tiocsti_cannot_reach_a_terminal(
    base: Path, config: SandboxConfig, sbx: BwrapSandbox
) -> None:
    assert sbx.exec(["python3", "-c", attacks.TIOCSTI]).stdout.split() == [
        "EPERM",
        "EPERM",
        "EPERM",
        "ENXIO",
    ]  # fmt: skip: the syscall filter refuses TIOCSTI before the kernel looks for a terminal
    master, slave = os.openpty()
    try:
        # The operator's command runs with a real controlling terminal on all three streams.
        shim = (
            "import os, sys, fcntl, termios\n"
            "os.setsid(); fcntl.ioctl(0, termios.TIOCSCTTY, 0)\n"
            "from cli.sandbox import app\n"
            "sys.argv = ['autan'] + sys.argv[1:]\n"
            "app()"
        )
        argv = [sys.executable, "-c", shim, "run", "--base", str(base), "--root", str(config.root)]
        import subprocess

        done = subprocess.run(
            [*argv, "--", "python3", "-c", attacks.TIOCSTI],
            stdin=slave, stdout=slave, stderr=slave, timeout=60,
        )  # fmt: skip
        os.set_blocking(master, False)
        seen = os.read(master, 65536).decode()
    finally:
        os.close(master)
        os.close(slave)
    assert done.returncode == 0
    assert seen.split() == ["EPERM", "EPERM", "EPERM", "ENXIO"]


def applied(base: Path, diff: str, tmp_path: Path) -> Path:
    """A git repository of `base` with `diff` applied by `git apply`, as a push would."""
    repo = tmp_path / "applied"
    shutil.copytree(base, repo, symlinks=True)
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "base"]):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo,
                       check=True, capture_output=True)  # fmt: skip
    subprocess.run(["git", "apply", "--index", "-"], cwd=repo, input=diff.encode(), check=True)
    return repo


def peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def test_sparse_files_are_named_too_large_never_read(
    sbx: BwrapSandbox, base: Path, config: SandboxConfig, tmp_path: Path
) -> None:
    local = create_sandbox(base, replace(config, backend="local"))
    try:
        for each in (sbx, local):
            assert each.exec(attacks.SPARSE).exit_code == 0
            before = peak_kib()
            changes = [(c.path, c.status) for c in each.changed_paths()]
            diff = each.diff()

            assert peak_kib() - before < 64 << 10  # none of the 53 GB was read into memory
            assert changes == [
                ("README.md", "modified"), ("big3", "added"), ("big50", "added"),
                ("small", "added"),
            ]  # fmt: skip
            assert left_out(diff) == {"file too large": ["README.md", "big3", "big50"]}
            assert left_out_note(diff) == (
                "\n\nLeft out of the diff (file too large: README.md, big3, big50)."
            )
            assert "file too large: big50 (53687091200 bytes), not in this diff\n" in diff
            with pytest.raises(FileTooLarge, match="file too large"):
                each.read_file("big3")
    finally:
        local.close()
    repo = applied(base, diff, tmp_path)
    assert (repo / "small").read_text() == "ok\n"
    assert (repo / "README.md").read_text() == "# demo\nline two\n"
    assert not (repo / "big3").exists() and not (repo / "big50").exists()
    via_cli = cli(config.root, base, "--diff", "--", "sh", "-c", attacks.SPARSE)
    assert via_cli.returncode == 0
    assert "file too large: big3 (3221225472 bytes), not in this diff\n" in via_cli.stdout


def test_the_diff_budget_marks_what_is_past_it(
    make_sandbox: Callable[..., BwrapSandbox], config: SandboxConfig
) -> None:
    small = replace(config, max_file_bytes=2048, max_diff_bytes=3072)
    sbx = make_sandbox(small)
    sbx.exec("yes | head -c 1500 > a && cp a b && cp a c && yes | head -c 3000 > d")

    diff = sbx.diff()
    assert left_out(diff) == {"file too large": ["c", "d"]}  # a and b fill the 3K budget
    assert diff.count("diff --git") == 2
    with pytest.raises(FileTooLarge):
        sbx.read_file("d")
    assert sbx.read_file("c") == b"y\n" * 750


@pytest.mark.timeout(60)
def test_fifos_and_sockets_never_block_host_side_reads(
    sbx: BwrapSandbox, base: Path, config: SandboxConfig
) -> None:
    assert sbx.exec(["python3", "-c", attacks.SPECIAL]).stdout == "EPERM\nEPERM\n"

    for path in ("pipe", "docs/guide.md", "sock", "link"):
        with pytest.raises(NotRegularFile):
            sbx.read_file(path)
        with pytest.raises(NotRegularFile):
            sbx.write_file(path, b"x")  # a FIFO opened for writing would wait for a reader
    assert [(c.path, c.status) for c in sbx.changed_paths()] == [
        ("docs/guide.md", "deleted"), ("link", "added"),
    ]  # fmt: skip
    diff = sbx.diff()
    assert diff.startswith("diff --git a/docs/guide.md b/docs/guide.md\ndeleted file mode 100644\n")
    assert "diff --git a/link b/link\nnew file mode 120000\n" in diff
    via_cli = cli(config.root, base, "--diff", "--", "python3", "-c", attacks.SPECIAL)
    assert via_cli.returncode == 0 and via_cli.stdout == "EPERM\nEPERM\n" + diff


@pytest.mark.timeout(60)
@pytest.mark.skipif(os.geteuid() != 0, reason="only root makes device nodes")
def test_device_nodes_are_never_opened_host_side(
    make_sandbox: Callable[..., BwrapSandbox], base: Path, config: SandboxConfig
) -> None:
    os.mknod(base / "chr", stat.S_IFCHR | 0o666, os.makedev(1, 3))  # /dev/null's numbers
    os.mkfifo(base / "pipe")
    sbx = make_sandbox()
    assert sbx._holder is not None
    with sbx.as_owner():  # no one, not even a root worker, makes a device node in its upper layer
        os.mkfifo(f"{sbx._view}/upper/made")
    local = create_sandbox(base, replace(config, backend="local"))
    try:
        os.mknod(local.workspace / "made", stat.S_IFCHR | 0o666, os.makedev(1, 3))  # type: ignore[attr-defined]
        for each in (sbx, local):
            for path in ("chr", "pipe", "made"):
                with pytest.raises(NotRegularFile, match=r"device|FIFO"):
                    each.read_file(path)
                with pytest.raises(NotRegularFile, match=r"device|FIFO"):
                    each.write_file(path, b"x")
            assert each.changed_paths() == [] and each.diff() == ""
    finally:
        local.close()


def test_git_names_in_any_case_and_at_any_depth_stay_out_of_the_diff(
    sbx: BwrapSandbox, base: Path, config: SandboxConfig, tmp_path: Path
) -> None:
    local = create_sandbox(base, replace(config, backend="local"))
    try:
        for each in (sbx, local):
            assert each.exec(attacks.GIT_NAMES).exit_code == 0
            assert [(c.path, c.status) for c in each.changed_paths()] == [("fine.txt", "added")]
            diff = each.diff()
            # Named once each, by the folder (not every file in it); the top .git is expected.
            assert left_out(diff) == {"git's own name": [".GIT", "a/.Git", "sub/.git"]}
            assert left_out_note(diff).endswith("(git's own name: .GIT, a/.Git, sub/.git).")
            assert [line for line in diff.splitlines() if line.startswith("diff --git")] == [
                "diff --git a/fine.txt b/fine.txt"
            ]
    finally:
        local.close()
    repo = applied(base, diff, tmp_path)
    assert (repo / "fine.txt").read_text() == "ok\n"
    assert not (repo / "sub").exists() and not (repo / "a").exists()
    assert sorted(p.name for p in repo.iterdir() if p.name.casefold() == ".git") == [".git"]


def test_cgroups_made_beneath_the_sandbox_go_with_it(
    make_sandbox: Callable[..., BwrapSandbox],
) -> None:
    sbx = make_sandbox()
    assert sbx.cgroup is not None
    inside: list[subprocess.Popen[bytes]] = []
    for directory in sbx.cgroup.dirs:  # what a command could make after mounting cgroup v1
        for child in (directory / "a" / "b", directory / "c"):
            child.mkdir(parents=True)
            inside.append(subprocess.Popen(["sleep", "300"]))
            (child / "cgroup.procs").write_text(str(inside[-1].pid))
    assert sbx.exec("echo alive").stdout == "alive\n"

    sbx.close()

    assert [p.wait(timeout=30) for p in inside] == [-9] * len(inside)
    assert not sbx.dir.exists() and not any(d.exists() for d in sbx.cgroup.dirs)
