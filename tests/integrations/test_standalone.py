"""Connectors stand alone: one with a wrong setting refuses its own deliveries, naming the
setting and never its value, while the others keep serving; each says its state."""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from integrations.connectors import Loaded
from orchestrator.services import Services
from tests.cli.conftest import Autan, base_env
from tests.integrations import signing
from tests.integrations.drive import queued
from tests.integrations.fake_github import FakeGitHub
from tests.integrations.fake_jira import FakeJira
from tests.integrations.fake_sentry import FakeSentry
from tests.integrations.fake_slack import FakeSlack
from tests.integrations.fakehttp import Handler, Reply, Request
from tests.integrations.test_jira import issue_event
from tests.integrations.test_sentry import issue_created
from tests.live import free_port

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
    # /readyz says the same, and a connector alone does not make the API unready.
    ready = api.get("/readyz").json()
    assert ready["connectors"] == lines
    assert not {"connectors", "github", "jira", "slack", "sentry"} & set(ready["failing"])


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


def test_a_wrong_autan_toml_says_where_without_the_values(env: Path) -> None:
    (env / "autan.toml").write_text(
        '[repos.app]\nurl = "https://x:ghp_in_url_0123@github.com/a/b"\nbranch = 3\n'
        '[jira.projects]\nAPP = "nowhere"\n'
    )
    why = Loaded.from_env().states()[2].why
    assert why == (
        f"{env / 'autan.toml'} is not a valid autan.toml: "
        "repos.app.branch (line 3): Input should be a valid string"
    )
    (env / "autan.toml").write_text('[repos.app]\nurl = "https://x:ghp_in_url_0123@h/a"\n[x]\n')
    assert "ghp_in_url" not in Loaded.from_env().states()[0].why


def test_an_unreadable_autan_toml_is_a_state_not_a_crash(env: Path) -> None:
    (env / "autan.toml").unlink()
    (env / "autan.toml").mkdir()
    states = Loaded.from_env().states()
    assert [s.state for s in states] == ["misconfigured"] * 4
    assert states[0].why.startswith(f"cannot read {env / 'autan.toml'}: [Errno 21]")
    (env / "autan.toml").rmdir()
    (env / "autan.toml").write_bytes(b"[repos.app]\nurl = '\xff'\n")
    assert Loaded.from_env().states()[0].why.startswith(f"cannot read {env / 'autan.toml'}")


def authorised(token: str, reply: Any) -> Handler:
    """A route that answers `reply` to `Bearer token` (or its Basic form) and 401 otherwise."""

    def handle(request: Request, _: re.Match[str]) -> Reply:
        sent = request.headers.get("authorization", "")
        basic = "Basic " + base64.b64encode(f"autan@acme.test:{token}".encode()).decode()
        return (200, reply) if sent in (f"Bearer {token}", basic) else (401, {"error": "bad"})

    return handle


@pytest.fixture
def services_env(
    env: Path,
    monkeypatch: pytest.MonkeyPatch,
    fakes: tuple[FakeGitHub, FakeSlack, FakeJira, FakeSentry],
) -> dict[str, str]:
    """Every connector configured against the fake services, which know its token."""
    gh, sl, ji, se = fakes
    gh.route("GET", "/user", authorised("ghp_doctor_0123456789", {"login": "autan"}))
    sl.route("POST", r"/api/auth\.test", authorised("xoxb-doctor-0123", {"ok": True}))
    ji.route("GET", "/rest/api/2/myself", authorised("jira-token-0123456789", {"name": "a"}))
    se.route("GET", "/api/0/", authorised("sntrys-doctor-0123", {"version": "0"}))
    values = {
        "AUTAN_GITHUB_TOKEN": "ghp_doctor_0123456789",
        "AUTAN_GITHUB_API_URL": gh.url,
        "AUTAN_SLACK_SIGNING_SECRET": signing.SLACK_SECRET,
        "AUTAN_SLACK_BOT_TOKEN": "xoxb-doctor-0123",
        "AUTAN_SLACK_API_URL": sl.url + "/api/",
        "AUTAN_JIRA_URL": ji.url,
        "AUTAN_JIRA_EMAIL": "autan@acme.test",
        "AUTAN_SENTRY_TOKEN": "sntrys-doctor-0123",
        "AUTAN_SENTRY_API_URL": se.url,
    }
    return {k: v for k, v in os.environ.items() if k.startswith("AUTAN_")} | values


def test_doctor_says_each_connector_s_state_and_tries_each_token(
    services_env: dict[str, str], fakes: tuple[FakeGitHub, FakeSlack, FakeJira, FakeSentry]
) -> None:
    done = Autan(base_env(**services_env))("doctor")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == (
        "Connectors:\n"
        "  GitHub   configured\n"
        "  Slack    configured\n"
        "  Jira     configured\n"
        "  Sentry   configured\n"
        "Checks:\n"
        "  ok   GitHub   token: ok\n"
        "  ok   GitHub   repository app (acme/app): ok\n"
        "  ok   Slack    bot token: ok\n"
        "  ok   Jira     account: ok\n"
        "  ok   Sentry   token: ok\n"
    )
    gh, sl, ji, se = fakes
    assert gh.lines() == ["GET /user", "GET /repos/acme/app"]
    assert (sl.lines(), ji.lines(), se.lines()) == (
        ["POST /api/auth.test"],
        ["GET /rest/api/2/myself"],
        ["GET /api/0/"],
    )


def test_doctor_fails_naming_a_refused_token_a_wrong_setting_and_an_unreachable_service(
    services_env: dict[str, str], fakes: tuple[FakeGitHub, FakeSlack, FakeJira, FakeSentry]
) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}"
    broken = services_env | {
        "AUTAN_GITHUB_TOKEN": "ghp_revoked_0123456789",
        "AUTAN_JIRA_TOKEN": "changeme",
        "AUTAN_SENTRY_API_URL": unreachable,
    }
    done = Autan(base_env(**broken))("doctor")
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert (
        "  Jira     misconfigured: AUTAN_JIRA_TOKEN: Value error, a Jira secret is a "
        "placeholder, an example value: set a real one" in lines
    )
    assert "changeme" not in done.stdout
    assert (
        "  FAIL GitHub   token: the token refused (401): check that it is current and its scopes"
        in lines
    )
    assert "  ok   Slack    bot token: ok" in lines
    assert (
        f"  FAIL Sentry   token: cannot reach {unreachable}/api/0/ (ConnectError): "
        "check the API base URL" in lines
    )
    assert fakes[2].lines() == []  # a misconfigured Jira is not called
