"""Each attack fails inside the sandbox, through the API and through `autan sandbox run`."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox.bwrap import BwrapSandbox
from sandbox.config import LimitsConfig, SandboxConfig
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


def test_network_switch_really_opens_the_network(
    make_sandbox: Callable[..., BwrapSandbox], listener: socket.socket, config: SandboxConfig
) -> None:
    open_sbx = make_sandbox(config.model_copy(update={"network": True}))
    code = attacks.CONNECT.format(port=listener.getsockname()[1])

    assert open_sbx.exec(["python3", "-c", code]).stdout == "ESCAPED\n"
    assert not nobody_connected(listener)


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
        str(victim.mnt), f"/proc/{victim._holder.pid}/root{victim.mnt}/merged/secret.txt",
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
    small = config.model_copy(update={"limits": LimitsConfig(memory="128M", pids=64, disk="64M")})
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
        "ENOTTY", "ENOTTY", "ENOTTY", "ENXIO",
    ]  # fmt: skip
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
    assert seen.split() == ["ENOTTY", "ENOTTY", "ENOTTY", "ENXIO"]
