"""Settings of the `autan` client commands: which API to talk to, with which token."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from cli.errors import CliError, SettingsInvalid
from orchestrator.config import default_data_dir

ADMIN_TOKEN_FILE = "admin-token"

S = TypeVar("S", bound=BaseSettings)


class CliSettings(BaseSettings):
    """Read from the environment (prefix `AUTAN_`) by the commands only."""

    model_config = SettingsConfigDict(env_prefix="AUTAN_", extra="ignore")

    url: str = "http://127.0.0.1:8000"
    """Base URL of the Autan API."""

    token: str = ""
    """API token; empty means the admin token `autan up` wrote to `DATA_DIR/admin-token`."""

    data_dir: Path = Field(default_factory=default_data_dir)
    """The data directory of a local `autan up`, where its admin token is."""

    @property
    def token_file(self) -> Path:
        return self.data_dir.expanduser() / ADMIN_TOKEN_FILE

    @property
    def resolved_token(self) -> str:
        """The token to send: AUTAN_TOKEN, else the local admin token file."""
        if self.token:
            return self.token.strip()
        try:
            return self.token_file.read_text().strip()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise CliError(f"cannot read the token file {self.token_file}: {exc}") from exc
        raise CliError(
            f"no API token: set AUTAN_TOKEN to a token from `autan token create`, or run "
            f"`autan up`, which writes {self.token_file} (set AUTAN_DATA_DIR if it is elsewhere)"
        )


def load(settings_class: type[S], **values: Any) -> S:
    """Build settings from the environment, naming the variable when a value is wrong."""
    try:
        return settings_class(**values)
    except ValidationError as exc:
        problems = "; ".join(_problem(error["loc"], error["msg"]) for error in exc.errors())
        raise SettingsInvalid(f"invalid settings: {problems}") from exc


def _problem(location: tuple[int | str, ...], message: str) -> str:
    if not location:
        return message
    return f"AUTAN_{'_'.join(str(part) for part in location).upper()}: {message}"
