"""`autan sandbox run`: settings the sandbox refuses end it with one line and exit 120."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app


@pytest.mark.parametrize(
    ("option", "reason"),
    [
        (["--allow", "*bad"], "not a host name or `*.domain` wildcard: '*bad'"),
        (["--allow", "http://pypi.org/simple"], "not a host name or `*.domain` wildcard"),
        (["--memory", "lots"], "not a size: 'lots' (use a number with an optional K, M, G or T)"),
        (["--backend", "docker"], "unknown sandbox backend 'docker'; valid: bwrap, local"),
    ],
)
def test_a_refused_setting_is_one_line_and_runs_nothing(
    tmp_path: Path, option: list[str], reason: str
) -> None:
    root = tmp_path / "sandboxes"
    argv = ["sandbox", "run", "--base", str(tmp_path), "--root", str(root), *option, "--", "true"]
    result = CliRunner().invoke(app, argv)

    assert result.exit_code == 120
    assert result.stdout == ""
    assert result.stderr.startswith(f"autan sandbox: {reason}")
    assert result.stderr.count("\n") == 1
    assert not root.exists()
