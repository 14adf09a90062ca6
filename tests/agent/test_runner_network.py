"""The runner's network: set-up gets its own policy, the agent's steps another, each one an event."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pydantic
import pytest

from agent import inspect
from agent.errors import RepoConfigInvalid
from agent.loop import Agent
from agent.repo import RepoInfo, parse_autan_toml
from orchestrator.agent_runner import AgentRunner, AgentRunnerSettings, _reporter
from orchestrator.baselines import StoreBaselines
from sandbox import create_sandbox
from serving.script import Script
from serving.scripted import ScriptedServer
from tests.agent.conftest import agent_config, attempt_context
from tests.agent.policies import finish, rule
from tests.agent.test_runner import bwrap_works
from tests.sandbox.sites import Site

# Through the proxy (NO_PROXY names localhost, as a sandboxed test server wants).
FETCH = (
    "python3 -c \"import os, urllib.request as u; os.environ.pop('no_proxy', None); "
    "os.environ.pop('NO_PROXY', None); print(u.urlopen('http://localhost:{port}/hello.txt').read())\""
)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    served = Site(tmp_path / "site")
    yield served
    served.close()


def test_set_up_reaches_its_allowlist_and_the_agent_s_steps_do_not(
    tmp_path: Path,
    site: Site,
    serve: Callable[[Script], ScriptedServer],
    runner_settings: Callable[..., AgentRunnerSettings],
) -> None:
    if why := bwrap_works(tmp_path):
        pytest.skip(f"bwrap sandboxes cannot run here: {why}")
    fetch = FETCH.format(port=site.port)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / ".autan.toml").write_text(
        f'[setup]\ncommands = [{json.dumps(fetch)}]\n\n[network]\nallow = ["localhost"]\n'
    )
    script = Script.model_validate(
        {
            "rules": [
                rule({"tool_name": "bash"}, finish("tried")),
                rule({"turn": 0}, ("bash", {"command": fetch})),
            ]
        }
    )
    server = serve(script)
    settings = runner_settings(
        server.url, sandbox_backend="bwrap", setup_network="allowlist",
        network_allow_addresses=["127.0.0.1"], network_ports=[site.port],
    )  # fmt: skip
    runner = AgentRunner(settings)
    ctx, seen = attempt_context(repo, "fetch hello.txt")
    sandbox = create_sandbox(repo, runner.sandbox_config(), _reporter(ctx.emit))
    try:
        info = inspect(sandbox, 100)
        agent = Agent(
            runner.model(ctx, ctx.emit), sandbox, config=agent_config(), emit=ctx.emit,
            stop=ctx.stop,
        )  # fmt: skip
        runner._setup(ctx, sandbox, info, agent)
        result = agent.run(ctx.task.instruction, info)
    finally:
        sandbox.close()

    setup, step = seen.of("tool.output")[:2]
    assert (setup["name"], setup["ok"]) == ("setup", True)
    assert "b'hello from the host'" in setup["output"]
    assert result.finished and "Connection refused" in step["output"]
    assert seen.of("network.connection") == [
        {"host": "localhost", "port": site.port, "allowed": True, "reason": "in the allowlist"}
    ]
    assert len(site.requests) == 1


def test_the_old_setup_switch_means_the_allowlist_and_full_needs_the_operator(
    runner_settings: Callable[..., AgentRunnerSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTAN_SETUP_NETWORK", "true")
    monkeypatch.setenv("AUTAN_NETWORK_ALLOW", '["pypi.org", "*.pythonhosted.org"]')
    settings = AgentRunnerSettings()
    runner = AgentRunner(settings)
    text = '[network]\nallow = ["Mirror.Example.com"]\n'
    info = RepoInfo(autan_toml_text=text, autan=parse_autan_toml(text))

    assert settings.setup_network == "allowlist" and settings.network == "none"
    assert runner.sandbox_config().network.mode == "none"
    assert runner.policy(settings.setup_network, info).allow == [
        "pypi.org", "*.pythonhosted.org", "mirror.example.com",
    ]  # fmt: skip
    assert runner.policy(settings.network).allow == ["pypi.org", "*.pythonhosted.org"]
    with pytest.raises(pydantic.ValidationError, match="the `full` network policy is off"):
        runner_settings("http://127.0.0.1:1/v1", setup_network="full")
    full = runner_settings("http://127.0.0.1:1/v1", network="full", network_full=True)
    assert AgentRunner(full).sandbox_config().network.mode == "full"


def test_a_repository_cannot_list_what_is_not_a_host() -> None:
    with pytest.raises(RepoConfigInvalid, match="not a host name"):
        parse_autan_toml('[network]\nallow = ["http://pypi.org/simple"]\n')
    with pytest.raises(RepoConfigInvalid, match="extra"):
        parse_autan_toml('[network]\nallow_addresses = ["127.0.0.1"]\n')


def test_verification_sets_up_under_set_up_s_policy_and_tests_under_the_agent_s(
    tmp_path: Path,
    site: Site,
    runner_settings: Callable[..., AgentRunnerSettings],
    baselines: StoreBaselines,
) -> None:
    if why := bwrap_works(tmp_path):
        pytest.skip(f"bwrap sandboxes cannot run here: {why}")
    fetch = FETCH.format(port=site.port)
    repo = tmp_path / "repo"
    repo.mkdir()
    text = (
        f"[setup]\ncommands = [{json.dumps(fetch + ' > fetched.txt')}]\n\n"
        f"[test]\ncommand = {json.dumps('cat fetched.txt; ' + fetch)}\n\n"
        '[network]\nallow = ["localhost"]\n'
    )
    settings = runner_settings(
        "http://127.0.0.1:1/v1", sandbox_backend="bwrap", setup_network="allowlist",
        network_allow_addresses=["127.0.0.1"], network_ports=[site.port],
    )  # fmt: skip
    runner = AgentRunner(settings, baselines=baselines)
    ctx, seen = attempt_context(repo, "verify")
    info = RepoInfo(autan_toml_text=text, autan=parse_autan_toml(text))
    setup = runner.policy(settings.setup_network, info)
    verification = runner.verification(ctx, repo, setup, info, {})
    try:
        report = verification.run(None)
    finally:
        verification.close()

    assert report.exit_code == 1
    assert "b'hello from the host'" in report.output  # set-up fetched it
    assert "Connection refused" in report.output  # the tests could not
    assert [e["allowed"] for e in seen.of("network.connection")] == [True]
    assert len(site.requests) == 1
