"""What each service is told of a result: verified, unverified or empty, with the test outcome;
a pull request closes its issue (`Fixes #N`) only when its change is verified."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from integrations.github.reporter import GitHubReporter
from integrations.jira.reporter import JiraReporter
from integrations.sentry.reporter import SentryReporter
from integrations.slack.reporter import SlackReporter
from orchestrator.base import Reporter
from orchestrator.reporting import Reporters
from tests.integrations.conftest import FIX, Wired
from tests.integrations.drive import finish, tasks
from tests.integrations.fake_github import Issue
from tests.integrations.test_github import labeled
from tests.integrations.test_github import post as github_post
from tests.integrations.test_jira import issue_event
from tests.integrations.test_jira import post as jira_post
from tests.integrations.test_sentry import issue_created
from tests.integrations.test_sentry import post as sentry_post
from tests.integrations.test_slack import command
from tests.integrations.test_slack import post as slack_post

UNVERIFIED = "no tests were found to run"

# diff, verified, tests outcome -> the Result line every service gets
RESULTS = {
    "verified": (FIX, True, "3 passed", "Result: verified: the repository's tests pass"),
    "unverified": (FIX, False, UNVERIFIED, "Result: unverified: the repository's tests did not"),
    "empty": ("", True, "3 passed", "Result: empty: no file was changed"),
}


def start_github(w: Wired) -> tuple[str, Reporter]:
    w.github.permissions["octocat"] = "write"
    w.github.issues[7] = Issue("add() subtracts", "2 + 2 gives 0", [])
    github_post(w, "issues", labeled(), delivery="d-verdict")
    return "github", GitHubReporter(w.github_settings, w.common, w.routing)


def start_slack(w: Wired) -> tuple[str, Reporter]:
    slack_post(w, command(w, "app fix the sum"))
    return "slack", SlackReporter(w.slack_settings, w.common, w.publisher())


def start_jira(w: Wired) -> tuple[str, Reporter]:
    jira_post(w, issue_event(), delivery="j-verdict")
    return "jira", JiraReporter(w.jira_settings, w.common, w.publisher())


def start_sentry(w: Wired) -> tuple[str, Reporter]:
    sentry_post(w, "issue", issue_created())
    return "sentry", SentryReporter(w.sentry_settings, w.common, w.publisher())


def posted(w: Wired, kind: str) -> str:
    """The text of the report the service received last."""
    if kind == "github":
        found = [
            r for r in w.github.requests if r.method == "POST" and r.path.endswith("/comments")
        ]
        return str(found[-1].json()["body"])
    if kind == "slack":
        return str(w.slack.messages[-1]["text"])
    if kind == "jira":
        found = [r for r in w.jira.requests if r.method == "POST" and r.path.endswith("/comment")]
        return str(found[-1].json()["body"])
    found = [r for r in w.sentry.requests if r.method == "POST" and "/comments" in r.path]
    return str(found[-1].json()["text"])


@pytest.mark.parametrize("start", [start_github, start_slack, start_jira, start_sentry])
@pytest.mark.parametrize("result", sorted(RESULTS))
def test_each_service_is_told_whether_the_result_is_verified_unverified_or_empty(
    wired: Wired, start: Callable[[Wired], tuple[str, Reporter]], result: str
) -> None:
    kind, reporter = start(wired)
    [task] = tasks(wired.services)
    diff, verified, outcome, line = RESULTS[result]
    finish(wired.services, task.id, diff, tests_outcome=outcome, verified=verified)
    assert wired.services.lifecycle.report(task.id, Reporters({kind: reporter})) == "reported"
    text = posted(wired, kind)
    assert line in text, text
    assert f"Tests: {outcome}" in text
    others = [RESULTS[other][3] for other in RESULTS if other != result]
    assert not any(other in text for other in others)
    assert ("Pull request:" in text) is (result == "verified"), text
    if result == "empty":
        assert "autan diff" not in text and not re.search(r"^Done\.$", text, re.MULTILINE)


def test_a_verified_pull_request_fixes_its_issue_and_an_unverified_one_is_only_for_it(
    wired: Wired,
) -> None:
    wired.common.report_unverified = "draft"  # an unverified change opens a draft too
    bodies = {}
    for number, (verified, outcome) in {7: (True, "3 passed"), 8: (False, UNVERIFIED)}.items():
        wired.github.permissions["octocat"] = "write"
        wired.github.issues[number] = Issue("add() subtracts", "2 + 2 gives 0", [])
        github_post(wired, "issues", labeled(number), delivery=f"d-{number}")
        task = next(t for t in tasks(wired.services) if t.origin.data["number"] == number)
        finish(wired.services, task.id, FIX, tests_outcome=outcome, verified=verified)
        reporter = GitHubReporter(wired.github_settings, wired.common, wired.routing)
        assert wired.services.lifecycle.report(task.id, Reporters({"github": reporter})) == (
            "reported"
        )
        opened = [
            r for r in wired.github.requests if r.method == "POST" and r.path.endswith("/pulls")
        ]
        bodies[number] = str(opened[-1].json()["body"])
    assert "\nFixes #7." in bodies[7] and "For #7" not in bodies[7]
    assert "\nFor #8." in bodies[8] and "Fixes #8" not in bodies[8]
