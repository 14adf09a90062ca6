"""Fixtures of the connectors: fake services, a git remote, and the app wired to both."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from integrations.config import (
    IntegrationSettings,
    ProjectRouting,
    RepoConfig,
    Routing,
    SlackRouting,
)
from integrations.github.config import GitHubSettings
from integrations.github.publish import Publisher
from integrations.hub import Hub
from integrations.jira.config import JiraSettings
from integrations.sentry.config import SentrySettings
from integrations.slack.config import SlackSettings
from orchestrator.services import Services
from tests.integrations import signing
from tests.integrations.fake_github import FakeGitHub
from tests.integrations.fake_jira import FakeJira
from tests.integrations.fake_sentry import FakeSentry
from tests.integrations.fake_slack import FakeSlack

BASE_FILE = "def add(a, b):\n    return a - b\n"
FIX = """diff --git a/calc.py b/calc.py
--- a/calc.py
+++ b/calc.py
@@ -1,2 +1,2 @@
 def add(a, b):
-    return a - b
+    return a + b
"""
TOKEN = "ghp_test_token_0123456789"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: these tests exercise the connectors; the store runs on both elsewhere."""
    return f"sqlite:///{tmp_path / 'autan.db'}"


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A bare repository with one commit on `main`: where the reporters push."""
    bare, work = tmp_path / "app.git", tmp_path / "seed"
    git("init", "-q", "--bare", "-b", "main", str(bare), cwd=tmp_path)
    git("init", "-q", "-b", "main", str(work), cwd=tmp_path)
    (work / "calc.py").write_text(BASE_FILE)
    git("add", ".", cwd=work)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "seed", cwd=work)
    git("push", "-q", str(bare), "main", cwd=work)
    return bare


@dataclass
class Wired:
    api: TestClient
    services: Services
    hub: Hub
    common: IntegrationSettings
    routing: Routing
    github: FakeGitHub
    slack: FakeSlack
    jira: FakeJira
    sentry: FakeSentry
    github_settings: GitHubSettings
    slack_settings: SlackSettings
    jira_settings: JiraSettings
    sentry_settings: SentrySettings

    def publisher(self) -> Publisher:
        return Publisher(self.github_settings, self.common, self.routing)


@pytest.fixture
def fakes() -> Iterator[tuple[FakeGitHub, FakeSlack, FakeJira, FakeSentry]]:
    servers = (FakeGitHub().start(), FakeSlack().start(), FakeJira().start(), FakeSentry().start())
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture
def wired(
    api: TestClient,
    services: Services,
    remote: Path,
    tmp_path: Path,
    fakes: tuple[FakeGitHub, FakeSlack, FakeJira, FakeSentry],
) -> Wired:
    gh, sl, ji, se = fakes
    common = IntegrationSettings(public_url="http://autan.test", data_dir=tmp_path)
    routing = Routing(
        repos={"app": RepoConfig(url=str(remote), github="acme/app")},
        slack=SlackRouting(channels={"C1": "app"}, users=["U1"]),
        jira=ProjectRouting(projects={"APP": "app"}),
        sentry=ProjectRouting(projects={"backend": "app"}),
    )
    gh_s = GitHubSettings(
        webhook_secret=SecretStr(signing.GITHUB_SECRET),
        token=SecretStr(TOKEN),
        api_url=gh.url,
        request_interval_s=0,
        write_interval_s=0,
        retries=0,
    )
    sl_s = SlackSettings(
        signing_secret=SecretStr(signing.SLACK_SECRET),
        bot_token=SecretStr("xoxb-test-0123456789"),
        api_url=sl.url + "/api/",
    )
    ji_s = JiraSettings(
        webhook_secret=SecretStr(signing.JIRA_SECRET),
        url=ji.url,
        email="autan@acme.test",
        token=SecretStr("jira-token-0123456789"),
        retries=0,
    )
    se_s = SentrySettings(
        client_secret=SecretStr(signing.SENTRY_SECRET),
        token=SecretStr("sntrys-token-0123456789"),
        api_url=se.url,
    )
    hub = Hub.build(
        services.lifecycle,
        services.redis,
        common=common,
        routing=routing,
        github=gh_s,
        slack=sl_s,
        jira=ji_s,
        sentry=se_s,
    )
    api.app.state.hooks = hub  # type: ignore[attr-defined]
    return Wired(
        api,
        services,
        hub,
        common,
        routing,
        gh,
        sl,
        ji,
        se,
        gh_s,
        sl_s,
        ji_s,
        se_s,
    )
