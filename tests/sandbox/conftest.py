"""Fixtures: a small real base tree, a private sandbox root, and sandboxes that must clean up."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox.bwrap import BwrapSandbox
from sandbox.config import LimitsConfig, SandboxConfig


def mounts_under(path: Path) -> list[str]:
    return [line for line in Path("/proc/mounts").read_text().splitlines() if str(path) in line]


@pytest.fixture
def base(tmp_path: Path) -> Path:
    tree = tmp_path / "base"
    (tree / "src" / "pkg").mkdir(parents=True)
    (tree / "docs").mkdir()
    (tree / "README.md").write_text("# demo\nline two\n")
    (tree / "src" / "pkg" / "core.py").write_text("def f():\n    return 1\n")
    (tree / "src" / "pkg" / "util.py").write_text("X = 1\n")
    (tree / "docs" / "guide.md").write_text("guide\n")
    (tree / "docs" / "old.md").write_text("old\n")
    (tree / "logo.bin").write_bytes(bytes(range(256)))
    (tree / "run.sh").write_text("#!/bin/sh\necho run\n")
    os.symlink("/", tree / "escape")
    return tree


@pytest.fixture
def config(tmp_path: Path) -> SandboxConfig:
    limits = LimitsConfig(memory="256M", pids=64, disk="64M", timeout_s=60)
    return SandboxConfig(root=tmp_path / "sandboxes", limits=limits)


@pytest.fixture
def make_sandbox(base: Path, config: SandboxConfig) -> Iterator[Callable[..., BwrapSandbox]]:
    made: list[BwrapSandbox] = []

    def make(cfg: SandboxConfig | None = None, tree: Path | None = None) -> BwrapSandbox:
        made.append(BwrapSandbox(tree or base, cfg or config))
        return made[-1]

    yield make
    for sbx in made:
        sbx.close()
        assert not sbx.dir.exists()
        assert mounts_under(sbx.dir) == []
        assert sbx.cgroup is None or not any(d.exists() for d in sbx.cgroup.dirs)


@pytest.fixture
def sbx(make_sandbox: Callable[..., BwrapSandbox]) -> BwrapSandbox:
    return make_sandbox()
