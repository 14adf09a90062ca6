"""The deployment files in infra/, read as the tests of them need: YAML documents, the
Dockerfile's instructions, systemd units' keys, and the AUTAN_* names the code reads."""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path
from typing import Any

import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
K8S = INFRA / "k8s"
SYSTEMD = INFRA / "systemd"
COMPOSE = INFRA / "compose.yaml"
DOCKERFILE = INFRA / "Dockerfile"

# What deploys Autan (infra/scripts/ serve the test suite and a developer's machine instead).
DEPLOY_FILES = sorted(
    [DOCKERFILE, COMPOSE, INFRA / "compose.env.example", *K8S.glob("*.yaml"), *SYSTEMD.iterdir()]
)

# Every module with a settings class read from the environment.
SETTINGS_MODULES = [
    "orchestrator.config",
    "orchestrator.agent_runner",
    "web.config",
    "cli.config",
    "sync.config",
    "integrations.config",
    "integrations.github.config",
    "integrations.jira.config",
    "integrations.sentry.config",
    "integrations.slack.config",
]


def yaml_documents(path: Path) -> list[dict[str, Any]]:
    """The documents of a YAML file, each a mapping."""
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    assert docs, f"{path} holds no YAML document"
    for doc in docs:
        assert isinstance(doc, dict), f"{path}: a document is not a mapping"
    return docs


def manifests() -> list[dict[str, Any]]:
    """Every Kubernetes object under infra/k8s."""
    return [doc for path in sorted(K8S.glob("*.yaml")) for doc in yaml_documents(path)]


def one(kind: str, name: str) -> dict[str, Any]:
    """The one manifest of this kind and name."""
    found = [m for m in manifests() if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(found) == 1, f"{len(found)} {kind} named {name} in infra/k8s"
    return found[0]


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction: continuations joined, comments dropped."""
    joined = re.sub(r"\\\n(\s*#[^\n]*\n)*", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def shell_commands(run: str) -> list[list[str]]:
    """The simple commands of a RUN line's shell (split on && and ;)."""
    return [shlex.split(part) for part in re.split(r"&&|;", run) if part.strip()]


def unit_keys(path: Path) -> dict[str, dict[str, list[str]]]:
    """A systemd unit's sections and keys (a key may repeat, so each has a list)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
        else:
            key, _, value = line.partition("=")
            current.setdefault(key.strip(), []).append(value.strip())
    return sections


def names_read_by_code() -> set[str]:
    """Every environment variable a settings class of the code reads."""
    for module in SETTINGS_MODULES:
        importlib.import_module(module)
    names: set[str] = set()
    pending = list(BaseSettings.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        prefix = str(cls.model_config.get("env_prefix", ""))
        for field_name, field in cls.model_fields.items():
            alias = field.validation_alias
            if isinstance(alias, AliasChoices):
                names.update(choice for choice in alias.choices if isinstance(choice, str))
            elif isinstance(alias, str):
                names.add(alias)
            else:
                names.add((prefix + field_name).upper())
    return names


def autan_names(text: str) -> set[str]:
    """The AUTAN_* names a file sets or mentions."""
    return set(re.findall(r"\bAUTAN_[A-Z0-9_]+", text))
