"""A simulated cluster for the tests: one network namespace per host on a private bridge."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import uuid
from collections.abc import Sequence
from pathlib import Path

from cli.processes import spawn
from tests.waiting import wait_until


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def cannot_make_namespaces() -> str | None:
    """Why this machine cannot make network namespaces (not root, no `ip`, a refusal), or None."""
    probe = f"autan-probe-{uuid.uuid4().hex[:6]}"
    try:
        _ip("netns", "add", probe)
    except (OSError, RuntimeError) as exc:
        return str(exc)
    _ip("netns", "del", probe)
    return None


class Cluster:
    """Hosts, each a network namespace with one address on a /24 behind a bridge.

    This process is on the bridge too (the `.1` address): the operator's laptop. Each host's
    processes also get a UTS namespace with the host's name as hostname, so a worker names
    itself after its host.
    """

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.tag = uuid.uuid4().hex[:5]
        self.subnet = f"10.{random.randint(100, 250)}.{random.randint(0, 255)}"
        self.bridge = f"acb{self.tag}"
        self.hosts: dict[str, str] = {}
        _ip("link", "add", self.bridge, "type", "bridge", "nf_call_iptables", "0")
        _ip("addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    @property
    def laptop(self) -> str:
        return f"{self.subnet}.1"

    def namespace(self, host: str) -> str:
        return f"autan-{self.tag}-{host}"

    def enter(self, host: str) -> list[str]:
        """The command prefix that runs a program on `host`. Not `ip netns exec`: that mounts a
        /sys of its own, without the cgroup file system the sandboxes' limits need."""
        return ["nsenter", f"--net=/run/netns/{self.namespace(host)}"]

    def add(self, host: str) -> str:
        """A new host; its address."""
        address = f"{self.subnet}.{len(self.hosts) + 2}"
        ns, outside, inside = self.namespace(host), f"ac{self.tag}{len(self.hosts)}", "eth0"
        self.hosts[host] = address
        _ip("netns", "add", ns)
        _ip("link", "add", outside, "type", "veth", "peer", "name", f"ap{self.tag}")
        _ip("link", "set", f"ap{self.tag}", "netns", ns)
        _ip("-n", ns, "link", "set", f"ap{self.tag}", "name", inside)
        _ip("-n", ns, "addr", "add", f"{address}/24", "dev", inside)
        _ip("-n", ns, "link", "set", inside, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("link", "set", outside, "master", self.bridge)
        _ip("link", "set", outside, "up")
        return address

    def start(
        self, host: str, name: str, argv: Sequence[str], env: dict[str, str], user: str = ""
    ) -> subprocess.Popen[bytes]:
        """Run `argv` on `host` (as `user` where given), its output in LOGS/NAME.log."""
        as_user = ["runuser", "-u", user, "--"] if user else []
        wrapped = [
            *self.enter(host),
            "unshare",
            "--uts",
            "--",
            "sh",
            "-c",
            'hostname "$0" && exec "$@"',
            host,
            *as_user,
            *argv,
        ]
        return spawn(name, wrapped, self.logs / f"{name}.log", env).process

    def pids(self, host: str) -> list[int]:
        listed = subprocess.run(
            ["ip", "netns", "pids", self.namespace(host)], capture_output=True, text=True
        )
        return [int(pid) for pid in listed.stdout.split()]

    def kill(self, host: str) -> None:
        """SIGKILL every process of `host` at once, as a power cut would; wait until none is left."""

        def gone() -> bool:
            pids = self.pids(host)
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            return not pids

        wait_until(gone, timeout=30, interval=0.1, what=f"every process of {host} to die")

    def close(self) -> None:
        for host in self.hosts:
            with contextlib.suppress(AssertionError):
                self.kill(host)
            with contextlib.suppress(RuntimeError):
                _ip("netns", "del", self.namespace(host))
        with contextlib.suppress(RuntimeError):
            _ip("link", "del", self.bridge)  # takes the veth ends on it too
