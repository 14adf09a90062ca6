"""The `autan` command: a client of the API, and the commands that run the server."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cli.client import AutanClient, TaskPage
    from cli.config import CliSettings
    from cli.errors import CliError

# Imported on first use: `autan --help` and `autan sandbox run` need no HTTP client.
_HOMES = {
    "AutanClient": "client",
    "TaskPage": "client",
    "CliSettings": "config",
    "CliError": "errors",
}

__all__ = ["AutanClient", "CliError", "CliSettings", "TaskPage"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'cli' has no attribute {name!r}")
    return getattr(importlib.import_module(f"cli.{_HOMES[name]}"), name)
