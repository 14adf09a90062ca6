"""The bubblewrap backend: exec, files, streaming, timeouts, cancellation, changes and diff."""

from __future__ import annotations

import dataclasses
import os
import secrets
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from sandbox.bwrap import BwrapSandbox
from sandbox.config import SandboxConfig
from sandbox.errors import SandboxClosed
from tests.sandbox.conftest import mounts_under
from tests.waiting import wait_until


def unique_sleep(seconds: int) -> str:
    """A duration no other run on this host uses, to find this test's own processes by it."""
    return f"{seconds}.{secrets.randbelow(10**9):09d}"


def host_processes_with(marker: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            continue
    return found


def test_execs_share_one_view_and_the_host_reads_it(sbx: BwrapSandbox, base: Path) -> None:
    first = sbx.exec("echo made > new.txt && echo hi >> README.md && pwd && id -un")
    second = sbx.exec(["cat", "new.txt", "README.md"])

    assert (first.exit_code, first.stdout, first.stderr) == (0, "/workspace\nsandbox\n", "")
    assert second.stdout == "made\n# demo\nline two\nhi\n"
    assert sbx.read_file("new.txt") == b"made\n"
    assert (base / "README.md").read_text() == "# demo\nline two\n"
    assert not (base / "new.txt").exists()
    assert first.limits_enforced and first.limit is None


def test_argv_env_stdin_cwd_and_a_minimal_environment(
    sbx: BwrapSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTAN_SECRET", "do-not-leak")
    result = sbx.exec(["sh", "-c", "pwd; cat; env"], cwd="src/pkg", env={"X": "1"}, stdin=b"in\n")

    lines = result.stdout.splitlines()
    assert lines[:2] == ["/workspace/src/pkg", "in"]
    assert "X=1" in lines and "HOME=/tmp" in lines
    assert "do-not-leak" not in result.stdout
    assert sbx.exec("exit 3").exit_code == 3


def test_output_cap_truncates_and_keeps_the_start(sbx: BwrapSandbox) -> None:
    result = sbx.exec("yes abc | head -c 100000; echo err >&2", output_limit=1000)

    assert result.truncated and result.exit_code == 0
    assert result.stdout == ("abc\n" * 250)
    assert result.stderr == "err\n"


def test_output_streams_while_the_command_runs(sbx: BwrapSandbox) -> None:
    seen: list[tuple[str, bytes]] = []

    def on_output(stream: str, chunk: bytes) -> None:
        seen.append((stream, chunk))
        if chunk.startswith(b"first"):
            sbx.write_file("go", b"")  # the command waits for this: only streaming unblocks it

    result = sbx.exec(
        "echo first; while [ ! -e go ]; do sleep 0.01; done; echo second >&2",
        on_output=on_output,
        timeout=30,
    )

    assert not result.timed_out and result.exit_code == 0
    assert seen == [("stdout", b"first\n"), ("stderr", b"second\n")]


def test_timeout_kills_the_whole_tree_even_when_sigterm_is_ignored(sbx: BwrapSandbox) -> None:
    marker = unique_sleep(917)
    result = sbx.exec(f"trap '' TERM; sleep {marker} & sleep {marker} & wait", timeout=0.5)

    assert result.timed_out and result.limit == "timed_out"
    assert result.exit_code != 0
    wait_until(lambda: not host_processes_with(marker), timeout=10, what="sleeps gone")
    cgroup = sbx.cgroup
    assert cgroup is not None and sbx._launcher is not None
    nothing_but = {sbx._launcher.result(timeout=30).proc.pid}  # the next command's launcher
    # The namespace's init is killed too, and leaves the cgroup once it is reaped: a moment
    # after the sleeps on a loaded machine.
    wait_until(lambda: cgroup.pids() == nothing_but, timeout=10, what="the cgroup to empty")
    assert sbx.exec("echo alive").stdout == "alive\n"


def test_stop_event_cancels_a_running_command(sbx: BwrapSandbox) -> None:
    stop = threading.Event()

    def on_output(stream: str, chunk: bytes) -> None:
        stop.set()

    marker = unique_sleep(918)
    result = sbx.exec(f"echo started; sleep {marker}", stop=stop, on_output=on_output, timeout=60)

    assert result.cancelled and not result.timed_out and result.stdout == "started\n"
    wait_until(lambda: not host_processes_with(marker), timeout=10, what="sleep gone")


def test_files_read_write_list(sbx: BwrapSandbox, base: Path) -> None:
    sbx.write_file("deep/new/file.txt", b"data", mode=0o755)
    sbx.write_file("/workspace/abs.txt", b"abs")

    assert sbx.read_file("deep/new/file.txt") == b"data"
    assert sbx.exec("test -x deep/new/file.txt && cat abs.txt").stdout == "abs"
    assert sbx.list_files() == [
        "README.md", "abs.txt", "deep/", "docs/", "escape", "logo.bin", "run.sh", "src/"
    ]  # fmt: skip
    assert sbx.list_files("src/pkg") == ["core.py", "util.py"]
    with pytest.raises(FileNotFoundError):
        sbx.read_file("missing")


def test_changed_paths_and_a_diff_that_git_applies(
    sbx: BwrapSandbox, base: Path, tmp_path: Path
) -> None:
    script = (
        "printf 'def f():\\n    return 2\\n' > src/pkg/core.py; rm docs/old.md; "
        "mv src/pkg/util.py src/pkg/helpers.py; mkdir -p new && echo n > new/n.txt; "
        "chmod +x run.sh; printf '\\000\\001' > logo.bin; ln -s README.md link; "
        "mkdir -p .git && echo x > .git/index; touch docs/guide.md"
    )
    assert sbx.exec(script).exit_code == 0

    changes = {(c.path, c.status) for c in sbx.changed_paths()}
    diff = sbx.diff()

    assert changes == {
        ("docs/old.md", "deleted"), ("link", "added"), ("logo.bin", "modified"),
        ("new/n.txt", "added"), ("run.sh", "modified"), ("src/pkg/core.py", "modified"),
        ("src/pkg/helpers.py", "added"), ("src/pkg/util.py", "deleted"),
    }  # fmt: skip
    assert "rename from src/pkg/util.py\nrename to src/pkg/helpers.py\n" in diff
    assert "Binary files a/logo.bin and b/logo.bin differ\n" in diff
    assert "old mode 100644\nnew mode 100755\n" in diff
    assert "new file mode 120000\n" in diff
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", f"{base}/.", str(copy)], check=True)
    subprocess.run(["git", "init", "-q", str(copy)], check=True)
    applied = subprocess.run(
        ["git", "apply", "--exclude=logo.bin", "-"],
        cwd=copy,
        input=diff.encode(),
        capture_output=True,
    )
    assert applied.returncode == 0, applied.stderr
    assert (copy / "src/pkg/core.py").read_text() == "def f():\n    return 2\n"
    assert (copy / "src/pkg/helpers.py").read_text() == "X = 1\n"
    assert not (copy / "docs/old.md").exists() and not (copy / "src/pkg/util.py").exists()


def test_deleting_and_recreating_a_directory(sbx: BwrapSandbox) -> None:
    sbx.exec("rm -r docs && mkdir docs && echo fresh > docs/guide.md && rm -r src")

    assert [(c.path, c.status) for c in sbx.changed_paths()] == [
        ("docs/guide.md", "modified"), ("docs/old.md", "deleted"),
        ("src/pkg/core.py", "deleted"), ("src/pkg/util.py", "deleted"),
    ]  # fmt: skip


def test_close_leaves_no_process_mount_or_directory(make_sandbox: object) -> None:
    assert callable(make_sandbox)
    sbx: BwrapSandbox = make_sandbox()
    holder = sbx._holder
    assert holder is not None
    done = threading.Event()
    marker = unique_sleep(919)
    runner = threading.Thread(target=lambda: (sbx.exec(f"sleep {marker}"), done.set()))
    runner.start()
    wait_until(lambda: host_processes_with(marker), what="sleep started")

    sbx.close()
    runner.join(timeout=10)

    assert done.is_set() and holder.poll() is not None
    assert not host_processes_with(marker)
    assert not sbx.dir.exists()
    with pytest.raises(SandboxClosed):
        sbx.exec("true")


def test_no_mount_of_an_open_sandbox_stays_in_the_hosts_namespace(sbx: BwrapSandbox) -> None:
    # a root worker's clone of the base is unmounted beside the holder's start, not on its path
    wait_until(lambda: mounts_under(sbx.dir) == [], what="the clones unmounted on the host")

    assert sbx.exec("cat README.md").stdout == "# demo\nline two\n"


def test_a_read_only_bind_is_seen_inside_and_leaves_no_mount_on_the_host(
    make_sandbox: object, config: SandboxConfig
) -> None:
    assert callable(make_sandbox)
    with tempfile.TemporaryDirectory(dir="/var/tmp") as outside:  # the sandbox has its own /tmp
        tool = Path(outside, "tool")
        tool.mkdir()
        (tool / "version").write_text("1.2\n")
        sbx: BwrapSandbox = make_sandbox(dataclasses.replace(config, ro_binds=[tool]))
        wait_until(lambda: mounts_under(sbx.dir) == [], what="the clones unmounted on the host")

        ran = sbx.exec(f"cat {tool}/version; touch {tool}/new")
        sbx.close()

        assert ran.stdout == "1.2\n" and ran.exit_code != 0
        assert not (tool / "new").exists()


def test_etc_links_into_usr_are_made_again_and_read_the_same(sbx: BwrapSandbox) -> None:
    links = [n for n in ("localtime", "os-release") if os.path.islink(f"/etc/{n}")]
    script = "for f in /etc/*; do [ -L $f ] && echo $f; done; cat /etc/os-release /etc/hosts"
    ran = sbx.exec(script)

    listed = [line for line in ran.stdout.splitlines() if line.startswith("/etc/")]
    assert listed == [f"/etc/{n}" for n in sorted(links)]
    host = Path("/etc/os-release").read_text() + Path("/etc/hosts").read_text()
    assert ran.exit_code == 0 and ran.stdout.endswith(host)
    for name in links:  # the same link, resolving to the same file through the read-only /usr
        inside = sbx.exec(["sh", "-c", f"readlink /etc/{name}; sha256sum < /etc/{name}"])
        digest = subprocess.run(
            ["sh", "-c", f"sha256sum < /etc/{name}"], capture_output=True, text=True
        )
        assert inside.stdout == f"{os.readlink(f'/etc/{name}')}\n{digest.stdout}"


def test_etc_files_are_copied_in_read_only_and_folders_bound(sbx: BwrapSandbox) -> None:
    files = ["hosts", "nsswitch.conf", "ld.so.cache", "passwd", "group"]
    script = f"cd /etc && cat {' '.join(files)} | sha256sum; echo x >> hosts; chmod 777 hosts"
    ran = sbx.exec(script + "; cat /proc/self/mountinfo")

    generated = "root:x:0:0::/:/bin/sh\nsandbox:x:1000:1000::/tmp:/bin/sh\n"
    generated += "root:x:0:\nsandbox:x:1000:\n"
    host = b"".join(Path(f"/etc/{n}").read_bytes() for n in files[:3]) + generated.encode()
    digest = subprocess.run(["sha256sum"], input=host, capture_output=True).stdout.decode()
    assert ran.stdout.startswith(digest)
    assert ran.stderr.count("Read-only file system") == 2
    mount_points = [line.split()[4] for line in ran.stdout.splitlines()[1:]]
    assert not any(f"/etc/{n}" in mount_points for n in files)  # copies, not mounts
    assert "/etc/ssl" in mount_points and "/usr" in mount_points  # folders stay bound
