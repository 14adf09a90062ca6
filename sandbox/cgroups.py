"""Per-sandbox cgroups: find a usable hierarchy (v2, else v1), set limits, read what they did."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sandbox.config import LimitsConfig

PARENT = "autan-sandboxes"
_V1_CONTROLLERS = ("memory", "pids", "cpu")


@dataclass(frozen=True)
class CgroupSupport:
    """What detection found: the version in use and, per controller, the parent directory."""

    version: Literal["v2", "v1", "none"]
    parents: dict[str, Path] = field(default_factory=dict)
    reason: str = ""


def _self_paths() -> dict[str, str]:
    paths: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else ["unified"]:
            paths[name] = path
    return paths


def _mounts() -> list[tuple[str, str, list[str]]]:
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, post = line.split(" - ", 1)
        fstype, _, options = post.split(" ")[:3]
        if fstype in ("cgroup", "cgroup2"):
            found.append((fstype, pre.split(" ")[4], options.split(",")))
    return found


def _own_dir(mount: str, path: str) -> Path:
    own = Path(mount) / path.lstrip("/")
    return own if own.is_dir() else Path(mount)


def _try_v2(mount: str, path: str) -> CgroupSupport | None:
    own = _own_dir(mount, path)
    available = (own / "cgroup.controllers").read_text().split()
    if not {"memory", "pids"} <= set(available):
        return None
    parent = own / PARENT
    try:
        parent.mkdir(exist_ok=True)
        if not os.access(parent, os.W_OK):
            return None
        wanted = [c for c in ("memory", "pids", "cpu") if c in available]
        (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in wanted))
    except OSError:
        return None
    return CgroupSupport("v2", {c: parent for c in wanted})


def _try_v1(mounts: list[tuple[str, str, list[str]]], self_paths: dict[str, str]) -> CgroupSupport:
    parents: dict[str, Path] = {}
    for controller in _V1_CONTROLLERS:
        mount = next((m for t, m, o in mounts if t == "cgroup" and controller in o), None)
        if mount is None or controller not in self_paths:
            continue
        parent = _own_dir(mount, self_paths[controller]) / PARENT
        try:
            parent.mkdir(exist_ok=True)
        except OSError:
            continue
        if not os.access(parent, os.W_OK):  # made by another user (root) before us
            continue
        parents[controller] = parent
    if {"memory", "pids"} <= parents.keys():
        return CgroupSupport("v1", parents)
    return CgroupSupport("none", reason="no writable memory and pids controllers (v2 or v1)")


@functools.cache
def detect() -> CgroupSupport:
    """Prefer v2 where memory and pids are delegated to us; else v1 controllers; else none."""
    mounts, self_paths = _mounts(), _self_paths()
    for fstype, mount, _ in mounts:
        if fstype == "cgroup2" and "unified" in self_paths:
            with contextlib.suppress(OSError):
                found = _try_v2(mount, self_paths["unified"])
                if found is not None:
                    return found
    return _try_v1(mounts, self_paths)


def _counter(path: Path, key: str) -> int:
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    return 0


class SandboxCgroup:
    """One sandbox's cgroup in every usable controller; commands join it before they exec."""

    def __init__(self, support: CgroupSupport, name: str, limits: LimitsConfig) -> None:
        self.support = support
        self.dirs = sorted({parent / name for parent in support.parents.values()})
        for directory in self.dirs:
            directory.mkdir(exist_ok=True)
        self._write_limits(limits)

    def _write_limits(self, limits: LimitsConfig) -> None:
        p = self.support.parents
        if self.support.version == "v2":
            d = p["memory"] / self.dirs[0].name
            if limits.memory is not None:
                (d / "memory.max").write_text(str(limits.memory))
                with contextlib.suppress(OSError):
                    (d / "memory.swap.max").write_text("0")
            if limits.pids is not None:
                (d / "pids.max").write_text(str(limits.pids))
            if limits.cpus is not None and "cpu" in p:
                (d / "cpu.max").write_text(f"{int(limits.cpus * 100_000)} 100000")
            return
        name = self.dirs[0].name
        if limits.memory is not None:
            (p["memory"] / name / "memory.limit_in_bytes").write_text(str(limits.memory))
            with contextlib.suppress(OSError):
                (p["memory"] / name / "memory.memsw.limit_in_bytes").write_text(str(limits.memory))
        if limits.pids is not None:
            (p["pids"] / name / "pids.max").write_text(str(limits.pids))
        if limits.cpus is not None and "cpu" in p:
            (p["cpu"] / name / "cpu.cfs_period_us").write_text("100000")
            (p["cpu"] / name / "cpu.cfs_quota_us").write_text(str(int(limits.cpus * 100_000)))

    @property
    def procs_files(self) -> list[Path]:
        return [d / "cgroup.procs" for d in self.dirs]

    def counters(self) -> tuple[int, int]:
        """(OOM kills, times the process limit refused a fork) so far."""
        mem = self.support.parents["memory"] / self.dirs[0].name
        pids = self.support.parents["pids"] / self.dirs[0].name
        oom_file = "memory.events" if self.support.version == "v2" else "memory.oom_control"
        return _counter(mem / oom_file, "oom_kill"), _counter(pids / "pids.events", "max")

    def pids(self) -> set[int]:
        found: set[int] = set()
        for procs in self.procs_files:
            with contextlib.suppress(OSError):
                found.update(int(p) for p in procs.read_text().split())
        return found

    def remove(self, grace_s: float = 5.0) -> None:
        """Kill whatever is left in it, then remove it."""
        remove_cgroup(self.dirs, grace_s)


def remove_cgroup(dirs: list[Path], grace_s: float = 5.0) -> None:
    """Kill every process in each cgroup and in any cgroup made beneath it (a command inside
    can make its own: cgroup v1 mounted in a namespace of its own, or v2 through its cgroup
    namespace), then remove them deepest first. Raises OSError when one is still busy after
    `grace_s` (a process that does not die)."""
    deadline = time.monotonic() + grace_s
    for directory in dirs:
        while tree := _deepest_first(directory):
            for cgroup in tree:
                _kill(cgroup)
            busy: OSError | None = None
            for cgroup in tree:
                try:
                    cgroup.rmdir()
                except FileNotFoundError:
                    pass
                except OSError as exc:  # processes still exiting, or a child made meanwhile
                    busy = exc
            if busy is None:
                break
            if time.monotonic() > deadline:
                raise busy
            time.sleep(0.01)


def _deepest_first(directory: Path) -> list[Path]:
    """`directory` and the cgroups beneath it, children before their parents."""
    return [Path(path) for path, _, _ in os.walk(directory, topdown=False)]


def _kill(cgroup: Path) -> None:
    """SIGKILL what is in `cgroup` itself (v2's cgroup.kill takes its whole subtree at once)."""
    with contextlib.suppress(OSError):
        (cgroup / "cgroup.kill").write_text("1")
        return
    try:
        pids = [int(p) for p in (cgroup / "cgroup.procs").read_text().split()]
    except OSError:
        return
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def orphan_dirs(name: str) -> list[Path]:
    """The cgroup directories of a sandbox named `name`, wherever detection put them (with
    whatever was made beneath them: `remove_cgroup` takes those first)."""
    support = detect()
    return sorted({p / name for p in support.parents.values() if (p / name).exists()})
