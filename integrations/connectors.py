"""Each connector's settings loaded on its own, and its state: configured, off, or misconfigured.

A connector whose settings are wrong is refused alone; the others keep serving. Reasons name
the settings at fault and never their values (a mistyped token must not reach a stranger).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings

from integrations.config import IntegrationSettings, Routing
from integrations.errors import NotConfigured
from integrations.github.config import GitHubSettings
from integrations.jira.config import JiraSettings
from integrations.sentry.config import SentrySettings
from integrations.slack.config import SlackSettings

S = TypeVar("S", bound=BaseSettings)
State = Literal["configured", "off", "misconfigured"]

NAMES = {"github": "GitHub", "slack": "Slack", "jira": "Jira", "sentry": "Sentry"}
"""Each connector by the name its route and settings use, and the name users know."""

SECRETS = {
    "github": "webhook_secret",
    "slack": "signing_secret",
    "jira": "webhook_secret",
    "sentry": "client_secret",
}
"""The setting without which a connector receives nothing: unset, the connector is off."""


@dataclass(frozen=True)
class ConnectorState:
    name: str
    state: State
    why: str = ""

    def line(self) -> str:
        """`configured`, or the state and why (`off: AUTAN_JIRA_WEBHOOK_SECRET is not set`)."""
        return f"{self.state}: {self.why}" if self.why else self.state


def why_invalid(exc: ValidationError, prefix: str) -> str:
    """Which settings are wrong and how, as environment variables, without their values."""
    found = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        name = prefix + "_".join(str(part) for part in error["loc"]).upper()
        found.append(f"{name}: {error['msg']}")
    return "; ".join(found)


def load(cls: type[S]) -> tuple[S, str]:
    """`cls` from the environment and ""; or its defaults and why the environment's are wrong."""
    try:
        return cls(), ""
    except ValidationError as exc:
        defaults: S = cls.model_construct()  # type: ignore[assignment]
        return defaults, why_invalid(exc, str(cls.model_config.get("env_prefix")))


@dataclass
class Loaded:
    """Every connector's settings, from the environment and autan.toml, each loaded alone."""

    common: IntegrationSettings
    routing: Routing
    github: GitHubSettings
    slack: SlackSettings
    jira: JiraSettings
    sentry: SentrySettings
    refused: dict[str, str] = field(default_factory=dict)
    """Connector name -> why its deliveries are refused."""
    unread: str = ""
    """Why autan.toml (or the settings every connector shares) could not be read; empty: read."""
    routing_problem: str = ""
    """Why autan.toml could not be read ("" when it was): a reason in `refused` for each."""

    @classmethod
    def from_env(cls, data_dir: Path | None = None) -> Loaded:
        """For an entry point (`data_dir` replaces AUTAN_DATA_DIR). autan.toml and the shared
        settings serve every connector, so when they are wrong every connector is refused."""
        common, shared = load(IntegrationSettings)
        if data_dir is not None:
            common = common.model_copy(update={"data_dir": data_dir})
        routing, problem = Routing(), ""
        if not shared:
            try:
                routing = Routing.load(common.data_dir / "autan.toml")
            except NotConfigured as exc:
                shared = problem = str(exc)
        refused: dict[str, str] = {}
        return cls(
            common=common,
            routing=routing,
            github=_note(load(GitHubSettings), "github", shared, refused),
            slack=_note(load(SlackSettings), "slack", shared, refused),
            jira=_note(load(JiraSettings), "jira", shared, refused),
            sentry=_note(load(SentrySettings), "sentry", shared, refused),
            refused=refused,
            unread=shared,
            routing_problem=problem,
        )

    def states(self) -> list[ConnectorState]:
        return states(
            {"github": self.github, "slack": self.slack, "jira": self.jira, "sentry": self.sentry},
            self.refused,
        )


def _note(loaded: tuple[S, str], name: str, shared: str, refused: dict[str, str]) -> S:
    settings, why = loaded
    if why := shared or why:
        refused[name] = why
    return settings


def states(settings: dict[str, BaseSettings], refused: dict[str, str]) -> list[ConnectorState]:
    """Each connector's state, in the order of NAMES."""
    found = []
    for name in NAMES:
        if why := refused.get(name):
            found.append(ConnectorState(name, "misconfigured", why))
            continue
        secret = getattr(settings[name], SECRETS[name])
        if not isinstance(secret, SecretStr):
            prefix = settings[name].model_config.get("env_prefix")
            found.append(ConnectorState(name, "off", f"{prefix}{SECRETS[name].upper()} is not set"))
            continue
        found.append(ConnectorState(name, "configured"))
    return found


def lines(found: list[ConnectorState]) -> list[str]:
    """One line a connector, aligned: what `autan up` and `autan doctor` print."""
    return [f"  {NAMES[s.name]:<8} {s.line()}" for s in found]
