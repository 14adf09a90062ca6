"""Sentry, once per issue: an alert for an issue whose task is still open is added to that
task (and its pull request) instead of making another; a regression after a merged fix
makes a new task."""

from __future__ import annotations

import json
import logging
import re

from github import GithubException
from sqlalchemy import select

from integrations.errors import IntegrationError
from integrations.github.client import GitHubAccess
from orchestrator import store
from orchestrator.lifecycle import Lifecycle
from orchestrator.models import Origin, ReportStep, Task
from orchestrator.states import ACTIVE_TASK_STATES

log = logging.getLogger(__name__)

ALERT_EVENT = "sentry.alert"
PULL_URL = re.compile(r"/(?P<repo>[^/]+/[^/]+)/pull/(?P<number>\d+)$")


def alert_marker(key: str) -> str:
    return f"<!-- autan:alert:{key} -->"


class Repeats:
    def __init__(self, lifecycle: Lifecycle, github: GitHubAccess) -> None:
        self.lifecycle = lifecycle
        self.github = github

    def open_task(self, issue_id: str) -> tuple[str, str | None] | None:
        """The newest task for the Sentry issue if it is still open, with its pull request:
        running, still reporting, or its pull request not merged or closed yet."""
        with self.lifecycle.sessions() as session:
            task = session.scalars(
                select(Task)
                .join(Origin, Origin.id == Task.origin_id)
                .where(Origin.kind == "sentry", Origin.external_id == issue_id)
                .order_by(Task.created_at.desc())
                .limit(1)
            ).first()
            if task is None:
                return None
            if task.state in ACTIVE_TASK_STATES:
                return task.id, None
            published = session.get(ReportStep, (task.id, "publish"))
            if task.reported_at is None and published is None:
                return task.id, None  # ended, its pull request maybe on its way
            found = json.loads(published.detail) if published and published.detail else {}
        pull = found.get("pull_url")
        if pull and self._pull_open(pull):
            return task.id, pull
        return None

    def _pull_open(self, url: str) -> bool:
        found = PULL_URL.search(url)
        if found is None:
            return False
        try:
            pull = self.github.api().get_repo(found["repo"]).get_pull(int(found["number"]))
        except (GithubException, IntegrationError) as exc:
            # Cannot tell: a comment on the open task is better than a second pull request.
            log.warning("%s: state unknown (%s); taken as open", url, exc)
            return True
        return str(pull.state) == "open"

    def add(self, task_id: str, pull: str | None, key: str, alert: dict[str, str | None]) -> None:
        """Record the alert on the task, and comment on its pull request; once per delivery."""
        with self.lifecycle.write() as (session, events):
            seen = store.events_after(session, task_id=task_id, seq=0, kind=ALERT_EVENT)
            if not any(e.data.get("key") == key for e in seen):
                self.lifecycle.event(session, events, task_id, ALERT_EVENT, {"key": key, **alert})
        if pull is None:
            return
        found = PULL_URL.search(pull)
        assert found is not None
        mark = alert_marker(key)
        try:
            thread = self.github.api().get_repo(found["repo"]).get_issue(int(found["number"]))
            if any(mark in (c.body or "") for c in thread.get_comments()):
                return
            link = alert.get("link") or alert.get("issue_id")
            thread.create_comment(
                f"Sentry alerted again for this issue: {alert.get('title')} ({link}).\n\n{mark}"
            )
        except (GithubException, IntegrationError) as exc:
            log.warning("%s: the alert could not be added as a comment (%s)", pull, exc)
