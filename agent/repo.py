"""What the agent learns of a repository before it starts: instructions, .autan.toml, a map."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agent.errors import RepoConfigInvalid
from sandbox.base import Sandbox
from sandbox.errors import SandboxError
from sandbox.network import NetworkConfig

SKIPPED = {".git", "node_modules", "__pycache__", ".venv", "venv", ".mypy_cache", ".tox"}


class TestSection(BaseModel):
    """`[test]` of .autan.toml."""

    __test__ = False  # not a pytest class
    model_config = ConfigDict(extra="forbid")

    command: str | None = None
    """The command that runs the repository's tests (exit 0 means they pass)."""

    timeout_s: float | None = Field(default=None, gt=0)
    """Longest the tests may run; the agent's `test_timeout_s` otherwise."""


class SetupSection(BaseModel):
    """`[setup]` of .autan.toml."""

    model_config = ConfigDict(extra="forbid")

    commands: list[str] = Field(default_factory=list)
    """Run in order before the agent starts (installing dependencies); the first failure stops."""


class NetworkSection(BaseModel):
    """`[network]` of .autan.toml."""

    model_config = ConfigDict(extra="forbid")

    allow: list[str] = Field(default_factory=list)
    """Hosts the set-up commands may reach through the platform's proxy (`pypi.org`,
    `*.pythonhosted.org`), besides the platform's own list, where set-up has the allowlist."""

    @field_validator("allow", mode="after")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        return NetworkConfig(allow=value).allow  # the same rules as the platform's list


class AutanToml(BaseModel):
    """A repository's `.autan.toml`."""

    model_config = ConfigDict(extra="ignore")

    test: TestSection = Field(default_factory=TestSection)
    """How to run the tests."""

    setup: SetupSection = Field(default_factory=SetupSection)
    """How to prepare the workspace."""

    network: NetworkSection = Field(default_factory=NetworkSection)
    """What set-up may reach."""


@dataclass(frozen=True)
class RepoInfo:
    files: list[str] = field(default_factory=list)
    """Paths of the repository (without .git and caches), sorted; at most the map's limit."""
    more_files: bool = False
    agents_md: str = ""
    autan_toml_text: str = ""
    autan: AutanToml = field(default_factory=AutanToml)


def _read(sandbox: Sandbox, path: str) -> str:
    try:
        return sandbox.read_file(path).decode(errors="replace")
    except (OSError, SandboxError):
        return ""


def walk(sandbox: Sandbox, limit: int, start: str = ".") -> tuple[list[str], bool]:
    """Files under `start`, breadth first, without caches; and whether the limit cut the list."""
    found: list[str] = []
    queue = [start]
    while queue:
        directory = queue.pop(0)
        try:
            entries = sandbox.list_files(directory)
        except (OSError, SandboxError):
            continue
        for entry in entries:
            name = entry.rstrip("/")
            if name in SKIPPED:
                continue
            path = name if directory == "." else f"{directory}/{name}"
            if entry.endswith("/"):
                queue.append(path)
            elif len(found) >= limit:
                return sorted(found), True
            else:
                found.append(path)
    return sorted(found), False


def parse_autan_toml(text: str) -> AutanToml:
    try:
        return AutanToml.model_validate(tomllib.loads(text)) if text else AutanToml()
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise RepoConfigInvalid(f".autan.toml cannot be used: {exc}") from exc


def inspect(sandbox: Sandbox, map_entries: int) -> RepoInfo:
    """Read what the system prompt and verification need; raises RepoConfigInvalid."""
    files, more = walk(sandbox, max(map_entries, 1000))
    toml_text = _read(sandbox, ".autan.toml")
    return RepoInfo(
        files=files,
        more_files=more,
        agents_md=_read(sandbox, "AGENTS.md"),
        autan_toml_text=toml_text,
        autan=parse_autan_toml(toml_text),
    )
