"""Base trees kept within a budget: least recently used first, never one a sandbox holds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.agent_runner import AgentRunner, AgentRunnerSettings
from sandbox.trees import TreesConfig, TreeStore
from tests.sandbox.test_lifecycle import git, remote
from tests.sandbox.test_trees import commit

__all__ = ["remote"]  # the fixture, shared with the tree tests there


def three_trees(store: TreeStore, remote: Path) -> list[Path]:
    """Trees of three commits, used in that order (oldest first)."""
    trees = []
    for n, text in enumerate(["v2", "v3", "v4"]):
        trees.append(store.checkout(str(remote), commit(remote, text)))
        os.utime(trees[-1].with_suffix(".size"), (1000 + n, 1000 + n))
    return trees


def size(tree: Path) -> int:
    return int(tree.with_suffix(".size").read_text())


def test_prune_removes_the_least_recent_to_the_budget_but_not_a_held_tree(
    remote: Path, tmp_path: Path
) -> None:
    store = TreeStore(TreesConfig(root=tmp_path / "trees"))
    oldest, middle, newest = three_trees(store, remote)
    store.config.budget = size(oldest) + size(newest)
    with store.using(oldest):  # a sandbox runs over the least recent one
        assert store.prune() == [middle]
    assert oldest.exists() and not middle.exists() and newest.exists()
    assert not middle.with_suffix(".size").exists()
    assert store.prune() == []  # within the budget now
    store.config.budget = size(newest)
    assert store.prune() == [oldest]  # released: it goes first
    assert (newest / "app.py").read_text() == "print('v4')\n"


def test_a_tree_that_is_not_the_store_s_is_not_held(tmp_path: Path) -> None:
    store = TreeStore(TreesConfig(root=tmp_path / "trees"))
    with store.using(tmp_path / "elsewhere"):
        assert store.prune() == []
    assert [p.name for p in (tmp_path / "trees" / "trees").iterdir()] == []


def test_a_worker_s_runner_prunes_to_autan_trees_budget_when_it_starts(
    remote: Path, tmp_path: Path
) -> None:
    store = TreeStore(TreesConfig(root=tmp_path / "trees"))
    trees = three_trees(store, remote)
    settings = AgentRunnerSettings.model_validate(
        {"trees_dir": tmp_path / "trees", "trees_budget": f"{size(trees[2]) + 1}"}
    )
    assert settings.trees_budget == size(trees[2]) + 1
    AgentRunner(settings)
    assert [t.exists() for t in trees] == [False, False, True]
    assert git("rev-parse", "HEAD", cwd=trees[2]) == git("rev-parse", "HEAD", cwd=remote)


def test_a_budget_that_is_no_size_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match=r"trees_budget[\s\S]*not a size: 'lots'"):
        AgentRunnerSettings.model_validate({"trees_budget": "lots"})
    assert AgentRunnerSettings.model_validate({"trees_budget": "2G"}).trees_budget == 2 << 30
