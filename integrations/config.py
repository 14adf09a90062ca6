"""Settings every connector shares, `autan.toml` (what maps to which repository), secrets."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from integrations.errors import NotConfigured
from orchestrator.access import ROLES

PLACEHOLDERS = frozenset({"changethis", "changeme", "change-me", "secret", "placeholder", "xxx"})


def refuse_placeholder(value: SecretStr | None, name: str) -> SecretStr | None:
    """A secret left at an example value is worse than none: it looks set and protects nothing."""
    if value is not None and value.get_secret_value().strip().lower() in PLACEHOLDERS:
        # The value is not repeated: this message may reach logs and webhook answers.
        raise ValueError(f"{name} is a placeholder, an example value: set a real one")
    return value


def secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""


def line_of(text: str, loc: tuple[int | str, ...]) -> str:
    """` (line N)`: where the setting at `loc` is, found by its table and key names in turn;
    "" when it cannot be placed (a check of the whole file)."""
    lines, at, found = text.splitlines(), 0, -1
    for part in (str(p) for p in loc):
        key = re.compile(rf"""^\s*(\[+[^\]]*\b{re.escape(part)}\b|"?{re.escape(part)}"?\s*=)""")
        hit = next((n for n in range(at, len(lines)) if key.search(lines[n])), None)
        if hit is not None:
            at = found = hit
    return f" (line {found + 1})" if found >= 0 else ""


class IntegrationSettings(BaseSettings):
    """Read from the environment (prefix `AUTAN_`) by the entry points only."""

    model_config = SettingsConfigDict(env_prefix="AUTAN_", extra="ignore")

    public_url: str = "http://127.0.0.1:8000"
    """How users reach the dashboard; reports link to `PUBLIC_URL/tasks/ID`."""

    data_dir: Path = Field(default_factory=lambda: Path.home() / ".local" / "share" / "autan")
    """Where `autan.toml` is read from."""

    report_unverified: Literal["comment", "draft"] = "comment"
    """For a task that ended `unverified`: only a comment with the outcome and how to get the
    diff (`comment`), or also a draft pull request titled as unverified (`draft`)."""

    def task_url(self, task_id: str) -> str:
        return f"{self.public_url.rstrip('/')}/tasks/{task_id}"


class RepoConfig(BaseModel):
    """One repository Autan may work on."""

    model_config = ConfigDict(extra="forbid")

    url: str
    """Where the worker clones and pushes: an https URL, or a path for a local repository."""

    github: str | None = None
    """Its GitHub full name (`owner/name`), when pull requests should be opened there."""

    branch: str | None = None
    """The base branch; unset means the repository's default branch."""

    token_env: str | None = None
    """The environment variable that holds a token the worker fetches `url` with (HTTPS);
    unset: a GitHub URL gets the GitHub connector's token, any other none."""

    username: str = "x-access-token"
    """The user name sent with `token_env`'s token (GitLab and Gitea want the token's user
    or `oauth2`; GitHub takes `x-access-token`)."""

    ssh_key: Path | None = None
    """A private key file the worker fetches `url` with over SSH (a deploy key)."""

    @model_validator(mode="after")
    def _one_credential(self) -> RepoConfig:
        if self.token_env and self.ssh_key:
            raise ValueError("give token_env or ssh_key, not both")
        return self


class SlackRouting(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channels: dict[str, str] = Field(default_factory=dict)
    """Slack channel id to the repository `/autan` works on when none is named."""

    users: list[str] = Field(default_factory=list)
    """Slack user ids that may start and cancel work; `*` lets everyone in the workspace."""


class ProjectRouting(BaseModel):
    model_config = ConfigDict(extra="forbid")

    projects: dict[str, str] = Field(default_factory=dict)
    """Project key (Jira) or slug or id (Sentry) to repository name."""


class UserConfig(BaseModel):
    """A person, and the names the connectors know them by: their tasks are theirs."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["admin", "member", "viewer"] = "member"
    """The role the user is made with, on their first task (an admin may change it later)."""
    team: str | None = None
    email: str | None = None
    slack: str | None = None
    """Their Slack user id (`U0123ABCD`)."""
    github: str | None = None
    """Their GitHub login."""
    jira: str | None = None
    """Their Jira account id."""


class Policy(BaseModel):
    """What may be submitted over the API, beside the repositories under [repos]."""

    model_config = ConfigDict(extra="forbid")

    allow_repos: list[str] = Field(default_factory=list)
    """URL patterns (`*` and `?` as in shell globs, whole URL): with a [policy] section, a
    remote repository must match one of them or be a [repos] URL."""


class SsoConfig(BaseModel):
    """How single sign-on gives a person a role: a claim of the ID token, mapped to roles."""

    model_config = ConfigDict(extra="forbid")

    role_claim: str = "groups"
    """The ID token's claim that holds the person's groups or role: a list of strings, or one."""

    roles: dict[Literal["admin", "member", "viewer"], list[str]] = Field(default_factory=dict)
    """Role to the claim values that give it; the highest role matched wins. Set: every
    sign-in takes the role from here (viewer when nothing matches); unset: a new user is a
    viewer and keeps whatever role an admin gives them."""

    def role_for(self, claims: dict[str, object]) -> str | None:
        """The role the claims map to; None when [sso.roles] is empty (the store decides)."""
        if not self.roles:
            return None
        held = claims.get(self.role_claim)
        values = {held} if isinstance(held, str) else set(held) if isinstance(held, list) else set()
        return next(
            (role for role in ROLES if values & set(self.roles.get(role, []))),
            "viewer",
        )


class Routing(BaseModel):
    """The contents of `autan.toml`."""

    model_config = ConfigDict(extra="forbid")

    repos: dict[str, RepoConfig] = Field(default_factory=dict)
    slack: SlackRouting = Field(default_factory=SlackRouting)
    jira: ProjectRouting = Field(default_factory=ProjectRouting)
    sentry: ProjectRouting = Field(default_factory=ProjectRouting)
    users: dict[str, UserConfig] = Field(default_factory=dict)
    """User name to who they are on Slack, GitHub and Jira."""
    policy: Policy | None = None
    """Unset: any remote repository may be submitted; set: only those it or [repos] allow."""
    sso: SsoConfig = Field(default_factory=SsoConfig)

    @model_validator(mode="after")
    def _names_exist(self) -> Routing:
        named = [
            *self.slack.channels.values(),
            *self.jira.projects.values(),
            *self.sentry.projects.values(),
        ]
        if unknown := sorted(set(named) - set(self.repos)):
            raise ValueError(f"repositories {unknown} are mapped but not under [repos]")
        return self

    def user_for(self, kind: str, identity: str | None) -> tuple[str, UserConfig] | None:
        """The user `autan.toml` maps to this Slack user, GitHub login or Jira account."""
        if not identity or kind not in ("slack", "github", "jira"):
            return None
        for name, user in self.users.items():
            known = getattr(user, kind)
            if known is not None and (
                known.lower() == identity.lower() if kind == "github" else known == identity
            ):
                return name, user
        return None

    def refuses(self, url: str) -> str | None:
        """Why the [policy] does not allow submitting `url`; None when it does (or is unset)."""
        if self.policy is None or self.by_url(url) is not None:
            return None
        if any(fnmatch.fnmatchcase(url, pattern) for pattern in self.policy.allow_repos):
            return None
        return (
            f"repository {url[:200]!r} is not allowed here: an admin lists it under [repos] "
            "or matches it with [policy] allow_repos in autan.toml"
        )

    def repo(self, name: str) -> RepoConfig | None:
        return self.repos.get(name)

    def by_github(self, full_name: str) -> tuple[str, RepoConfig] | None:
        for name, repo in self.repos.items():
            if repo.github and repo.github.lower() == full_name.lower():
                return name, repo
        return None

    def by_url(self, url: str) -> tuple[str, RepoConfig] | None:
        return next(((n, r) for n, r in self.repos.items() if r.url == url), None)

    def replace_with(self, other: Routing) -> None:
        """Take `other`'s contents in place, so every intake that holds this one sees them."""
        for name in type(self).model_fields:
            object.__setattr__(self, name, getattr(other, name))

    @classmethod
    def load(cls, path: Path) -> Routing:
        """Read `autan.toml`; a missing file maps nothing."""
        if not path.exists():
            return cls()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise NotConfigured(f"cannot read {path}: {exc}") from exc
        try:
            return cls.model_validate(tomllib.loads(text))
        except tomllib.TOMLDecodeError as exc:
            raise NotConfigured(f"{path} is not a valid autan.toml: {exc}") from exc
        except ValidationError as exc:
            # Where and what, not the values: a repository URL may hold a token.
            wrong = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'top level'}"
                f"{line_of(text, error['loc'])}: {error['msg']}"
                for error in exc.errors(include_url=False, include_input=False)
            )
            raise NotConfigured(f"{path} is not a valid autan.toml: {wrong}") from exc
