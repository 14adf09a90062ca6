"""Jira deliveries finished in a worker: the labelled issue's task submitted under its key."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from integrations.config import IntegrationSettings, Routing
from integrations.jira.intake import Work, task_spec
from integrations.routing_file import FreshProcessor, watched
from integrations.submit import Submitter
from orchestrator.errors import InvalidSubmission
from orchestrator.lifecycle import Lifecycle

log = logging.getLogger(__name__)


class JiraProcessor:
    """The `autan.intakes: jira` processor; its payload is `{"key", "work"}` from the intake."""

    def __init__(self, routing: Routing) -> None:
        self.routing = routing

    def process(self, payload: dict[str, Any], lifecycle: Lifecycle) -> None:
        key = str(payload["key"])
        try:
            work = Work.model_validate(payload["work"])
        except ValidationError as exc:  # asking again gets the same answer: not retried
            raise InvalidSubmission(f"{key}: the queued delivery is not Jira's: {exc}") from exc
        name = self.routing.jira.projects.get(work.project)
        if name is None:
            log.info("%s: project %s left autan.toml: ignored", key, work.project)
            return
        try:
            spec = task_spec(work, self.routing.repos[name], key)
        except ValidationError as exc:
            raise InvalidSubmission(f"{key}: {work.key} makes no task: {exc}") from exc
        Submitter(lifecycle, self.routing).submit(spec)


def processor() -> FreshProcessor:
    """Entry point `autan.intakes: jira`: autan.toml kept current."""
    source = watched(IntegrationSettings().data_dir / "autan.toml")
    return FreshProcessor(JiraProcessor(source.routing), source)
