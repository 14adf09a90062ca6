"""`autan sync` in a child process, as a user runs it: its output, its memory, its end."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.waiting import wait_until
from tests.workers import ROOT

# The kernel's ru_maxrss of a process is the larger of its own peak and the peak of the
# process it was before exec: a child exec'd straight from this one (pytest, a benchmark,
# often hundreds of MiB) would report at least our size. So a small reaper (a bare Python,
# about 8 MiB) spawns the daemon, forwards SIGTERM and SIGINT to it, and writes its pid,
# then its exit status, ru_maxrss and wall time.
REAPER = """\
import json, os, signal, sys, time
report, argv = sys.argv[1], sys.argv[2:]
started = time.perf_counter()
pid = os.posix_spawn(argv[0], argv, os.environ)
with open(report + ".tmp", "w") as file:
    file.write(str(pid))
os.replace(report + ".tmp", report + ".pid")
for signum in (signal.SIGTERM, signal.SIGINT):
    signal.signal(signum, lambda n, _: os.kill(pid, n))
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - started
with open(report + ".tmp", "w") as file:
    json.dump({"status": status, "maxrss_kib": usage.ru_maxrss, "wall_s": wall}, file)
os.replace(report + ".tmp", report)
sys.exit(os.waitstatus_to_exitcode(status))
"""


@dataclass(frozen=True)
class Ended:
    """How a child daemon ended: exit code, peak RSS (the kernel's ru_maxrss), wall time."""

    returncode: int
    peak_rss_mib: float
    wall_s: float


class SyncProcess:
    """`python -m cli sync PATH [ARGS]` with its output in `log`, started by the reaper in a
    session of their own (so killing it takes nothing else)."""

    def __init__(self, env: dict[str, str], path: Path, *args: str, log: Path) -> None:
        self.log = log
        self.report = log.with_name(log.name + ".rusage")
        argv = [sys.executable, "-m", "cli", "sync", str(path), *args]
        with log.open("ab") as out:
            self.reaper = subprocess.Popen(
                [sys.executable, "-S", "-c", REAPER, str(self.report), *argv],
                env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.ended: Ended | None = None
        self._pid: int | None = None

    @property
    def pid(self) -> int:
        """The daemon's pid (not the reaper's)."""
        if self._pid is None:
            pidfile = self.report.with_name(self.report.name + ".pid")
            self._pid = int(
                wait_until(lambda: pidfile.exists() and pidfile.read_text(), what="the daemon pid")
            )
        return self._pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def running(self) -> bool:
        return self.reaper.poll() is None

    def status_mib(self, field: str) -> float:
        """A memory line of /proc/PID/status (VmRSS now, VmHWM its peak so far), in MiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024  # the kernel writes kB
        raise LookupError(f"no {field} in /proc/{self.pid}/status")

    def wait(self, timeout: float) -> Ended:
        """Wait for the daemon to exit (within `timeout` seconds, else fail): how it ended."""
        if self.ended is None:
            wait_until(
                lambda: not self.running(), timeout=timeout, interval=0.01,
                what=f"`autan sync` (logging to {self.log}) to exit",
            )  # fmt: skip
            report = json.loads(self.report.read_text())
            self.ended = Ended(
                os.waitstatus_to_exitcode(report["status"]),
                report["maxrss_kib"] / 1024,  # ru_maxrss is in KiB on Linux
                report["wall_s"],
            )
        return self.ended

    def stop(self, timeout: float = 30) -> Ended:
        """SIGTERM (what Ctrl-C does: the daemon ends its round and exits), then wait."""
        if self.ended is None:
            self.reaper.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the reaper and the daemon if they still run (clean-up after a failure)."""
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.reaper.pid, signal.SIGKILL)
            self.reaper.wait(timeout=10)
