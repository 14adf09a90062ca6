"""Resolving a task's ref to a commit: fetched fresh each time, by name or by hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.errors import RefNotFound, TreeError
from sandbox.trees import TreesConfig, TreeStore
from tests.sandbox.test_lifecycle import git, remote

__all__ = ["remote"]  # the fixture, shared with the tree tests there


def commit(repo: Path, text: str, branch: str | None = None) -> str:
    if branch is not None:
        git("checkout", "-q", "-B", branch, cwd=repo)
    (repo / "app.py").write_text(f"print({text!r})\n")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", text, cwd=repo)
    return git("rev-parse", "HEAD", cwd=repo)


def test_each_resolve_sees_where_the_remote_is_now(remote: Path, tmp_path: Path) -> None:
    store = TreeStore(TreesConfig(root=tmp_path / "trees"))
    v1 = git("rev-parse", "HEAD", cwd=remote)
    assert store.resolve(str(remote), None) == v1
    assert store.resolve(str(remote), "main") == v1

    v2 = commit(remote, "v2")
    assert store.resolve(str(remote), None) == v2  # the default branch, fetched fresh
    assert store.resolve(str(remote), "main") == v2
    feature = commit(remote, "feature", branch="feature")
    git("checkout", "-q", "main", cwd=remote)
    assert store.resolve(str(remote), "feature") == feature
    assert store.resolve(str(remote), None) == v2  # HEAD of the remote is still main
    assert (store.checkout(str(remote), v2) / "app.py").read_text() == "print('v2')\n"


def test_full_and_abbreviated_hashes_resolve_even_when_no_branch_points_there(
    remote: Path, tmp_path: Path
) -> None:
    store = TreeStore(TreesConfig(root=tmp_path / "trees"))
    v1 = git("rev-parse", "HEAD", cwd=remote)
    store.resolve(str(remote), None)
    v2 = commit(remote, "v2")
    v3 = commit(remote, "v3")

    assert store.resolve(str(remote), v1) == v1  # already in the mirror
    assert store.resolve(str(remote), v2[:9]) == v2  # not yet: a full fetch finds it
    assert store.resolve(str(remote), v3) == v3
    assert (store.checkout(str(remote), v2) / "app.py").read_text() == "print('v2')\n"


@pytest.mark.parametrize("ref", ["nope", "0" * 40, "abc1234", "main:refs/heads/x", "v9"])
def test_a_ref_the_remote_lacks_is_named_in_the_error(
    remote: Path, tmp_path: Path, ref: str
) -> None:
    store = TreeStore(TreesConfig(root=tmp_path / "trees"))
    store.resolve(str(remote), None)
    with pytest.raises(RefNotFound) as caught:
        store.resolve(str(remote), ref)
    assert str(caught.value) == f"ref {ref!r} not found in {remote}"
    # also on the first use of a remote, before any mirror exists
    fresh = TreeStore(TreesConfig(root=tmp_path / "fresh"))
    with pytest.raises(RefNotFound):
        fresh.resolve(str(remote), ref)


def test_a_remote_that_is_not_there_is_a_fetch_error_not_a_missing_ref(tmp_path: Path) -> None:
    store = TreeStore(TreesConfig(root=tmp_path / "trees"))
    with pytest.raises(TreeError, match="could not fetch") as caught:
        store.resolve(str(tmp_path / "absent"), "main")
    assert not isinstance(caught.value, RefNotFound)


def test_a_fetch_within_the_freshness_window_is_reused(remote: Path, tmp_path: Path) -> None:
    patient = TreeStore(TreesConfig(root=tmp_path / "trees", fresh_s=3600))
    v1 = git("rev-parse", "HEAD", cwd=remote)
    patient.resolve(str(remote), None)  # the first use clones
    assert patient.resolve(str(remote), "main") == v1  # fetched: the window starts
    v2 = commit(remote, "v2")
    assert patient.resolve(str(remote), "main") == v1  # within the window: no fetch
    assert patient.resolve(str(remote), "HEAD") == v2  # another ref: fetched
    eager = TreeStore(TreesConfig(root=tmp_path / "trees"))  # the same mirror, no window
    assert eager.resolve(str(remote), "main") == v2
