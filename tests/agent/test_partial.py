"""The runner keeps an attempt's work when it ends early: its diff, marked partial, tokens, cost."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.agent_runner import AgentRunner, AgentRunnerSettings
from orchestrator.base import AttemptFailed
from serving.script import Script
from serving.scripted import ScriptedServer
from tests.agent import policies
from tests.agent.bugs import BUGS
from tests.agent.conftest import attempt_context

PRICED = "mistralai/Mistral-Medium-3.5"


def test_a_model_outage_past_its_limit_keeps_the_edit_made_before_it(
    repos: dict[str, Path],
    serve: Callable[[Script], ScriptedServer],
    runner_settings: Callable[..., AgentRunnerSettings],
) -> None:
    bug = BUGS[0]
    edit = {"path": "lib.py", "old": bug.old, "new": bug.new}
    # The second call is answered only long after the read timeout: the model is gone.
    script = {
        "model": PRICED,
        "rules": [policies.rule({"turn": 0}, ("edit_file", edit))],
        "fallback": {"content": "late", "delay_ms": 3000},
    }
    server = serve(Script.model_validate(script))
    settings = runner_settings(
        server.url, model_name=PRICED, model_read_timeout_s=0.5, model_outage_s=0.5
    )
    ctx, seen = attempt_context(repos[bug.name], bug.task)
    with pytest.raises(AttemptFailed, match="the model failed at step 2") as caught:
        AgentRunner(settings).run(ctx)
    partial = caught.value.outcome
    assert partial is not None and partial.partial is True
    assert f"-    return {bug.old}\n+    return {bug.new}\n" in partial.diff
    assert partial.tokens_in > 0 and partial.tokens_out > 0 and partial.cost_usd > 0
    assert partial.verified is None and seen.of("file.change") == [
        {"path": "lib.py", "status": "modified"}
    ]
