"""Base trees of a private repository: cloned and fetched with credentials for that one command,
which end up nowhere: not in the mirror, not in a tree, not in an error."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.errors import TreeError
from sandbox.gitauth import GitCredentials
from sandbox.trees import TreesConfig, TreeStore
from tests.sandbox.git_http import PrivateGitHost
from tests.sandbox.test_lifecycle import git, remote
from tests.sandbox.test_trees import commit

__all__ = ["remote"]  # the fixture, shared with the tree tests there

SECRET = "s3cr3t-t0ken-4f9a"


@pytest.fixture
def host(remote: Path, tmp_path: Path) -> Iterator[PrivateGitHost]:
    served = tmp_path / "served"
    served.mkdir()
    subprocess.run(["git", "clone", "-q", "--bare", str(remote), str(served / "app.git")],
                   check=True)  # fmt: skip
    private = PrivateGitHost(served, "autan", SECRET)
    yield private
    private.close()


def files_holding(root: Path, text: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


def test_a_private_repository_is_cloned_and_fetched_with_its_credentials_left_nowhere(
    host: PrivateGitHost, remote: Path, tmp_path: Path
) -> None:
    url = f"{host.url}/app.git"
    asked: list[str] = []

    def credentials(for_url: str) -> GitCredentials:
        asked.append(for_url)
        return GitCredentials(token=SECRET, username="autan")

    store = TreeStore(TreesConfig(root=tmp_path / "trees"), credentials)
    first = store.checkout(url, store.resolve(url, "main"))
    assert (first / "app.py").read_text() == "print('v1')\n"
    sha = commit(remote, "v2")
    git("push", "-q", str(tmp_path / "served" / "app.git"), "main", cwd=remote)
    assert store.resolve(url, "main") == sha  # a fetch into the existing mirror
    assert (store.checkout(url, sha) / "app.py").read_text() == "print('v2')\n"
    assert asked and set(asked) == {url}
    assert any(allowed for _, allowed in host.seen)
    assert files_holding(tmp_path / "trees", SECRET) == []
    assert files_holding(tmp_path / "trees", "AUTAN_GIT_PASSWORD") == []  # no helper kept


def test_without_credentials_or_with_wrong_ones_the_error_says_so_and_holds_no_secret(
    host: PrivateGitHost, tmp_path: Path
) -> None:
    url = f"{host.url}/app.git"
    bare = TreeStore(TreesConfig(root=tmp_path / "bare"))
    with pytest.raises(TreeError, match="could not fetch") as none:
        bare.resolve(url, "main")
    assert "terminal prompts disabled" in str(none.value) or "Username" in str(none.value)
    wrong = GitCredentials(token=f"{SECRET}-wrong", username="autan")
    store = TreeStore(TreesConfig(root=tmp_path / "wrong"), lambda _url: wrong)
    with pytest.raises(TreeError, match="could not fetch") as refused:
        store.resolve(url, "main")
    assert SECRET not in str(refused.value) and "Authentication failed" in str(refused.value)
    assert not any(allowed for _, allowed in host.seen)
    assert files_holding(tmp_path, SECRET) == []


def test_an_ssh_key_goes_to_ssh_alone() -> None:
    env = GitCredentials(ssh_key=Path("/etc/autan/deploy key")).env()
    assert env == {
        "GIT_SSH_COMMAND": "ssh -i '/etc/autan/deploy key' -o IdentitiesOnly=yes -o BatchMode=yes"
    }
    assert GitCredentials().env() == {}
