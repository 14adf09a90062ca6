"""Credentials a worker fetches a repository with, from autan.toml and the GitHub connector, and
a private repository cloned with them end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from integrations.connectors import Loaded
from integrations.gitcreds import RepoCredentials
from orchestrator.agent_runner import AgentRunner
from orchestrator.runners import make_runner
from sandbox.errors import TreeError
from sandbox.gitauth import GitCredentials
from tests.sandbox.git_http import PrivateGitHost
from tests.sandbox.test_lifecycle import remote
from tests.sandbox.test_private_trees import SECRET, files_holding, host

__all__ = ["host", "remote"]  # the fixtures, shared with the tree tests there

TOML = """
[repos.private]
url = "{private}"
token_env = "ACME_GIT_TOKEN"
username = "autan"

[repos.keyed]
url = "git@git.acme.example:team/keyed.git"
ssh_key = "/etc/autan/keyed.key"

[repos.open]
url = "https://git.acme.example/team/open.git"
"""


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("AUTAN_GITHUB_TOKEN", "AUTAN_GITHUB_APP_ID", "ACME_GIT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def credentials(
    data_dir: Path, private: str = "https://git.acme.example/team/private.git"
) -> RepoCredentials:
    (data_dir / "autan.toml").write_text(TOML.format(private=private))
    return RepoCredentials(Loaded.from_env(data_dir=data_dir))


def test_each_repository_gets_its_own_credentials_and_github_urls_the_push_token(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACME_GIT_TOKEN", "glpat-acme")
    monkeypatch.setenv("AUTAN_GITHUB_TOKEN", "ghp_fetch_0123456789")
    found = credentials(data_dir)
    assert found("https://git.acme.example/team/private.git") == GitCredentials(
        token="glpat-acme", username="autan"
    )
    assert found("git@git.acme.example:team/keyed.git") == GitCredentials(
        ssh_key=Path("/etc/autan/keyed.key")
    )
    assert found("https://git.acme.example/team/open.git") is None
    assert found("https://git.other.example/x.git") is None
    assert found("https://github.com/acme/app.git") == GitCredentials(token="ghp_fetch_0123456789")


def test_without_a_github_token_github_urls_go_without(data_dir: Path) -> None:
    assert credentials(data_dir)("https://github.com/acme/app.git") is None


def test_a_token_variable_that_is_not_set_is_named(data_dir: Path) -> None:
    with pytest.raises(TreeError, match="repository 'private' wants a token from ACME_GIT_TOKEN"):
        credentials(data_dir)("https://git.acme.example/team/private.git")


def test_a_repository_with_both_a_token_and_a_key_is_refused_saying_where(data_dir: Path) -> None:
    (data_dir / "autan.toml").write_text(
        '[repos.both]\nurl = "https://x.example/a.git"\ntoken_env = "T"\nssh_key = "/k"\n'
    )
    loaded = Loaded.from_env(data_dir=data_dir)
    assert "give token_env or ssh_key, not both" in loaded.refused["github"]
    assert RepoCredentials(loaded)("https://x.example/a.git") is None


def test_autan_worker_s_runner_clones_a_private_repository_named_in_autan_toml(
    data_dir: Path, host: PrivateGitHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{host.url}/app.git"
    monkeypatch.setenv("ACME_GIT_TOKEN", SECRET)
    monkeypatch.setenv("AUTAN_DATA_DIR", str(data_dir))
    runner = make_runner("agent", credentials=credentials(data_dir, url))
    assert isinstance(runner, AgentRunner)
    tree = runner.base_tree(url, "main")
    assert (tree / "app.py").read_text() == "print('v1')\n"
    assert tree.is_relative_to(data_dir / "trees")
    assert files_holding(data_dir / "trees", SECRET) == []
