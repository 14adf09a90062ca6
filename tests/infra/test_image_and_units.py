"""infra/Dockerfile and infra/systemd: what they copy, install and run exists; the units pass
`systemd-analyze verify`; and every AUTAN_* name in infra/ is one the code reads."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.infra.deploy_files import (
    DEPLOY_FILES,
    DOCKERFILE,
    INFRA,
    ROOT,
    SYSTEMD,
    autan_names,
    dockerfile_instructions,
    names_read_by_code,
    shell_commands,
    unit_keys,
)

# What the sandbox runs with (infra/scripts/install-system-deps.sh asks for each).
SANDBOX_PACKAGES = {"bubblewrap", "git", "ripgrep", "util-linux", "libseccomp2"}
VENV_BIN = "/opt/autan/bin/"


def installed_executables() -> set[str]:
    """What the image's venv holds that the files run: our scripts and uvicorn."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(dep.startswith("uvicorn") for dep in project["dependencies"])
    return {*project["scripts"], "uvicorn"}


def test_the_dockerfile_copies_what_exists_and_installs_what_the_sandbox_needs() -> None:
    steps = dockerfile_instructions(DOCKERFILE.read_text())
    copied = [args.split() for word, args in steps if word == "COPY" and "--from" not in args]
    assert copied
    for *sources, _dest in copied:
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
    packages = set(pyproject_packages())
    assert packages <= {sources[0] for *sources, _ in copied}, "a package is not copied"
    apt = [
        cmd
        for word, args in steps
        if word == "RUN"
        for cmd in shell_commands(args)
        if cmd[:2] == ["apt-get", "install"]
    ]
    assert len(apt) == 1
    installed = {arg for arg in apt[0][2:] if not arg.startswith("-")}
    assert installed >= SANDBOX_PACKAGES
    script = (INFRA / "scripts" / "install-system-deps.sh").read_text()
    for package in installed - {"openssh-client"}:
        assert package in script, f"{package} is not among the system packages"


def pyproject_packages() -> list[str]:
    includes = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    return [pattern.rstrip("*") for pattern in includes]


def test_the_image_runs_the_api_as_an_unprivileged_user_with_a_command_it_has() -> None:
    steps = dockerfile_instructions(DOCKERFILE.read_text())
    cmd = [args for word, args in steps if word == "CMD"][-1]
    assert cmd.startswith('["uvicorn", "--factory", "web.app:create_app"')
    assert [args for word, args in steps if word == "USER"] == ["autan"]
    assert "--uid 10001" in [args for word, args in steps if word == "RUN"][-1]
    for word, args in steps:
        if word == "FROM":
            assert args.startswith("python:3.11-"), "the image's Python is not requires-python's"
    from web.app import create_app

    assert callable(create_app)


def test_the_units_run_what_the_venv_holds_and_delegate_the_workers_cgroup() -> None:
    units = {path.name: unit_keys(path) for path in SYSTEMD.glob("*.service")}
    assert set(units) == {"autan-api.service", "autan-worker.service", "autan-migrate.service"}
    executables = installed_executables()
    for name, unit in units.items():
        (start,) = unit["Service"]["ExecStart"]
        assert start.startswith(VENV_BIN), name
        assert start.removeprefix(VENV_BIN).split()[0] in executables, name
        assert unit["Service"]["EnvironmentFile"] == ["/etc/autan/autan.env"]
        if name != "autan-migrate.service":
            assert "autan-migrate.service" in unit["Unit"]["After"][0]
    assert units["autan-migrate.service"]["Service"]["Type"] == ["oneshot"]
    assert units["autan-migrate.service"]["Service"]["ExecStart"] == [f"{VENV_BIN}autan migrate"]
    worker = units["autan-worker.service"]["Service"]
    assert worker["ExecStart"] == [f"{VENV_BIN}autan worker"] and worker["Delegate"] == ["yes"]
    assert "User" not in worker  # root: see docs/sandbox.md, "Host ids"
    api = units["autan-api.service"]["Service"]
    assert api["User"] == ["autan"]
    # Root's data directory and the user autan's are never one (systemd would chown it).
    assert api["StateDirectory"] != worker["StateDirectory"]
    for unit, state in (("autan-api", "autan-api"), ("autan-worker", "autan")):
        service = units[f"{unit}.service"]["Service"]
        assert service["StateDirectory"] == [state]
        assert service["Environment"] == [f"AUTAN_DATA_DIR=/var/lib/{state}"]
        assert service["WorkingDirectory"] == [f"/var/lib/{state}"]


def verify(units: list[Path], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify` of copies whose /opt/autan/bin is a folder of stubs here
    (it checks that each command exists and is executable)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in installed_executables():
        stub = bin_dir / name
        stub.write_text("#!/bin/sh\n")
        stub.chmod(0o755)
    copies = []
    for unit in units:
        copy = tmp_path / unit.name
        copy.write_text(unit.read_text().replace(VENV_BIN, f"{bin_dir}/"))
        copies.append(str(copy))
    return subprocess.run(
        ["systemd-analyze", "verify", *copies], capture_output=True, text=True, timeout=60
    )


needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed here; the units' structure is checked above",
)


@needs_systemd_analyze
def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    result = verify(sorted(SYSTEMD.glob("*.service")), tmp_path)
    assert (result.returncode, result.stderr) == (0, "")


@needs_systemd_analyze
def test_systemd_analyze_reports_a_misspelt_key(tmp_path: Path) -> None:
    bad = tmp_path / "src" / "autan-worker.service"
    bad.parent.mkdir()
    bad.write_text((SYSTEMD / "autan-worker.service").read_text().replace("Delegate=", "Delegat="))
    result = verify([bad], tmp_path)
    assert "Unknown key 'Delegat'" in result.stderr


def test_every_autan_name_in_infra_is_read_by_the_code() -> None:
    read = names_read_by_code()
    assert {"AUTAN_DATABASE_URL", "AUTAN_S3_ENDPOINT_URL", "AUTAN_SLACK_BOT_TOKEN"} <= read
    assert not {"AUTAN_DATABASE", "AUTAN_S3_ENDPOINT", "AUTAN_GIT_PASSWORD"} & read
    seen = 0
    for path in DEPLOY_FILES:
        names = autan_names(path.read_text())
        seen += len(names)
        assert names <= read, f"{path.name} sets names no code reads: {sorted(names - read)}"
    assert seen > 40


def test_docs_deployment_names_every_deploy_file() -> None:
    docs = (ROOT / "docs" / "deployment.md").read_text()
    for path in DEPLOY_FILES:
        assert str(path.relative_to(ROOT)) in docs, f"docs/deployment.md never names {path.name}"
