"""Escapes through the kernel fail whoever runs the worker: as root here, and as `nobody`.

CI runs as root, so the unprivileged worker is this test's child under `setpriv`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from sandbox import seccomp
from sandbox.bwrap import BwrapSandbox
from sandbox.config import LimitsConfig, SandboxConfig
from tests.sandbox import escapes
from tests.sandbox.attacks import FORKS

NOBODY = 65534
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Ran:
    exit_code: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Worker:
    """Runs commands in one fresh sandbox as some host user; says who owns what it writes."""

    name: str
    run: Callable[[list[str]], tuple[list[Ran], int]]
    host_uid: int


def _python_for_nobody() -> str:
    """An interpreter `nobody` may execute with this venv's packages (root's pyenv is 0700)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (os.path.realpath(sys.executable), f"/usr/bin/{version}"):
        probe = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        if subprocess.run([*probe, candidate, "-c", ""], capture_output=True).returncode == 0:
            return candidate
    raise RuntimeError(f"no {version} that user nobody can run: install python3 from the OS")


@pytest.fixture
def shared_base() -> Iterator[Path]:
    """A base both users can read: not under pytest's 0700 tmp folder."""
    top = Path(tempfile.mkdtemp(prefix="autan-escapes-", dir="/tmp"))
    top.chmod(0o755)
    (top / "base").mkdir()
    (top / "base" / "README.md").write_text("# demo\n")
    (top / "base" / "README.md").chmod(0o644)
    (top / "base").chmod(0o755)
    yield top / "base"
    shutil.rmtree(top, ignore_errors=True)


def _as_root(base: Path, root: Path) -> Worker:
    config = SandboxConfig(root=root, limits=LimitsConfig(memory="256M", pids=64, disk="64M"))

    def run(commands: list[str]) -> tuple[list[Ran], int]:
        with BwrapSandbox(base, config) as sbx:
            ran = [Ran(r.exit_code, r.stdout, r.stderr) for r in map(sbx.exec, commands)]
            sbx.exec("echo x > owned")
            return ran, os.stat(f"{sbx._view}/upper/owned").st_uid

    return Worker("root", run, config.host_ids)


def _as_nobody(base: Path, root: Path) -> Worker:
    root.mkdir()
    os.chown(root, NOBODY, NOBODY)
    python = _python_for_nobody()
    site = [p for p in sys.path if p.endswith("site-packages") and p.startswith(str(REPO))]
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": os.pathsep.join([str(REPO), *site])}

    def run(commands: list[str]) -> tuple[list[Ran], int]:
        spec = json.dumps({"base": str(base), "root": str(root), "commands": commands})
        argv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", python]
        done = subprocess.run(
            [*argv, "-m", "tests.sandbox.as_user", spec],
            capture_output=True, text=True, env=env, cwd=REPO, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
        assert out["uid"] == NOBODY
        return [Ran(**r) for r in out["results"]], out["owner"]

    return Worker("nobody", run, NOBODY)


@pytest.fixture(params=["root", "nobody"])
def worker(request: pytest.FixtureRequest, shared_base: Path) -> Worker:
    assert os.geteuid() == 0, "these tests play both users and must start as root (CI does)"
    root = shared_base.parent / "sandboxes"
    return (_as_root if request.param == "root" else _as_nobody)(shared_base, root)


def test_the_sandbox_never_writes_as_host_root(worker: Worker) -> None:
    (ran,), owner = worker.run(["id -u; cat /proc/self/uid_map"])

    assert ran.stdout.split() == ["1000", "1000", "0", "1"]
    assert owner == worker.host_uid and owner != 0


def test_no_host_path_of_the_platform_shows_in_mountinfo_or_cmdline(
    worker: Worker, shared_base: Path
) -> None:
    (mounts, cmdline, fds), _ = worker.run(
        ["cat /proc/self/mountinfo /proc/1/mountinfo", "cat /proc/cmdline", "ls /proc/self/fd"]
    )

    assert " /workspace " in mounts.stdout and " / " in mounts.stdout  # it read the real file
    for seen in (mounts.stdout, cmdline.stdout):  # the base, the sandboxes' state: all beneath
        assert str(shared_base.parent) not in seen and "autan" not in seen
    assert cmdline.stdout == ""
    assert fds.stdout.split() == ["0", "1", "2", "3"]  # 3: ls's own look at the folder


def test_core_pattern_cannot_be_set_from_inside(worker: Worker) -> None:
    marker = Path(tempfile.mkdtemp(prefix="autan-core-", dir="/tmp")) / "ran-as-host-root"
    before = Path("/proc/sys/kernel/core_pattern").read_text()
    try:
        (ran, sysctls), _ = worker.run(
            [
                escapes.CORE_PATTERN.format(marker=marker),
                "python3 -c " + _q(escapes.SYSCTLS.format(masked=escapes.MASKED)),
            ]
        )
    finally:
        after = Path("/proc/sys/kernel/core_pattern").read_text()
        if after != before:  # never leave the host broken, even when the test fails
            Path("/proc/sys/kernel/core_pattern").write_text(before)
        shutil.rmtree(marker.parent, ignore_errors=True)

    assert after == before
    assert "core_pattern=0" not in ran.stdout and "Read-only file system" in ran.stderr
    assert not marker.exists()
    masked = [word for p in escapes.MASKED if os.path.exists(p) for word in (p, "0")]
    assert sysctls.stdout.split() == ["writable", "0", *masked]


def test_denied_syscalls_fail_with_eperm(worker: Worker) -> None:
    (ran,), _ = worker.run(["python3 -c " + _q(escapes.syscalls())])

    assert ran.stdout.split() == ["EPERM"] * 15, ran.stderr


def test_no_user_namespace_so_no_cgroup_mount_to_lift_the_limits(worker: Worker) -> None:
    (lift, pids), _ = worker.run([escapes.LIFT, "cat /proc/self/status | grep -c Seccomp:.2"])

    assert "lift=1" in lift.stdout and "Operation not permitted" in lift.stderr
    assert pids.stdout.strip() == "1"  # filter mode 2: every command runs under the filter


def test_limits_stand_after_an_escape_attempt(base: Path, config: SandboxConfig) -> None:
    """As root: a lift attempt, then a fork bomb, a memory hog and a CPU hog each hit the limit."""
    limits = LimitsConfig(memory="256M", pids=64, cpus=0.5, disk="64M", timeout_s=60)
    with BwrapSandbox(base, replace(config, limits=limits)) as sbx:
        assert "lift=1" in sbx.exec(escapes.LIFT).stdout
        forks = sbx.exec(["python3", "-c", FORKS], timeout=30)
        memory = sbx.exec(["python3", "-c", "x = bytearray(512 << 20); print('ESCAPED')"])
        cpu = sbx.exec(["python3", "-c", escapes.CPU_HOG.format(seconds=2)])

    assert forks.pids_limited and int(forks.stdout.split()[1]) < 64
    assert memory.oom_killed and "ESCAPED" not in memory.stdout
    # Half a core for two seconds of wall time: a second of CPU, never the two it asked for.
    assert float(cpu.stdout) < 1.5


def test_the_seccomp_program_is_built_from_one_list() -> None:
    program = seccomp.program()

    assert len(program) % 8 == 0 and 0 < len(program) < 65536  # whole BPF instructions
    assert {"keyctl", "mount", "unshare", "userfaultfd", "io_uring_setup", "bpf"} <= set(
        seccomp.DENIED
    )


def _q(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def test_an_unprivileged_worker_without_a_writable_cgroup_gets_the_one_line_reason(
    shared_base: Path,
) -> None:
    # Root made (and owns) the cgroup parents; nobody may not write them: limits cannot be
    # enforced, which is refused with the documented reason, never a PermissionError.
    assert os.geteuid() == 0, "this test plays the unprivileged user and must start as root"
    BwrapSandbox(shared_base, SandboxConfig(root=shared_base.parent / "as-root")).close()
    root = shared_base.parent / "sandboxes"
    root.mkdir()
    os.chown(root, NOBODY, NOBODY)
    script = (
        "import sys; from pathlib import Path\n"
        "from sandbox.bwrap import BwrapSandbox\n"
        "from sandbox.config import LimitsConfig, SandboxConfig\n"
        "from sandbox.errors import LimitsUnavailable\n"
        f"config = SandboxConfig(root=Path({str(root)!r}), limits=LimitsConfig(memory='64M'))\n"
        "try:\n"
        f"    BwrapSandbox(Path({str(shared_base)!r}), config)\n"
        "except LimitsUnavailable as exc:\n"
        "    sys.exit(f'refused: {exc}')\n"
    )
    done = _python_as_nobody(script)
    assert done.returncode == 1 and done.stdout == "", done.stderr
    assert done.stderr.splitlines() == [
        "refused: cannot enforce memory and process limits: no writable memory and pids "
        "controllers (v2 or v1). Delegate a cgroup to this user, or set "
        "limits.require_cgroups = false to run without them"
    ]
    assert list(root.iterdir()) == []  # nothing left behind


def test_an_unprivileged_worker_leaves_another_user_s_left_sandbox_alone(
    shared_base: Path,
) -> None:
    root = shared_base.parent / "sandboxes"
    (root / "made-by-root").mkdir(parents=True)
    (root / "made-by-root" / "lock").touch(mode=0o600)  # a root worker's, dead
    root.chmod(0o755)
    script = f"from pathlib import Path; from sandbox import reap_orphans\nprint(reap_orphans(Path({str(root)!r})))"
    done = _python_as_nobody(script)
    assert (done.returncode, done.stdout, done.stderr) == (0, "[]\n", "")
    assert (root / "made-by-root" / "lock").exists()


def _python_as_nobody(script: str) -> subprocess.CompletedProcess[str]:
    """Run `script` as user nobody, with this venv's packages (root's own may be closed)."""
    site = [p for p in sys.path if p.endswith("site-packages") and p.startswith(sys.prefix)]
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": os.pathsep.join([str(REPO), *site])}
    argv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    return subprocess.run(
        [*argv, _python_for_nobody(), "-c", script],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=120,
    )  # fmt: skip
