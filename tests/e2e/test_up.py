"""`autan up` end to end: Redis, the API and a worker from nothing, and nothing left after it."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import Autan, base_env
from tests.conftest import TEST_RUNNER
from tests.live import free_port
from tests.waiting import wait_until
from tests.workers import ROOT

BANNER_END = "Ctrl-C stops everything."


class Up:
    """An `autan up` child process and the output it has written so far."""

    def __init__(self, data: Path, port: int, log: Path) -> None:
        self.data, self.port, self.log = data, port, log
        self.url = f"http://127.0.0.1:{port}"
        with log.open("wb") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cli", "up", "--data-dir", str(data), "--port", str(port)],
                env=base_env(AUTAN_RUNNER=TEST_RUNNER),
                cwd=ROOT,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )

    @property
    def output(self) -> str:
        return self.log.read_text()

    def wait_ready(self) -> None:
        def ready() -> bool:
            assert self.process.poll() is None, self.output
            return BANNER_END in self.output

        wait_until(ready, timeout=90, what="autan up to say it is up")


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    started = Up(tmp_path / "data", free_port(), tmp_path / "up.out")
    yield started
    if started.process.poll() is None:
        started.process.kill()  # its children get SIGTERM from the kernel (PDEATHSIG)
        started.process.wait()


def test_up_serves_a_task_and_sigterm_takes_everything_down(up: Up, tmp_path: Path) -> None:
    up.wait_ready()
    token_file = up.data / "admin-token"
    assert f"Autan is up at {up.url}\n" in up.output
    assert f"  admin token  {token_file}\n" in up.output
    assert f"  export AUTAN_URL={up.url}\n" in up.output
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(up.data.stat().st_mode) == 0o700
    health = httpx.get(f"{up.url}/healthz")
    assert health.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}
    children = descendants(up.process.pid)
    commands = " ".join(command_line(pid) for pid in children)
    assert "redis-server" in commands and "uvicorn" in commands and "-m cli worker" in commands

    # No AUTAN_TOKEN: the command reads the admin token from the data directory.
    autan = Autan(base_env(AUTAN_URL=up.url, AUTAN_DATA_DIR=str(up.data)))
    done = autan.process("run", '{"steps": 2}', "--repo", str(tmp_path), "--follow")
    assert done.returncode == 0, done.stderr + up.output
    assert "succeeded: kept attempt 1 of 1" in done.stdout

    twin = autan("up", "--data-dir", str(up.data), "--port", str(free_port()))
    assert twin.returncode == 1
    assert twin.stderr == (
        f"error: another `autan up` is running for {up.data}: stop it first, "
        "or use another --data-dir\n"
    )
    clash = autan("up", "--data-dir", str(tmp_path / "other"), "--port", str(up.port))
    assert clash.returncode == 1
    assert clash.stderr == (
        f"error: cannot listen on 127.0.0.1:{up.port} (Address already in use): something "
        "already uses it; stop it or choose another port with --port\n"
    )

    up.process.send_signal(signal.SIGTERM)
    assert up.process.wait(timeout=60) == 0, up.output
    assert up.output.splitlines()[-2:] == ["stopping (SIGTERM)", "stopped"]
    assert [pid for pid in children if alive(pid)] == []
    assert not (up.data / "redis.sock").exists()


@pytest.mark.slow
def test_up_restarts_a_killed_worker_and_api_and_says_why(up: Up, tmp_path: Path) -> None:
    up.wait_ready()
    children = descendants(up.process.pid)
    api = next(pid for pid in children if "uvicorn" in command_line(pid))
    worker = next(p for p in children if "-m cli worker" in command_line(p) and leads(p))
    os.killpg(worker, signal.SIGKILL)  # the worker and its pool children, no goodbye
    os.kill(api, signal.SIGKILL)

    def restarted() -> set[int]:
        now = {p for p in descendants(up.process.pid) if alive(p)}
        lines = {command_line(p) for p in now - children}
        fresh = any("uvicorn" in c for c in lines) and any("-m cli worker" in c for c in lines)
        return now if fresh else set()

    wait_until(restarted, timeout=60, what="the worker and the API to be started again")
    assert up.process.poll() is None, up.output
    logs = up.data / "logs"
    notes = (logs / "up.log").read_text()
    assert (
        f"worker-1 (pid {worker}) exited with status -9; starting it again in 1s "
        f"(death 1 in a row); its log is {logs / 'worker-1.log'}"
    ) in notes
    assert f"api (pid {api}) exited with status -9; starting it again in 1s" in notes
    assert "started worker-1 again (pid " in notes and "started api again (pid " in notes

    wait_until(lambda: _answers(up.url), timeout=60, what="the API to answer again")
    autan = Autan(base_env(AUTAN_URL=up.url, AUTAN_DATA_DIR=str(up.data)))
    done = autan.process("run", '{"steps": 2}', "--repo", str(tmp_path), "--follow")
    assert done.returncode == 0, done.stderr + up.output
    assert "succeeded: kept attempt 1 of 1" in done.stdout

    survivors = descendants(up.process.pid)
    up.process.send_signal(signal.SIGTERM)
    assert up.process.wait(timeout=60) == 0, up.output
    assert [pid for pid in survivors if alive(pid)] == []


def leads(pid: int) -> bool:
    """Whether `pid` leads its process group (a child of `autan up`, not a pool child)."""
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_up_without_redis_server_says_how_to_get_it(tmp_path: Path) -> None:
    autan = Autan(base_env())
    missing = autan("up", "--data-dir", str(tmp_path), "--port", str(free_port()), PATH="")
    assert missing.returncode == 1
    assert missing.stderr == (
        "error: redis-server is not installed: run `make install`, "
        "or set AUTAN_REDIS_URL to a Redis you run\n"
    )


def descendants(root: int) -> set[int]:
    """Every process under `root`, read from /proc."""
    parents: dict[int, int] = {}
    for path in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(path.parent.name)] = int(path.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError):
            continue  # it ended while we looked
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    stat_file = Path(f"/proc/{pid}/stat")
    try:
        return stat_file.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
