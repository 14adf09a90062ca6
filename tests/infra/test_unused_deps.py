"""The dependency check of `make lint`: a declared dependency that nothing imports fails it."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.workers import ROOT


def load_check() -> Callable[[Path], int]:
    spec = importlib.util.spec_from_file_location(
        "unused_deps", ROOT / "infra" / "scripts" / "unused_deps.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    main: Callable[[Path], int] = module.main
    return main


def project(tmp_path: Path, deps: list[str], code: str) -> Path:
    listed = ", ".join(f'"{dep}"' for dep in deps)
    (tmp_path / "pyproject.toml").write_text(
        f'[project]\nname = "p"\ndependencies = [{listed}]\n'
        '[project.optional-dependencies]\ndev = ["ruff>=0.6"]\n'
    )
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text(code)
    return tmp_path


def test_this_project_declares_only_what_it_uses() -> None:
    assert load_check()(ROOT) == 0


def test_a_dependency_imported_nowhere_fails_and_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(tmp_path, ["pathspec>=0.12", "blake3>=1.0"], "import pathspec\n")
    assert load_check()(root) == 1
    said = capsys.readouterr().err
    assert "blake3" in said and "imported nowhere" in said and "pathspec" not in said


def test_an_import_from_a_submodule_counts_and_tools_need_none(tmp_path: Path) -> None:
    root = project(
        tmp_path, ["pathspec>=0.12"], "from pathspec.patterns import GitWildMatchPattern\n"
    )
    assert load_check()(root) == 0  # ruff, a tool run by make lint, is not imported


def test_a_dependency_not_installed_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(tmp_path, ["no-such-distribution-here>=1"], "")
    assert load_check()(root) == 1
    assert "no-such-distribution-here is not installed" in capsys.readouterr().err
