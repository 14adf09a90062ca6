"""Sentry deliveries finished in a worker: read the issue's latest event, submit the task."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from integrations.config import IntegrationSettings, Routing
from integrations.connectors import load
from integrations.errors import NotConfigured, ServiceError
from integrations.github.client import GitHubAccess
from integrations.github.config import GitHubSettings
from integrations.routing_file import FreshProcessor, watched
from integrations.sentry.api import SentryApi
from integrations.sentry.config import SentrySettings
from integrations.sentry.intake import Problem
from integrations.sentry.repeats import Repeats
from integrations.submit import Submitter
from orchestrator.lifecycle import Lifecycle
from orchestrator.schemas import OriginSpec, TaskSpec

log = logging.getLogger(__name__)

TEMPLATE = (Path(__file__).parent / "instruction.md").read_text()


def stack_of(event: dict[str, Any]) -> tuple[str, str]:
    """The exception line(s) and the stack trace of an event, as text."""
    exceptions, frames = [], []
    for entry in event.get("entries") or []:
        if entry.get("type") != "exception":
            continue
        for value in (entry.get("data") or {}).get("values") or []:
            exceptions.append(f"{value.get('type')}: {value.get('value')}")
            for frame in ((value.get("stacktrace") or {}).get("frames")) or []:
                where = f"{frame.get('filename')}:{frame.get('lineNo')} in {frame.get('function')}"
                line = next(
                    (c[1] for c in frame.get("context") or [] if c[0] == frame.get("lineNo")), ""
                )
                frames.append(f"  {where}\n    {line.strip()}" if line else f"  {where}")
    return "\n".join(exceptions) or "(no exception recorded)", "\n".join(frames) or "(none)"


class SentryProcessor:
    """The `autan.intakes: sentry` processor; its payload, `{"key", "problem"}`, is the intake's."""

    def __init__(self, settings: SentrySettings, routing: Routing, github: GitHubSettings) -> None:
        self.settings = settings
        self.routing = routing
        self.api = SentryApi(settings)
        self.github = GitHubAccess(github)

    def process(self, payload: dict[str, Any], lifecycle: Lifecycle) -> None:
        problem, key = Problem.model_validate(payload["problem"]), str(payload["key"])
        name = self.routing.sentry.projects.get(problem.project)
        if name is None:
            log.info("%s: project %s left autan.toml: ignored", key, problem.project)
            return
        repeats = Repeats(lifecycle, self.github)
        if (found := repeats.open_task(problem.issue_id)) is not None:
            task_id, pull = found
            alert = {"issue_id": problem.issue_id, "title": problem.title, "link": problem.link}
            repeats.add(task_id, pull, key, alert)
            log.info("%s: issue %s has task %s open: added to it", key, problem.issue_id, task_id)
            return
        try:
            exception, stack = stack_of(self.api.latest_event(problem.issue_id))
        except (ServiceError, NotConfigured) as exc:
            log.warning("issue %s: no stack trace (%s)", problem.issue_id, exc)
            exception, stack = "(the latest event could not be read)", "(none)"
        repo = self.routing.repos[name]
        instruction = TEMPLATE.format(
            title=problem.title,
            culprit=problem.culprit or "unknown",
            link=problem.link or problem.issue_id,
            exception=exception,
            stacktrace=stack,
        )
        Submitter(lifecycle, self.routing).submit(
            TaskSpec(
                repo=repo.url,
                ref=repo.branch,
                instruction=instruction[:100_000],
                idempotency_key=key,
                origin=OriginSpec(
                    kind="sentry",
                    external_id=problem.issue_id,
                    data={
                        "issue_id": problem.issue_id,
                        "project": problem.project,
                        "link": problem.link,
                    },
                ),
            )
        )


def processor() -> FreshProcessor:
    """Entry point `autan.intakes: sentry`: settings from the environment, autan.toml kept
    current."""
    source = watched(IntegrationSettings().data_dir / "autan.toml")
    github, _ = load(GitHubSettings)  # wrong GitHub settings: open pull requests cannot be told
    return FreshProcessor(SentryProcessor(SentrySettings(), source.routing, github), source)
