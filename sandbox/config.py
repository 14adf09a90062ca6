"""Settings shared by every sandbox backend: where sandboxes live, their limits, their view."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from sandbox.network import NetworkConfig, NetworkMode

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(value: str | int) -> int:
    """Bytes from `123`, `512M`, `2G`, `1.5g` (binary units)."""
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)i?b?\s*", value.lower())
    if not match:
        raise ValueError(f"not a size: {value!r} (use a number with an optional K, M, G or T)")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


MAX_FILE_BYTES = 10 << 20
"""The default bound on one file the host reads out of a sandbox."""


def default_root() -> Path:
    return Path.home() / ".local" / "share" / "autan" / "sandboxes"


@dataclass
class LimitsConfig:
    """Resource limits of one sandbox; every command in it shares them. Sizes may be given as
    text (`512M`)."""

    memory: int | None = 2 << 30
    """Memory of all its processes, in bytes (files it writes count too); None: no limit."""

    pids: int | None = 512
    """Processes and threads alive at once; None: no limit."""

    cpus: float | None = None
    """CPU time as a number of cores (1.5 = one and a half); None: no limit."""

    disk: int = 1 << 30
    """Bytes the sandbox may write to its workspace and /tmp together."""

    timeout_s: float = 600.0
    """Wall time of one command when the caller gives none; its whole process tree is killed."""

    output_limit: int = 1 << 20
    """Bytes kept of each of stdout and stderr; the rest is read and dropped."""

    require_cgroups: bool = True
    """Refuse to make a sandbox when memory and pids limits cannot be enforced (else say so)."""

    def __post_init__(self) -> None:
        self.memory = None if self.memory is None else parse_size(self.memory)
        self.disk = parse_size(self.disk)


@dataclass
class SandboxConfig:
    """How sandboxes are made; one per worker.

    Dataclasses, not pydantic models, so that `autan sandbox run` starts without importing
    pydantic; made with a bad value, each raises ValueError saying which."""

    backend: str = "bwrap"
    """Which backend: `bwrap` (isolated, the default) or `local` (no isolation, development)."""

    root: Path = field(default_factory=default_root)
    """Directory of the sandboxes' own state (lock files, mount points); never seen inside."""

    network: NetworkConfig = field(default_factory=NetworkConfig)
    """What commands may reach: by default nothing but a private loopback (`true` means `full`)."""

    allow_full_network: bool = False
    """The operator lets the `full` network policy be used; refused otherwise."""

    limits: LimitsConfig = field(default_factory=LimitsConfig)
    """Resource limits of each sandbox."""

    host_ids: int = 1_000_000_000
    """First host uid and gid of the range a root worker's sandboxes map to (65,536 ids, like
    an /etc/subuid entry); the sandbox's user is the range's first id, never host root. A worker
    that is not root maps the sandbox's user to itself and ignores this."""

    ro_binds: list[Path] = field(default_factory=list)
    """Extra host paths shown read-only at the same place inside (a toolchain under /opt)."""

    exclude: list[str] = field(default_factory=lambda: [".git"])
    """Top-level names left out of `changed_paths()` and `diff()`."""

    max_file_bytes: int = MAX_FILE_BYTES
    """Largest file the host reads out of a sandbox (`read_file`, `diff`, live sync), by its
    apparent size (a sparse file counts in full); a diff marks a bigger one `file too large`."""

    max_diff_bytes: int = 50 << 20
    """Bytes of file content one `diff()` or `changed_paths()` reads in all; past it, the
    remaining files are marked `file too large` too."""

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.network = _network(self.network)
        self.ro_binds = [Path(p) for p in self.ro_binds]
        self.max_file_bytes = parse_size(self.max_file_bytes)
        self.max_diff_bytes = parse_size(self.max_diff_bytes)
        if self.host_ids < 1:
            raise ValueError(f"host_ids: {self.host_ids} is not at least 1")
        if self.network.mode == "full" and not self.allow_full_network:
            raise ValueError(FULL_REFUSED)


def _network(value: Any) -> NetworkConfig:
    """A policy from a NetworkConfig, its fields, its mode, or the old switch (True: full)."""
    if isinstance(value, bool):
        return NetworkConfig(mode="full" if value else "none")
    if isinstance(value, str):
        return NetworkConfig(mode=cast("NetworkMode", value))  # checked as it is made
    return NetworkConfig(**value) if isinstance(value, dict) else value


FULL_REFUSED = (
    "the `full` network policy is off on this platform: use `allowlist` with the hosts needed, "
    "or have the operator set allow_full_network (AUTAN_NETWORK_FULL=true)"
)
