"""The task page names the commit the task tested and each attempt's, and marks partial work."""

from __future__ import annotations

from orchestrator.base import AttemptOutcome
from orchestrator.schemas import TaskSpec
from orchestrator.services import Services
from orchestrator.states import AttemptState
from tests.web.dashboard import browser_client, sign_in

COMMIT = "0123456789abcdef" * 2 + "01234567"


def test_the_task_page_shows_the_commit_and_partial_work(
    services: Services, admin_token: str
) -> None:
    lifecycle = services.lifecycle
    task, _ = lifecycle.submit(TaskSpec(repo="/r", instruction="fix it", attempts=2))
    for attempt in task.attempts:
        claim = lifecycle.claims.claim(attempt.id, worker="w1")
        assert claim is not None
        assert lifecycle.claims.pin_commit(claim, COMMIT) == COMMIT
        if attempt.number == 1:
            outcome = AttemptOutcome(summary="done", diff="+whole\n", verified=True, cost_usd=0.1)
            lifecycle.claims.finish(claim, AttemptState.SUCCEEDED, outcome=outcome)
        else:
            partial = AttemptOutcome(diff="+half\n", cost_usd=0.3, partial=True)
            lifecycle.claims.finish(
                claim, AttemptState.FAILED, reason="step budget spent", outcome=partial
            )
    with browser_client(services) as client:
        sign_in(client, admin_token)
        html = client.get(f"/tasks/{task.id}").text
        assert f'<code class="commit">{COMMIT}</code>' in html
        assert html.count(f'<code title="{COMMIT}">{COMMIT[:12]}</code>') == 2
        assert "$0.40" in html and html.count('<span class="partial">partial</span>') == 1
        assert "Partial:" not in html  # the kept diff is whole
        second = client.get(f"/tasks/{task.id}?attempt=2").text
        assert "Partial: the attempt ended before it finished" in second
        assert f"autan apply {task.id} --attempt 2" in second
