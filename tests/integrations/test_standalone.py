"""Connectors stand alone: one with a wrong setting refuses its own deliveries, naming the
setting and never its value, while the others keep serving; each says its state."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from integrations.connectors import Loaded
from orchestrator.services import Services
from tests.integrations import signing
from tests.integrations.drive import queued
from tests.integrations.test_jira import issue_event
from tests.integrations.test_sentry import issue_created

TOML = """
[repos.app]
url = "{remote}"
github = "acme/app"

[jira.projects]
APP = "app"

[sentry.projects]
backend = "app"
"""

LABELED = {
    "action": "labeled",
    "label": {"name": "autan"},
    "issue": {"number": 7, "title": "add() subtracts", "body": "2 + 2 gives 0"},
    "repository": {"full_name": "acme/app"},
    "sender": {"login": "octocat", "type": "User"},
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, remote: Path) -> Path:
    """GitHub, Jira and Sentry set in the environment, Slack not; autan.toml maps all three."""
    for name in ("SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN", "GITHUB_TOKEN", "SENTRY_TOKEN"):
        monkeypatch.delenv(f"AUTAN_{name}", raising=False)
    monkeypatch.setenv("AUTAN_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AUTAN_GITHUB_WEBHOOK_SECRET", signing.GITHUB_SECRET)
    monkeypatch.setenv("AUTAN_JIRA_WEBHOOK_SECRET", signing.JIRA_SECRET)
    monkeypatch.setenv("AUTAN_JIRA_TOKEN", "jira-token-0123456789")
    monkeypatch.setenv("AUTAN_SENTRY_CLIENT_SECRET", signing.SENTRY_SECRET)
    (tmp_path / "autan.toml").write_text(TOML.format(remote=remote))
    return tmp_path


def deliver_each(api: TestClient) -> dict[str, tuple[int, str]]:
    """One signed, genuine delivery to each connector: its status and its answer's text."""
    sent = {
        "github": ("/hooks/github", *signing.github("issues", LABELED)),
        "jira": ("/hooks/jira", *signing.jira(issue_event())),
        "sentry": ("/hooks/sentry", *signing.sentry("issue", issue_created())),
        "slack": ("/hooks/slack/commands", *signing.slack("command=%2Fautan&text=help")),
    }
    found = {}
    for name, (route, body, headers) in sent.items():
        r = api.post(route, content=body, headers=headers)
        found[name] = (r.status_code, r.text)
    return found


def test_a_placeholder_jira_token_refuses_only_jira_deliveries(
    api: TestClient, services: Services, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTAN_JIRA_TOKEN", "changeme")
    found = deliver_each(api)
    assert found["github"][0] == 200 and '"accepted"' in found["github"][1]
    assert found["sentry"][0] == 200 and '"accepted"' in found["sentry"][1]
    status, text = found["jira"]
    assert status == 503
    assert "Jira deliveries are refused: AUTAN_JIRA_TOKEN" in text and "placeholder" in text
    assert "changeme" not in text
    status, text = found["slack"]
    assert status == 503 and "AUTAN_SLACK_SIGNING_SECRET is not set" in text
    assert [kind for kind, _ in queued(api.app.state.services)] == ["github", "sentry"]  # type: ignore[attr-defined]

    lines = {s.name: s.line() for s in Loaded.from_env().states()}
    assert lines == {
        "github": "configured",
        "slack": "off: AUTAN_SLACK_SIGNING_SECRET is not set",
        "jira": "misconfigured: AUTAN_JIRA_TOKEN: Value error, a Jira secret is a placeholder, "
        "an example value: set a real one",
        "sentry": "configured",
    }


def test_a_setting_of_the_wrong_type_names_the_setting_not_its_value(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTAN_SENTRY_CLIENT_SECRET", signing.SENTRY_SECRET)
    monkeypatch.setenv("AUTAN_GITHUB_APP_INSTALLATION_ID", "not-a-number-s3cr3t")
    states = {s.name: s for s in Loaded.from_env().states()}
    assert states["github"].state == "misconfigured"
    assert states["github"].why.startswith("AUTAN_GITHUB_APP_INSTALLATION_ID: Input should be")
    assert "s3cr3t" not in states["github"].why
    assert [states[n].state for n in ("jira", "sentry")] == ["configured", "configured"]


def test_a_broken_autan_toml_refuses_every_connector_saying_where(
    api: TestClient, services: Services, env: Path
) -> None:
    (env / "autan.toml").write_text("[repos.app\nurl = 1\n")
    found = deliver_each(api)
    for name in ("github", "jira", "sentry"):
        status, text = found[name]
        assert status == 503 and "is not a valid autan.toml" in text, name
    states = Loaded.from_env().states()
    assert [s.state for s in states] == ["misconfigured"] * 4
    assert queued(api.app.state.services) == []  # type: ignore[attr-defined]
