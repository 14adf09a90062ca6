"""Isolated copy-on-write workspaces over shared base trees: backends, limits, trees, pool."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from sandbox.base import Change, ExecResult, Sandbox
from sandbox.cleanup import reap_orphans
from sandbox.config import LimitsConfig, SandboxConfig, parse_size
from sandbox.errors import SandboxError
from sandbox.network import Connection, NetworkConfig, OnConnection

__all__ = [
    "BACKENDS",
    "Change",
    "Connection",
    "ExecResult",
    "LimitsConfig",
    "NetworkConfig",
    "Sandbox",
    "SandboxConfig",
    "SandboxError",
    "create_sandbox",
    "default_backend",
    "parse_size",
    "reap_orphans",
]

BACKENDS = {"bwrap": "sandbox.bwrap:BwrapSandbox", "local": "sandbox.local:LocalSandbox"}


def default_backend() -> str:
    """`bwrap` on Linux, always; `local` only elsewhere."""
    return "bwrap" if sys.platform.startswith("linux") else "local"


def create_sandbox(
    base: Path, config: SandboxConfig | None = None, on_connection: OnConnection | None = None
) -> Sandbox:
    """A new sandbox over `base` with the backend the config names; `on_connection` hears of
    every connection its commands ask the network proxy for, allowed or refused."""
    config = config or SandboxConfig()
    target = BACKENDS.get(config.backend)
    if target is None:
        valid = ", ".join(sorted(BACKENDS))
        raise ValueError(f"unknown sandbox backend {config.backend!r}; valid: {valid}")
    module_name, _, attr = target.partition(":")
    module: Any = __import__(module_name, fromlist=[attr])
    sandbox: Sandbox = getattr(module, attr)(base, config, on_connection)
    return sandbox
