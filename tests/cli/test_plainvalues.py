"""Plain-first reading of option values gives typer's own values and typer's own errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from typer._click import Context
from typer._click.exceptions import BadParameter
from typer._coercion import build_runtime_param
from typer.core import _TyperParameter
from typer.testing import CliRunner

from cli.main import app, load
from cli.plainvalues import PlainRuntimeParam

RUN = load("sandbox").commands["run"]  # type: ignore[attr-defined]

# Values as the command line (or a default) gives them, plainly valid or not.
TEXTS = ["2G", "", " x ", "007", "0", "-1", "1_000", " 5", "1.5", "1e3", "nan", "inf", "٣"]
VALUES: dict[str, list[Any]] = {
    "command": [("sh", "-c", "exit 3"), (), ["ls"], ("-la", "")],
    "base": ["tree", "", "a//b/", "/no/such/dir", "-", "/etc/hostname", "~"],
    "network_policy": ["none", "allowlist", "full", "FULL", "open", "", None],
    "allow": [("pypi.org", "*.example.com"), (), None],
    "memory": [*TEXTS, "2G"],
    "pids": [*TEXTS, 512, 1, "99999999999999999999999", 0],
    "cpus": [*TEXTS, 600.0, None],
    "timeout": [*TEXTS, 600.0, 600, "12.25", "1.", ".5"],
    "root": ["/tmp", None, "rel/path"],
    "network": ["true", "no", "x", ""],
}


def read(runtime: Any, param: _TyperParameter, value: Any) -> tuple[str, Any]:
    """What a reading makes of `value`: the value and its type, or the error typer shows."""
    ctx = Context(RUN)
    try:
        got = runtime.coerce(value, param=param, ctx=ctx)
    except BadParameter as exc:
        return "error", exc.format_message()
    return "value", (repr(got), type(got))  # repr: nan is not nan


@pytest.mark.parametrize("name", list(VALUES))
def test_each_value_reads_as_typer_reads_it(name: str) -> None:
    param = next(p for p in RUN.params if p.name == name)
    assert isinstance(param, _TyperParameter)
    plain = param.get_runtime_param()
    assert isinstance(plain, PlainRuntimeParam)
    typer_own = build_runtime_param(param.type_descriptor)
    for value in VALUES[name]:
        assert read(plain, param, value) == read(typer_own, param, value), value


def test_an_unreadable_path_is_refused_as_typer_refuses_it(tmp_path: Path) -> None:
    param = next(p for p in RUN.params if p.name == "base")
    assert isinstance(param, _TyperParameter)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0)
    typer_own = build_runtime_param(param.type_descriptor)
    if os.access(locked, os.R_OK):  # root reads anything: typer's check passes it too
        expected = ("value", (repr(locked), type(locked)))
    else:
        expected = ("error", f"Path {str(locked)!r} is not readable.")

    assert read(param.get_runtime_param(), param, str(locked)) == expected
    assert read(typer_own, param, str(locked)) == expected


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--pids", "0"], "Invalid value for '--pids': Input should be greater than or equal to 1"),
        (["--cpus", "two"], "Invalid value for '--cpus': Input should be a valid number"),
        (
            ["--network-policy", "open"],
            "Invalid value for '--network-policy': Value error, 'open' is not one of 'none',",
        ),
    ],
)
def test_bad_values_get_typer_s_own_error_and_run_nothing(
    tmp_path: Path, option: list[str], message: str
) -> None:
    root = tmp_path / "sandboxes"
    argv = ["sandbox", "run", "--base", str(tmp_path), "--root", str(root), *option, "--", "true"]
    result = CliRunner().invoke(app, argv, env={"COLUMNS": "200"})

    assert result.exit_code == 2
    assert message in " ".join(result.output.replace("│", " ").split())
    assert not root.exists()
