"""The `autan` command: a client of the API, and the commands that run the server."""

from __future__ import annotations

from cli.client import AutanClient, TaskPage
from cli.config import CliSettings
from cli.errors import CliError

__all__ = ["AutanClient", "CliError", "CliSettings", "TaskPage"]
