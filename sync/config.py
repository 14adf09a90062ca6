"""Settings of the sync daemon: where its state lives, how it waits, how it watches."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    """The platform's data directory, as orchestrator.config has it (sync sits below the
    orchestrator in the package map and does not import it)."""
    return Path.home() / ".local" / "share" / "autan"


class DaemonConfig(BaseModel):
    """How one daemon coalesces, retries and watches."""

    settle_s: float = Field(default=0.01, gt=0)
    """Quiet time after the last change before a burst is sent (an editor's save is several)."""

    max_settle_s: float = Field(default=0.5, gt=0)
    """Longest a burst is held back while changes keep coming."""

    retry_s: float = Field(default=0.5, gt=0)
    """First wait after the server could not be reached; doubles up to `retry_max_s`."""

    retry_max_s: float = Field(default=15.0, gt=0)
    """Longest wait between tries while the server is unreachable."""

    observer: Literal["auto", "inotify", "polling"] = "auto"
    """How changes are seen: inotify, polling, or inotify falling back to polling at its limit."""

    poll_interval_s: float = Field(default=1.0, gt=0)
    """How often the polling observer looks, when it is in use."""


class SyncSettings(BaseSettings):
    """Read from the environment (prefix `AUTAN_`; `AUTAN_SYNC_DAEMON__X`) by `autan sync`."""

    model_config = SettingsConfigDict(
        env_prefix="AUTAN_", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = Field(default_factory=default_data_dir)
    """The platform's data directory (AUTAN_DATA_DIR)."""

    sync_state_dir: Path | None = None
    """Where each checkout's state file (what the server holds) is kept; DATA_DIR/sync if unset."""

    sync_daemon: DaemonConfig = Field(default_factory=DaemonConfig)
    """Coalescing, retries and watching."""

    @property
    def state_dir(self) -> Path:
        return (self.sync_state_dir or self.data_dir / "sync").expanduser()
