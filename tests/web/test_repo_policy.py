"""A repository on the server's disk is refused over the API and the dashboard (403, saying
why, nothing stored or cloned) unless an admin names it where AUTAN_ALLOW_LOCAL_REPOS=true."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from orchestrator.models import AuditEntry, Task
from orchestrator.repo_urls import is_local
from orchestrator.services import Services
from tests.people import bearer, person
from tests.web.dashboard import browser_client, sign_in
from web.app import create_app
from web.config import WebSettings

LOCAL = ["/srv/other-team/repo", "file:///srv/other-team/repo", "FILE:///srv/x", "repo", "../x"]


def _tasks(services: Services) -> int:
    with services.sessions() as session:
        return session.scalar(select(func.count()).select_from(Task)) or 0


def test_what_counts_as_a_repository_on_the_server() -> None:
    assert all(is_local(repo) for repo in LOCAL)
    for remote in ("https://github.com/acme/app", "ssh://git@host/x", "git@github.com:a/b.git",
                   "workspace:0123456789abcdef0123456789abcdef@3"):  # fmt: skip
        assert not is_local(remote), remote


def test_a_member_cannot_submit_a_path_on_the_server(services: Services, tmp_path: Path) -> None:
    member = person(services, "alice", "member")
    with TestClient(create_app(services, WebSettings(allow_local_repos=True))) as client:
        for repo in LOCAL:
            r = client.post(
                "/api/tasks", json={"repo": repo, "instruction": "read it"}, headers=bearer(member)
            )
            assert r.status_code == 403, (repo, r.text)
            assert r.json()["detail"] == (
                f"repository {repo!r} is on the server's disk: refused over the API, only an "
                "admin may name one, where AUTAN_ALLOW_LOCAL_REPOS=true; submit its URL instead"
            )
        remote = {"repo": "https://git.example/app.git", "instruction": "i"}
        assert client.post("/api/tasks", json=remote, headers=bearer(member)).status_code == 201
    assert _tasks(services) == 1
    with services.sessions() as session:
        refused = session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.outcome == "refused")
        )
    assert refused == len(LOCAL)
    assert not any(tmp_path.rglob("*.git"))  # nothing was cloned anywhere under the data dir


def test_an_admin_names_a_local_repository_only_where_the_server_allows(services: Services) -> None:
    admin = person(services, "ada", "admin")
    scoped = person(services, "ada", "admin", scopes=["tasks:read", "tasks:write"])
    body = {"repo": "/srv/ours", "instruction": "i"}
    with TestClient(create_app(services, WebSettings(allow_local_repos=False))) as client:
        r = client.post("/api/tasks", json=body, headers=bearer(admin))
        assert r.status_code == 403
        assert "AUTAN_ALLOW_LOCAL_REPOS is not true" in r.json()["detail"]
    assert _tasks(services) == 0
    with TestClient(create_app(services, WebSettings(allow_local_repos=True))) as client:
        assert client.post("/api/tasks", json=body, headers=bearer(admin)).status_code == 201
        # An admin's token without the admin scope is no admin's for this.
        assert client.post("/api/tasks", json=body, headers=bearer(scoped)).status_code == 403
    assert _tasks(services) == 1


def test_the_dashboard_refuses_a_local_path_on_the_form(services: Services) -> None:
    member = person(services, "alice", "member")
    with browser_client(services, WebSettings(allow_local_repos=True)) as client:
        csrf = sign_in(client, member)
        r = client.post("/new", data={"csrf": csrf, "repo": "/etc", "instruction": "i"})
        assert r.status_code == 403
        assert "is on the server&#39;s disk: refused over the API" in r.text
        assert 'value="/etc"' in r.text  # the form comes back as it was
    assert _tasks(services) == 0


POLICY = """
[repos.app]
url = "https://git.example/acme/app.git"

[policy]
allow_repos = ["https://git.example/acme/*", "git@git.example:acme/*"]
"""


def test_with_a_policy_only_the_repositories_it_allows_are_taken(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "autan.toml").write_text(POLICY)
    monkeypatch.setenv("AUTAN_DATA_DIR", str(config))
    member = person(services, "alice", "member")
    admin = person(services, "ada", "admin")
    with TestClient(create_app(services, WebSettings())) as client:
        for repo in (
            "https://git.example/acme/app.git",
            "https://git.example/acme/other.git",
            "git@git.example:acme/x.git",
        ):
            r = client.post(
                "/api/tasks", json={"repo": repo, "instruction": "i"}, headers=bearer(member)
            )
            assert r.status_code == 201, (repo, r.text)
        for repo, who in (
            ("https://git.example/evil/x.git", member),
            ("https://git.example/acme.evil/x.git", member),
            ("ssh://git.example/acme/app.git", admin),  # the policy binds admins too
        ):
            r = client.post(
                "/api/tasks", json={"repo": repo, "instruction": "i"}, headers=bearer(who)
            )
            assert r.status_code == 403, (repo, r.text)
            assert r.json()["detail"] == (
                f"repository {repo!r} is not allowed here: an admin lists it under [repos] or "
                "matches it with [policy] allow_repos in autan.toml"
            )
    assert _tasks(services) == 3


def test_while_autan_toml_cannot_be_read_no_remote_repository_is_taken(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config"
    (config / "autan.toml").mkdir(parents=True)  # a directory: it cannot be read
    monkeypatch.setenv("AUTAN_DATA_DIR", str(config))
    member = person(services, "alice", "member")
    with TestClient(create_app(services, WebSettings())) as client:
        r = client.post("/api/tasks", json={"repo": "https://git.example/a.git", "instruction": "i"},
                        headers=bearer(member))  # fmt: skip
        assert r.status_code == 503
        assert r.json()["detail"].startswith(
            "repositories are not taken while the policy cannot be read: cannot read "
        )
        assert "autan.toml" in r.json()["detail"]
    assert _tasks(services) == 0


def test_an_edited_policy_is_in_force_without_a_restart(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "autan.toml").write_text(POLICY)
    monkeypatch.setenv("AUTAN_DATA_DIR", str(tmp_path))
    member = person(services, "alice", "member")
    sent = {"repo": "https://git.example/evil/x.git", "instruction": "i"}
    with TestClient(create_app(services, WebSettings())) as client:
        assert client.post("/api/tasks", json=sent, headers=bearer(member)).status_code == 403
        client.app.state.hooks.routing_file.interval = 0.0  # type: ignore[attr-defined]
        (tmp_path / "autan.toml").write_text(
            POLICY.replace('"git@', '"https://git.example/evil/*", "git@')
        )
        assert client.post("/api/tasks", json=sent, headers=bearer(member)).status_code == 201
    assert _tasks(services) == 1
