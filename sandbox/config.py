"""Settings shared by every sandbox backend: where sandboxes live, their limits, their view."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, Field, field_validator, model_validator

from sandbox.network import NetworkConfig

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


class LimitsConfig(BaseModel):
    """Resource limits of one sandbox; every command in it shares them."""

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

    @field_validator("memory", "disk", mode="before")
    @classmethod
    def _sizes(cls, value: str | int | None) -> int | None:
        return None if value is None else parse_size(value)


class SandboxConfig(BaseModel):
    """How sandboxes are made; one per worker."""

    backend: str = "bwrap"
    """Which backend: `bwrap` (isolated, the default) or `local` (no isolation, development)."""

    root: Path = Field(default_factory=default_root)
    """Directory of the sandboxes' own state (lock files, mount points); never seen inside."""

    network: NetworkConfig = Field(default_factory=NetworkConfig)
    """What commands may reach: by default nothing but a private loopback (`true` means `full`)."""

    allow_full_network: bool = False
    """The operator lets the `full` network policy be used; refused otherwise."""

    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    """Resource limits of each sandbox."""

    host_ids: int = Field(default=1_000_000_000, ge=1)
    """First host uid and gid of the range a root worker's sandboxes map to (65,536 ids, like
    an /etc/subuid entry); the sandbox's user is the range's first id, never host root. A worker
    that is not root maps the sandbox's user to itself and ignores this."""

    ro_binds: list[Path] = Field(default_factory=list)
    """Extra host paths shown read-only at the same place inside (a toolchain under /opt)."""

    exclude: list[str] = Field(default_factory=lambda: [".git"])
    """Top-level names left out of `changed_paths()` and `diff()`."""

    max_file_bytes: int = MAX_FILE_BYTES
    """Largest file the host reads out of a sandbox (`read_file`, `diff`, live sync), by its
    apparent size (a sparse file counts in full); a diff marks a bigger one `file too large`."""

    max_diff_bytes: int = 50 << 20
    """Bytes of file content one `diff()` or `changed_paths()` reads in all; past it, the
    remaining files are marked `file too large` too."""

    @field_validator("max_file_bytes", "max_diff_bytes", mode="before")
    @classmethod
    def _bounds(cls, value: str | int) -> int:
        return parse_size(value)

    @field_validator("network", mode="before")
    @classmethod
    def _network(cls, value: object) -> object:
        if isinstance(value, bool):  # the old switch
            return {"mode": "full" if value else "none"}
        return {"mode": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _full_allowed(self) -> SandboxConfig:
        if self.network.mode == "full" and not self.allow_full_network:
            raise ValueError(FULL_REFUSED)
        return self


FULL_REFUSED = (
    "the `full` network policy is off on this platform: use `allowlist` with the hosts needed, "
    "or have the operator set allow_full_network (AUTAN_NETWORK_FULL=true)"
)
