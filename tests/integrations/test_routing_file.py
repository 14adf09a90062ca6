"""autan.toml re-read when it changes: a good edit serves at once, no restart; a broken one is
refused with the line at fault, warned of, and the last good version stays in force."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from integrations.config import Routing
from integrations.hub import Hub
from integrations.routing_file import RoutingFile
from orchestrator.services import Services
from tests.cli.conftest import Autan, base_env
from tests.integrations import test_standalone
from tests.integrations.drive import queued
from tests.integrations.test_standalone import deliver_each

env_fixture = test_standalone.env  # the environment those tests set: GitHub, Jira, Sentry on

ONE = '[repos.app]\nurl = "https://example.test/app.git"\n'
TWO = ONE + '\n[repos.lib]\nurl = "https://example.test/lib.git"\n'


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def watched(path: Path, text: str) -> tuple[RoutingFile, Clock]:
    path.write_text(text)
    clock = Clock()
    return RoutingFile(path, Routing.load(path), interval=2.0, clock=clock), clock


def test_a_good_edit_is_in_force_after_the_interval_in_the_same_object(tmp_path: Path) -> None:
    found, clock = watched(tmp_path / "autan.toml", ONE)
    shared = found.routing
    (tmp_path / "autan.toml").write_text(TWO)
    clock.now += 1.0
    assert not found.refresh() and sorted(shared.repos) == ["app"]  # not looked at yet
    clock.now += 1.0
    assert found.refresh() and sorted(shared.repos) == ["app", "lib"]
    clock.now += 2.0
    assert not found.refresh()  # unchanged: not read again
    assert found.problem == "" and found.warning() == ""


def test_a_broken_edit_is_refused_with_its_line_and_the_last_good_one_serves(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "autan.toml"
    found, clock = watched(path, TWO)
    path.write_text(ONE + "[repos.lib\n")
    clock.now += 2.0
    assert not found.refresh()
    assert sorted(found.routing.repos) == ["app", "lib"]
    assert "is not a valid autan.toml" in found.warning() and "line 3" in found.warning()
    assert "the last good version stays in force" in found.warning()
    assert "autan.toml edit refused" in caplog.text

    path.write_text(ONE + '[repos.lib]\nurl = "https://example.test/lib.git"\nbranch = 3\n')
    clock.now += 2.0
    assert not found.refresh()
    assert "repos.lib.branch (line 5): Input should be a valid string" in found.warning()

    path.write_text(ONE)
    clock.now += 2.0
    assert found.refresh() and sorted(found.routing.repos) == ["app"] and found.warning() == ""


def test_a_removed_file_maps_nothing_and_a_new_one_is_read(tmp_path: Path) -> None:
    path = tmp_path / "autan.toml"
    found, clock = watched(path, ONE)
    path.unlink()
    clock.now += 2.0
    assert found.refresh() and found.routing.repos == {}
    path.write_text(TWO)
    clock.now += 2.0
    assert found.refresh() and sorted(found.routing.repos) == ["app", "lib"]


def hub(api: TestClient) -> Hub:
    services: Services = api.app.state.services  # type: ignore[attr-defined]
    found = Hub.from_env(services.lifecycle, services.redis)
    assert found.routing_file is not None
    found.routing_file.interval = 0.0  # every delivery looks at the file
    api.app.state.hooks = found  # type: ignore[attr-defined]
    return found


def test_fixing_a_broken_autan_toml_lets_deliveries_in_without_a_restart(
    api: TestClient, services: Services, env_fixture: Path
) -> None:
    env = env_fixture
    good = (env / "autan.toml").read_text()
    (env / "autan.toml").write_text("[repos.app\nurl = 1\n")
    hub(api)
    found = deliver_each(api)
    assert found["github"][0] == 503 and "line 1" in found["github"][1]
    assert queued(services) == []

    (env / "autan.toml").write_text(good)
    found = deliver_each(api)
    assert all(found[n][0] == 200 for n in ("github", "jira", "sentry")), found
    assert api.get("/readyz").json()["warnings"] == []


def test_a_broken_edit_warns_in_readyz_while_deliveries_go_on(
    api: TestClient, services: Services, env_fixture: Path
) -> None:
    env = env_fixture
    good = (env / "autan.toml").read_text()
    hub(api)
    (env / "autan.toml").write_text(good + "[jira.projects]\nOPS = 'app'\n")  # a table twice
    ready = api.get("/readyz").json()
    assert ready["connectors"]["github"] == "configured"
    [warning] = ready["warnings"]
    assert "is not a valid autan.toml" in warning and "line" in warning
    found = deliver_each(api)
    assert all(found[n][0] == 200 for n in ("github", "jira", "sentry")), found
    assert sorted(kind for kind, _ in queued(services)) == ["github", "jira", "sentry"]


def test_doctor_warns_of_a_broken_autan_toml_with_its_line(env_fixture: Path) -> None:
    path = env_fixture / "autan.toml"
    path.write_text('[repos.app]\nurl = "https://example.test/app.git"\nbranch = 3\n')
    values = {k: v for k, v in os.environ.items() if k.startswith("AUTAN_")}
    done = Autan(base_env(**values))("doctor")
    assert done.returncode == 1
    assert done.stdout.startswith(
        f"Warning: {path} is not a valid autan.toml: "
        "repos.app.branch (line 3): Input should be a valid string\n"
        "  (a running Autan keeps the last good autan.toml until this is fixed)\n"
    ), done.stdout
